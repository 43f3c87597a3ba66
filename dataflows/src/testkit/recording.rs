//! `RecordingStore`: records every write to a store, in the order the store saw them.
//!
//! Tests use it to observe what the engine wrote and in which order (markers before meta.json,
//! the only write to a source in move mode) without trusting the engine's own account.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// A write as the store received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A PUT, or the start of a multipart upload, of this path.
    Put(String),
    /// A delete of this path.
    Delete(String),
    /// A copy or rename onto this path.
    Copy {
        /// The path copied or renamed.
        from: String,
        /// The path written.
        to: String,
    },
}

/// An [`ObjectStore`] that passes every request to `inner` and records its writes, in order.
pub struct RecordingStore<T> {
    inner: T,
    writes: Arc<Mutex<Vec<Write>>>,
}

impl<T> RecordingStore<T> {
    /// Wraps `inner`, with no write recorded yet.
    pub fn new(inner: T) -> Self {
        RecordingStore { inner, writes: Arc::default() }
    }

    /// Every write so far, oldest first.
    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().expect("the write log lock is never poisoned").clone()
    }

    fn record(&self, write: Write) {
        self.writes.lock().expect("the write log lock is never poisoned").push(write);
    }
}

impl<T: fmt::Display> fmt::Display for RecordingStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingStore({})", self.inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for RecordingStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingStore").field("inner", &self.inner).finish()
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for RecordingStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.record(Write::Put(location.to_string()));
        Ok(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.record(Write::Put(location.to_string()));
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let writes = self.writes.clone();
        let recorded = locations.inspect(move |p| {
            if let Ok(p) = p {
                writes.lock().expect("the write log lock is never poisoned").push(Write::Delete(p.to_string()));
            }
        });
        self.inner.delete_stream(recorded.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.record(Write::Copy { from: from.to_string(), to: to.to_string() });
        Ok(())
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.record(Write::Copy { from: from.to_string(), to: to.to_string() });
        Ok(())
    }
}
