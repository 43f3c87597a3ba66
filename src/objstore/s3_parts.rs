//! Uploads by part number to an S3 bucket over plain HTTP: each part with a CRC64NVME checksum the
//! server verifies, unless the server refuses an upload that names that algorithm.
//!
//! A multipart upload names its checksum algorithm when it starts (`x-amz-checksum-algorithm`),
//! and a server that does not know the algorithm refuses the upload: MinIO before 2025 does for
//! CRC64NVME. Rather than fail every large object there, the first refusal turns the bucket's
//! uploads to signed parts (each part's SHA256 in its signature, which every S3 server checks)
//! for the rest of the process. An upload keeps the way it started: its id says which.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, PutPayload, PutResult, Result};

/// The prefix of the ids of uploads that started signed.
const SIGNED: &str = "signed:";

/// Uploads by part number that carry a checksum while the server takes it, and are signed once it
/// refused one.
#[derive(Clone, Debug)]
pub struct CheckedParts {
    /// The store whose bodies carry a CRC64NVME checksum.
    checked: AmazonS3,
    /// The store whose bodies name no checksum algorithm: signed, unless the bucket's settings
    /// asked for unsigned bodies.
    signed: AmazonS3,
    /// What the warning says of the parts once the server refused a checked upload.
    fallback: &'static str,
    refused: Arc<AtomicBool>,
}

impl CheckedParts {
    /// `signed_bodies` says whether `signed` signs each body's SHA256.
    pub fn new(checked: AmazonS3, signed: AmazonS3, signed_bodies: bool) -> CheckedParts {
        let fallback = match signed_bodies {
            true => "their parts are signed with their SHA256 instead",
            false => "their parts go without a checksum (the bucket's settings ask for unsigned bodies)",
        };
        CheckedParts { checked, signed, fallback, refused: Arc::default() }
    }

    /// The store an upload started on, and its id there.
    fn of<'a>(&'a self, id: &'a MultipartId) -> (&'a AmazonS3, MultipartId) {
        match id.strip_prefix(SIGNED) {
            Some(id) => (&self.signed, id.to_string()),
            None => (&self.checked, id.clone()),
        }
    }
}

#[async_trait]
impl MultipartStore for CheckedParts {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        if !self.refused.load(Ordering::Relaxed) {
            let error = match self.checked.create_multipart(path).await {
                Ok(id) => return Ok(id),
                Err(error) if refuses_the_request(&error) => error,
                Err(error) => return Err(error),
            };
            // If a signed upload starts where the checked one was refused, the server refused
            // the algorithm.
            let Ok(id) = self.signed.create_multipart(path).await else { return Err(error) };
            if !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(%path, %error, "the target refused a multipart upload that names CRC64NVME, so it does not know that checksum: from now on multipart uploads start without it, and {}; it likely ignores the checksum of whole objects too (AWS_UNSIGNED_PAYLOAD=false signs every body instead)", self.fallback);
            }
            return Ok(format!("{SIGNED}{id}"));
        }
        Ok(format!("{SIGNED}{}", self.signed.create_multipart(path).await?))
    }

    async fn put_part(&self, path: &Path, id: &MultipartId, part_idx: usize, data: PutPayload) -> Result<PartId> {
        let (store, id) = self.of(id);
        store.put_part(path, &id, part_idx, data).await
    }

    async fn complete_multipart(&self, path: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        let (store, id) = self.of(id);
        store.complete_multipart(path, &id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        let (store, id) = self.of(id);
        store.abort_multipart(path, &id).await
    }
}

/// Whether the server refused the request as one it does not take (a 400 or a 501), rather than
/// failing it: a missing bucket, denied access, a timeout or throttling say nothing of the
/// checksum.
fn refuses_the_request(error: &object_store::Error) -> bool {
    matches!(bucketflow_dataflows::http_status(error), Some(400 | 501))
}
