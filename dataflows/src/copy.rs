//! Copying one object from the source to the target, verified.
//!
//! An object is streamed: objects up to the part size are read into one buffer and written with a
//! single PUT; larger ones go through a multipart upload, one part buffer at a time. So a copy
//! holds at most about one part in memory, and the process at most `concurrency x part size`
//! (promise 5). Sizes are always checked, and SHA256 where meta.json lists one, before an upload
//! is completed: a wrong source object never becomes a right-looking target object.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::block::ObjectSpec;

/// Default multipart part size: above S3's 5 MiB minimum, small enough to bound memory.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading {path} from the source")]
    Source { path: Path, source: object_store::Error },
    #[error("{operation} {path} in the target")]
    Target { operation: &'static str, path: Path, source: object_store::Error },
    #[error("{path}: the source object has {actual} bytes, expected {expected}")]
    SourceSize { path: Path, expected: u64, actual: u64 },
    #[error("{path}: the source object's SHA256 is {actual}, meta.json lists {expected}")]
    SourceHash { path: Path, expected: String, actual: String },
}

/// What ensuring an object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDone {
    /// False when the target already held an intact copy.
    pub copied: bool,
    pub bytes: u64,
    /// The target's ETag after the copy, used to notice a replaced object at commit time.
    pub e_tag: Option<String>,
}

/// Copies objects between two stores under one process-wide limit of objects in flight.
#[derive(Debug, Clone)]
pub struct Copier {
    pub source: Arc<dyn ObjectStore>,
    pub target: Arc<dyn ObjectStore>,
    pub part_size: usize,
    permits: Arc<Semaphore>,
}

