//! `LatencyStore`: every request waits a fixed latency first, as over a slow network.
//!
//! Unlike object_store's `ThrottledStore`, it works over any store (including local files, whose
//! GETs `ThrottledStore` does not support), and it has no per-byte cost.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::bucket::copy::PartStore;

/// An [`ObjectStore`] that delays every request to `inner` by a fixed latency.
#[derive(Debug)]
pub struct LatencyStore<T> {
    inner: T,
    latency: Duration,
}

impl<T> LatencyStore<T> {
    /// Wraps `inner` so that each of its requests first waits `latency`.
    pub fn new(inner: T, latency: Duration) -> Self {
        LatencyStore { inner, latency }
    }

    async fn wait(&self) {
        tokio::time::sleep(self.latency).await;
    }
}

impl<T: fmt::Display> fmt::Display for LatencyStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency({:?}, {})", self.latency, self.inner)
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for LatencyStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.wait().await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.wait().await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.wait().await;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.wait().await;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let latency = self.latency;
        let delayed = locations.then(move |p| tokio::time::sleep(latency).map(move |()| p));
        self.inner.delete_stream(delayed.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, latency) = (self.inner.list(prefix), self.latency);
        futures::stream::once(tokio::time::sleep(latency).map(move |()| inner)).flatten().boxed()
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, latency) = (self.inner.list_with_offset(prefix, offset), self.latency);
        futures::stream::once(tokio::time::sleep(latency).map(move |()| inner)).flatten().boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.wait().await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.wait().await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.wait().await;
        self.inner.rename_opts(from, to, options).await
    }
}

/// A target's uploads by part number, each request delayed like the store's others.
#[async_trait]
impl MultipartStore for LatencyStore<PartStore> {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        self.wait().await;
        self.inner.0.create_multipart(path).await
    }

    async fn create_multipart_opts(&self, path: &Path, opts: PutMultipartOptions) -> Result<MultipartId> {
        self.wait().await;
        self.inner.0.create_multipart_opts(path, opts).await
    }

    async fn put_part(&self, path: &Path, id: &MultipartId, part_idx: usize, data: PutPayload) -> Result<PartId> {
        self.wait().await;
        self.inner.0.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(&self, path: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        self.wait().await;
        self.inner.0.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        self.wait().await;
        self.inner.0.abort_multipart(path, id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    /// Each request of an upload by part number waits the latency, as the store's others do.
    /// Time is tokio's paused clock, which moves only by the sleeps: the figures are exact.
    #[tokio::test(start_paused = true)]
    async fn parts_sent_by_number_wait_the_latency_each() {
        let latency = Duration::from_millis(250);
        let store = LatencyStore::new(PartStore(Arc::new(InMemory::new())), latency);
        let path = Path::from("block/chunks/000001");
        let start = tokio::time::Instant::now();
        let id = store.create_multipart(&path).await.unwrap();
        let part = store.put_part(&path, &id, 0, PutPayload::from_static(b"part")).await.unwrap();
        store.complete_multipart(&path, &id, vec![part]).await.unwrap();
        let other = store.create_multipart(&path).await.unwrap();
        store.abort_multipart(&path, &other).await.unwrap();
        assert_eq!(start.elapsed(), 5 * latency);
    }
}
