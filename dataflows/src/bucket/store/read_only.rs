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

/// An [`ObjectStore`] that passes reads to `inner` and refuses writes, copies, renames and deletes.
#[derive(Debug)]
pub struct ReadOnlyStore<T> {
    inner: T,
    /// Move mode: single PUTs of a block's `deletion-mark.json` pass; nothing else does.
    deletion_marks: bool,
}

impl<T> ReadOnlyStore<T> {
    /// Wraps `inner`, refusing every write to it.
    pub fn new(inner: T) -> Self {
        ReadOnlyStore { inner, deletion_marks: false }
    }

    /// Read-only but for Thanos deletion marks (`<block>/deletion-mark.json`), the one write move
    /// mode makes to a source.
    pub fn allowing_deletion_marks(inner: T) -> Self {
        ReadOnlyStore { inner, deletion_marks: true }
    }
}

/// `<ULID>/deletion-mark.json`, or a tenant's `markers/<ULID>-deletion-mark.json` (under any
/// prefix): a block's deletion mark.
fn is_deletion_mark(path: &Path) -> bool {
    use crate::model::markers::DELETION_MARK;
    let is_ulid = |s: &str| ulid::Ulid::from_string(s).is_ok();
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [.., folder, name] if folder.as_ref() == "markers" => {
            name.as_ref().strip_suffix(DELETION_MARK).and_then(|id| id.strip_suffix('-')).is_some_and(is_ulid)
        }
        [.., block, mark] => mark.as_ref() == DELETION_MARK && is_ulid(block.as_ref()),
        _ => false,
    }
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
