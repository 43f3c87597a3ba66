//! `InstrumentedStore`: counts requests and measures their latency, by operation.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::MultipartId;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::bucket::copy::PartStore;
use crate::telemetry::{EngineMetrics, RequestLabels, Side};

#[derive(Clone)]
pub(crate) struct InstrumentedStore<T> {
    inner: T,
    side: Side,
    metrics: EngineMetrics,
}

impl<T> InstrumentedStore<T> {
    pub(crate) fn new(inner: T, side: Side, metrics: EngineMetrics) -> Self {
        InstrumentedStore { inner, side, metrics }
    }

    /// Counts one request and, for calls that return once the store has answered, its latency.
    async fn timed<R>(&self, operation: &'static str, call: impl Future<Output = R>) -> R {
        let labels = RequestLabels { bucket: self.side, operation };
        self.metrics.requests.get_or_create(&labels).inc();
        let started = Instant::now();
        let result = call.await;
        self.metrics.request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        result
    }

    fn counted(&self, operation: &'static str) {
        self.metrics.requests.get_or_create(&RequestLabels { bucket: self.side, operation }).inc();
    }
}

impl<T: fmt::Display> fmt::Display for InstrumentedStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for InstrumentedStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedStore").field("inner", &self.inner).field("side", &self.side).finish()
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for InstrumentedStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.timed("put", self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.timed("put_multipart", self.inner.put_multipart_opts(location, opts)).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let operation = if options.head { "head" } else { "get" };
        self.timed(operation, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.timed("get_ranges", self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.counted("delete");
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counted("list");
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counted("list");
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.timed("list_with_delimiter", self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.timed("copy", self.inner.copy_opts(from, to, options)).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.timed("rename", self.inner.rename_opts(from, to, options)).await
    }
}

/// A target's uploads by part number, counted like its other requests.
#[async_trait]
impl MultipartStore for InstrumentedStore<PartStore> {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        self.timed("put_multipart", self.inner.0.create_multipart(path)).await
    }

    async fn create_multipart_opts(&self, path: &Path, opts: PutMultipartOptions) -> Result<MultipartId> {
        self.timed("put_multipart", self.inner.0.create_multipart_opts(path, opts)).await
    }

    async fn put_part(&self, path: &Path, id: &MultipartId, part_idx: usize, data: PutPayload) -> Result<PartId> {
        self.timed("put_part", self.inner.0.put_part(path, id, part_idx, data)).await
    }

    async fn complete_multipart(&self, path: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        self.timed("complete_multipart", self.inner.0.complete_multipart(path, id, parts)).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        self.timed("abort_multipart", self.inner.0.abort_multipart(path, id)).await
    }
}