impl Copier {
    pub fn new(
        source: Arc<dyn ObjectStore>,
        target: Arc<dyn ObjectStore>,
        concurrency: usize,
        part_size: usize,
    ) -> Self {
        Copier { source, target, part_size: part_size.max(1), permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    /// Makes sure the target holds an intact copy of `spec` at `path`: skips it when the target
    /// already has the right size (and hash, where listed), copies it otherwise.
    pub async fn ensure(&self, path: &Path, spec: &ObjectSpec) -> Result<ObjectDone, CopyError> {
        let _permit = self.permits.acquire().await.expect("the copy semaphore is never closed");
        if let Some(e_tag) = self.target_intact(path, spec).await? {
            return Ok(ObjectDone { copied: false, bytes: 0, e_tag });
        }
        self.copy(path, spec).await
    }

    /// `Some(etag)` when the target holds `path` with the expected size, and the expected SHA256
    /// where one is listed (which means reading the object back).
    async fn target_intact(&self, path: &Path, spec: &ObjectSpec) -> Result<Option<Option<String>>, CopyError> {
        let head = match self.target.head(path).await {
            Ok(head) => head,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(CopyError::Target { operation: "checking", path: path.clone(), source }),
        };
        if head.size != spec.size {
            return Ok(None);
        }
        if let Some(expected) = &spec.sha256 {
            let read_err = |source| CopyError::Target { operation: "reading back", path: path.clone(), source };
            let mut stream = self.target.get(path).await.map_err(read_err)?.into_stream();
            let mut hasher = Sha256::new();
            while let Some(chunk) = stream.try_next().await.map_err(read_err)? {
                hasher.update(&chunk);
            }
            if &hex::encode(hasher.finalize()) != expected {
                return Ok(None);
            }
        }
        Ok(Some(head.e_tag))
    }

    /// Copies `path` from the source, verifying size and hash before the upload completes.
    async fn copy(&self, path: &Path, spec: &ObjectSpec) -> Result<ObjectDone, CopyError> {
        let source_err = |source| CopyError::Source { path: path.clone(), source };
        let mut stream = self.source.get(path).await.map_err(source_err)?.into_stream();
        let mut verifier = Verifier::new(path, spec);
        let e_tag = if spec.size as usize <= self.part_size {
            let mut buffer = BytesMut::with_capacity(spec.size as usize);
            while let Some(chunk) = stream.try_next().await.map_err(source_err)? {
                verifier.update(&chunk)?;
                buffer.extend_from_slice(&chunk);
            }
            verifier.finish()?;
            let put = self.target.put(path, PutPayload::from(buffer.freeze())).await;
            put.map_err(|source| CopyError::Target { operation: "writing", path: path.clone(), source })?.e_tag
        } else {
            self.copy_multipart(path, &mut stream, &mut verifier).await?
        };
        Ok(ObjectDone { copied: true, bytes: spec.size, e_tag })
    }

    async fn copy_multipart(
        &self,
        path: &Path,
        stream: &mut futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
        verifier: &mut Verifier<'_>,
    ) -> Result<Option<String>, CopyError> {
        let target_err = |operation, source| CopyError::Target { operation, path: path.clone(), source };
        let mut upload = self.target.put_multipart(path).await.map_err(|e| target_err("starting upload of", e))?;
        let outcome: Result<(), CopyError> = async {
            let mut part = BytesMut::with_capacity(self.part_size);
            loop {
                let chunk = stream
                    .next()
                    .await
                    .transpose()
                    .map_err(|source| CopyError::Source { path: path.clone(), source })?;
                let end = chunk.is_none();
                if let Some(chunk) = chunk {
                    verifier.update(&chunk)?;
                    part.extend_from_slice(&chunk);
                } else {
                    verifier.finish()?;
                }
                while part.len() >= self.part_size || (end && !part.is_empty()) {
                    let take = part.len().min(self.part_size);
                    let payload = PutPayload::from(part.split_to(take).freeze());
                    upload.put_part(payload).await.map_err(|e| target_err("uploading a part of", e))?;
                }
                if end {
                    return Ok(());
                }
            }
        }
        .await;
        match outcome {
            Ok(()) => Ok(upload.complete().await.map_err(|e| target_err("completing upload of", e))?.e_tag),
            Err(error) => {
                // An abandoned upload must not linger as a billed, invisible object; a failed abort
                // is only logged because the copy error is the one that matters.
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(%path, error = %abort, "aborting a failed multipart upload");
                }
                Err(error)
            }
        }
    }

    /// At commit time: true when the target still holds `path` with the expected size, and the
    /// ETag recorded at copy time where both are known.
    pub async fn still_intact(&self, path: &Path, spec: &ObjectSpec, e_tag: Option<&str>) -> Result<bool, CopyError> {
        match self.target.head(path).await {
            Ok(head) => {
                Ok(head.size == spec.size
                    && (e_tag.is_none() || head.e_tag.is_none() || head.e_tag.as_deref() == e_tag))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(CopyError::Target { operation: "re-checking", path: path.clone(), source }),
        }
    }
}

/// Checks the bytes of a source object as they stream past.
struct Verifier<'a> {
    path: &'a Path,
    spec: &'a ObjectSpec,
    seen: u64,
    hasher: Option<Sha256>,
}

impl<'a> Verifier<'a> {
    fn new(path: &'a Path, spec: &'a ObjectSpec) -> Self {
        Verifier { path, spec, seen: 0, hasher: spec.sha256.as_ref().map(|_| Sha256::new()) }
    }

    fn update(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        self.seen += chunk.len() as u64;
        if self.seen > self.spec.size {
            return Err(self.size_error());
        }
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), CopyError> {
        if self.seen != self.spec.size {
            return Err(self.size_error());
        }
        if let (Some(h), Some(expected)) = (self.hasher.take(), &self.spec.sha256) {
            let actual = hex::encode(h.finalize());
            if &actual != expected {
                return Err(CopyError::SourceHash { path: self.path.clone(), expected: expected.clone(), actual });
            }
        }
        Ok(())
    }

    fn size_error(&self) -> CopyError {
        CopyError::SourceSize { path: self.path.clone(), expected: self.spec.size, actual: self.seen }
    }
}
