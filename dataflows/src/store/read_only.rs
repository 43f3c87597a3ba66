//! `ReadOnlyStore`: the source bucket, with every write refused.
//!
//! bucketflow never writes to its source (promise 3). Wrapping the source makes that a property
//! of the types in use rather than of every code path: a write that slipped in fails loudly.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

#[derive(Debug)]
pub struct ReadOnlyStore<T> {
    inner: T,
    /// Move mode: single PUTs of a block's `deletion-mark.json` pass; nothing else does.
    deletion_marks: bool,
}

impl<T> ReadOnlyStore<T> {
    pub fn new(inner: T) -> Self {
        ReadOnlyStore { inner, deletion_marks: false }
    }

    /// Read-only but for Thanos deletion marks (`<block>/deletion-mark.json`), the one write move
    /// mode makes to a source.
    pub fn allowing_deletion_marks(inner: T) -> Self {
        ReadOnlyStore { inner, deletion_marks: true }
    }
}

/// `<ULID>/deletion-mark.json` (under any prefix): a block's deletion mark.
fn is_deletion_mark(path: &Path) -> bool {
    let parts: Vec<_> = path.parts().collect();
    matches!(parts.as_slice(), [.., block, mark]
        if mark.as_ref() == crate::markers::DELETION_MARK && ulid::Ulid::from_string(block.as_ref()).is_ok())
}

impl<T: fmt::Display> fmt::Display for ReadOnlyStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadOnly({})", self.inner)
    }
}

fn refused(operation: &str, path: &Path) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{operation} {path}: the source bucket is read-only for bucketflow").into(),
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for ReadOnlyStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if self.deletion_marks && is_deletion_mark(location) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        Err(refused("writing", location))
    }

    async fn put_multipart_opts(&self, location: &Path, _: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        Err(refused("writing", location))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        locations.map(|p| p.and_then(|p| Err(refused("deleting", &p)))).boxed()
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

    async fn copy_opts(&self, _: &Path, to: &Path, _: CopyOptions) -> Result<()> {
        Err(refused("copying to", to))
    }

    async fn rename_opts(&self, from: &Path, _: &Path, _: RenameOptions) -> Result<()> {
        Err(refused("renaming", from))
    }
}
