//! Reading the source bucket: block folders, their meta.json and their objects.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use ulid::Ulid;

use crate::block::SourceBlock;
use crate::error::error_chain;
use crate::markers::{DeletionMark, DELETION_MARK, MAX_MARKER_BYTES};
use crate::meta::{parse_meta, MetaError, MAX_META_BYTES, META_FILENAME};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the source bucket")]
    List(#[source] object_store::Error),
    #[error("reading {path}")]
    Read { path: Path, source: object_store::Error },
    #[error("listing block folder {block}")]
    ListBlock { block: String, source: object_store::Error },
}

/// Why a listed block folder will not be replicated.
#[derive(Debug)]
pub enum Unusable {
    /// No usable meta.json: an upload in progress or abandoned, skipped as Thanos does.
    Partial(String),
    /// The block exists but is wrong, or the source could not be read: a failure of the run.
    Broken(String),
}

/// The block folders at the bucket root: every common prefix whose name is a ULID. Anything else
/// at the root (debug folders, bucket indexes) is not a block and is left alone.
pub async fn list_block_dirs(store: &dyn ObjectStore) -> Result<Vec<String>, SourceError> {
    let listing = store.list_with_delimiter(None).await.map_err(SourceError::List)?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename())
        .filter(|name| Ulid::from_string(name).is_ok())
        .map(str::to_string)
        .collect())
}

/// Reads meta.json of block folder `dir` with a size cap. `None` when there is none.
pub async fn read_meta_bytes(store: &dyn ObjectStore, dir: &str) -> Result<Option<Bytes>, SourceError> {
    let path = Path::from_iter([dir, META_FILENAME]);
    let read_err = |source| SourceError::Read { path: path.clone(), source };
    // Ask for one byte more than the cap, so that an oversized meta.json is noticed without
    // reading all of it.
    let options = GetOptions { range: Some(GetRange::Bounded(0..MAX_META_BYTES as u64 + 1)), ..Default::default() };
    match store.get_opts(&path, options).await {
        Ok(result) => Ok(Some(result.bytes().await.map_err(read_err)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(read_err(source)),
    }
}

/// The objects under a block folder, as paths relative to it, with their sizes.
pub async fn list_block(store: &dyn ObjectStore, dir: &str) -> Result<Vec<(String, u64)>, SourceError> {
    let prefix = Path::from(dir);
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| SourceError::ListBlock { block: dir.to_string(), source })?;
    Ok(objects
        .into_iter()
        .filter_map(|o| {
            let rel: Vec<_> = o.location.prefix_match(&prefix)?.map(|part| part.as_ref().to_string()).collect();
            Some((rel.join("/"), o.size))
        })
        .collect())
}

/// Reads and plans one source block.
pub async fn load_block(store: &dyn ObjectStore, dir: &str) -> Result<SourceBlock, Unusable> {
    let broken = |e: SourceError| Unusable::Broken(error_chain(&e));
    let Some(bytes) = read_meta_bytes(store, dir).await.map_err(broken)? else {
        return Err(Unusable::Partial("no meta.json (partial or in-progress upload)".into()));
    };
    let meta = match parse_meta(dir, bytes) {
        Ok(meta) => meta,
        Err(e @ MetaError::UnsupportedVersion { .. }) => return Err(Unusable::Broken(e.to_string())),
        Err(e) => return Err(Unusable::Partial(e.to_string())),
    };
    let listing = list_block(store, dir).await.map_err(broken)?;
    let mut block = SourceBlock::plan(dir, meta, listing);
    if block.markers.deletion {
        block.markers.deletion_time = read_deletion_time(store, dir).await.map_err(broken)?;
    }
    Ok(block)
}

/// The deletion time of a block's deletion mark; `None` when the mark is partial or corrupt,
/// which Thanos treats as no mark (with a warning).
async fn read_deletion_time(store: &dyn ObjectStore, dir: &str) -> Result<Option<i64>, SourceError> {
    let path = Path::from_iter([dir, DELETION_MARK]);
    let options = GetOptions { range: Some(GetRange::Bounded(0..MAX_MARKER_BYTES as u64)), ..Default::default() };
    let read_err = |source| SourceError::Read { path: path.clone(), source };
    let bytes = match store.get_opts(&path, options).await {
        Ok(result) => result.bytes().await.map_err(read_err)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(read_err(source)),
    };
    match serde_json::from_slice::<DeletionMark>(&bytes) {
        Ok(mark) => Ok(Some(mark.deletion_time)),
        Err(error) => {
            tracing::warn!(block = dir, %error, "ignoring a partial or corrupt deletion-mark.json");
            Ok(None)
        }
    }
}
