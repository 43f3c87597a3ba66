//! `WholeReads`: a folder bucket whose small objects are read whole by the task that opens them.
//!
//! object_store's `LocalFileSystem` answers a GET in one blocking task (open the file, read its
//! metadata) and reads it in others, one per 8 KiB. A block is mostly small files (every
//! meta.json, marks, small chunks and indexes), and each blocking task costs two thread wake-ups,
//! more CPU than reading the file. A plain GET (no range, no condition) of a file of at most
//! [`WHOLE_READ_MAX`] bytes is answered here with the file's bytes, read in the task that opened
//! it; anything else is `LocalFileSystem`'s own answer.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::io::Read;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The largest file read whole in the task that opens it: one copy part, so that memory stays
/// within what a copy holds anyway.
const WHOLE_READ_MAX: u64 = 1024 * 1024;

/// A folder bucket; see the module.
#[derive(Debug)]
pub(super) struct WholeReads {
    inner: LocalFileSystem,
}

impl WholeReads {
    pub(super) fn new(inner: LocalFileSystem) -> Self {
        WholeReads { inner }
    }
}

impl fmt::Display for WholeReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Whether a GET asks for the whole object, unconditionally: the only kind answered here.
fn is_plain(options: &GetOptions) -> bool {
    options.range.is_none()
        && !options.head
        && options.version.is_none()
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
}

/// The ETag `LocalFileSystem` gives a file (inode, modification time in microseconds and size, in
/// hexadecimal, as many HTTP servers do), so that a GET answered here agrees with its listings.
fn e_tag(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let micros = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{micros:x}-{:x}\"", metadata.ino(), metadata.len())
}

/// Opens and, when small, reads the file of `location` at `path`: `None` when it is too large
/// (or not a file), for `LocalFileSystem` to answer.
fn read_whole(path: std::path::PathBuf, location: Path) -> Result<Option<GetResult>> {
    let error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => {
            object_store::Error::NotFound { path: location.to_string(), source: source.into() }
        }
        _ => object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("reading {}: {source}", path.display()).into(),
        },
    };
    let mut file = std::fs::File::open(&path).map_err(error)?;
    let metadata = file.metadata().map_err(error)?;
    if !metadata.is_file() || metadata.len() > WHOLE_READ_MAX {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.read_to_end(&mut bytes).map_err(error)?;
    let size = bytes.len() as u64;
    let meta = ObjectMeta {
        location: location.clone(),
        last_modified: metadata.modified().map(chrono::DateTime::from).unwrap_or_default(),
        size,
        e_tag: Some(e_tag(&metadata)),
        version: None,
    };
    let bytes = Bytes::from(bytes);
    Ok(Some(GetResult {
        payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
        meta,
        range: 0..size,
        attributes: Default::default(),
        extensions: Default::default(),
    }))
}

#[async_trait]
impl ObjectStore for WholeReads {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if is_plain(&options) {
            let (path, owned) = (self.inner.path_to_filesystem(location)?, location.clone());
            let read = tokio::task::spawn_blocking(move || read_whole(path, owned))
                .await
                .map_err(|source| object_store::Error::JoinError { source })?;
            if let Some(result) = read? {
                return Ok(result);
            }
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
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
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    /// A small object read here is the object `LocalFileSystem` reads, with the same metadata;
    /// ranges, HEADs, large and missing objects are its own answers.
    #[tokio::test]
    async fn small_reads_agree_with_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let local = || LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let store = WholeReads::new(local());
        let small = Path::from("block/meta.json");
        let large = Path::from("block/index");
        store.put(&small, PutPayload::from_static(b"{\"version\":1}")).await.unwrap();
        store.put(&large, PutPayload::from(vec![7u8; WHOLE_READ_MAX as usize + 1])).await.unwrap();
        for path in [&small, &large] {
            let ours = store.get(path).await.unwrap();
            let theirs = local().get(path).await.unwrap();
            assert_eq!(ours.meta, theirs.meta, "{path}");
            let is_stream = matches!(ours.payload, GetResultPayload::Stream(_));
            assert_eq!(is_stream, path == &small, "only a small file is read whole: {path}");
            assert_eq!(ours.bytes().await.unwrap(), theirs.bytes().await.unwrap());
        }
        let listed = local().head(&small).await.unwrap();
        assert_eq!(store.get(&small).await.unwrap().meta.e_tag, listed.e_tag, "the listing's ETag");
        assert_eq!(store.get_range(&small, 1..8).await.unwrap().as_ref(), b"\"versio");
        let missing = store.get(&Path::from("block/gone")).await.unwrap_err();
        assert!(matches!(missing, object_store::Error::NotFound { .. }), "{missing}");
    }
}
