//! Reading the source bucket: block folders, their meta.json and their objects.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};
use ulid::Ulid;

use crate::block::SourceBlock;
use crate::error::error_chain;
use crate::markers::{DeletionMark, DELETION_MARK, MAX_MARKER_BYTES};
use crate::meta::{parse_meta, BlockMeta, MetaError, RawMeta, MAX_META_BYTES, META_FILENAME};
use crate::report::{Failure, FailureCause};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the source bucket")]
    List(#[source] object_store::Error),
    #[error("reading {path}")]
    Read { path: Path, source: object_store::Error },
    #[error("{path} has {size} bytes, more than the {limit}-byte limit")]
    TooLarge { path: Path, size: u64, limit: usize },
    #[error("listing block folder {block}")]
    ListBlock { block: String, source: object_store::Error },
}

/// Why a listed block folder will not be replicated, when that is known before its group is.
#[derive(Debug)]
pub enum Unusable {
    /// No usable meta.json: an upload in progress or abandoned, skipped as Thanos does.
    Partial(String),
    /// meta.json says the block is of a format bucketflow cannot read: a failure of this block.
    Unsupported(String),
    /// meta.json could not be read at all. The block's compaction group is unknown, so no
    /// group can be sure that it has no older block missing: the run holds back every group.
    Unreadable(String),
}

/// The block folders at the bucket root: every common prefix whose name is a ULID. Anything else
/// at the root (debug folders, bucket indexes) is not a block and is left alone.
pub async fn list_block_dirs(store: &dyn ObjectStore) -> Result<Vec<String>, SourceError> {
    let listing = store.list_with_delimiter(None).await.map_err(SourceError::List)?;
    let mut dirs = Vec::new();
    for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
        if Ulid::from_string(name).is_ok() {
            dirs.push(name.to_string());
        } else {
            tracing::info!(folder = name, "left alone: a folder at the bucket root whose name is not a block ULID");
        }
    }
    Ok(dirs)
}

/// Reads a small object whole, refusing one larger than `limit` without reading its body.
/// `None` when there is no such object. (A ranged read is not used: it fails on an empty object.)
pub async fn read_small(store: &dyn ObjectStore, path: &Path, limit: usize) -> Result<Option<Bytes>, SourceError> {
    let read_err = |source| SourceError::Read { path: path.clone(), source };
    match store.get_opts(path, GetOptions::default()).await {
        Ok(result) if result.meta.size > limit as u64 => {
            Err(SourceError::TooLarge { path: path.clone(), size: result.meta.size, limit })
        }
        Ok(result) => Ok(Some(result.bytes().await.map_err(read_err)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(read_err(source)),
    }
}

/// Reads meta.json of block folder `dir` with the size cap. `None` when there is none.
pub async fn read_meta_bytes(store: &dyn ObjectStore, dir: &str) -> Result<Option<Bytes>, SourceError> {
    read_small(store, &Path::from_iter([dir, META_FILENAME]), MAX_META_BYTES).await
}

/// The objects under a block folder, as paths relative to it, with their sizes.
pub async fn list_block(store: &dyn ObjectStore, dir: &str) -> Result<Vec<(String, u64)>, SourceError> {
    let prefix = Path::from(dir);
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| SourceError::ListBlock { block: dir.to_string(), source })?;
    let folder = format!("{dir}/");
    Ok(objects
        .into_iter()
        .filter_map(|o| Some((o.location.as_ref().strip_prefix(&folder)?.to_string(), o.size)))
        .collect())
}

/// Reads and plans one source block. Once meta.json is parsed, every later problem makes the
/// block defective rather than unusable, so that it keeps its place in its group's order.
pub async fn load_block(store: &dyn ObjectStore, dir: &str) -> Result<SourceBlock, Unusable> {
    let bytes = match read_meta_bytes(store, dir).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Unusable::Partial("no meta.json (partial or in-progress upload)".into())),
        Err(e @ SourceError::TooLarge { .. }) => return Err(Unusable::Partial(e.to_string())),
        Err(e) => return Err(Unusable::Unreadable(error_chain(&e))),
    };
    let meta = match parse_meta(dir, bytes.clone()) {
        Ok(meta) => meta,
        Err(e @ MetaError::UnsupportedVersion { .. }) => {
            // Its group may still be readable; then the block fails in its group's order.
            return match serde_json::from_slice::<BlockMeta>(&bytes) {
                Ok(meta) if meta.ulid.to_string() == dir => Ok(SourceBlock::defective(
                    dir,
                    RawMeta { bytes, meta },
                    Failure::new(FailureCause::Unsupported, e.to_string()),
                )),
                _ => Err(Unusable::Unsupported(e.to_string())),
            };
        }
        Err(e) => return Err(Unusable::Partial(e.to_string())),
    };
    let listing = match list_block(store, dir).await {
        Ok(listing) => listing,
        Err(e) => return Ok(SourceBlock::defective(dir, meta, Failure::new(FailureCause::Source, error_chain(&e)))),
    };
    let mut block = SourceBlock::plan(dir, meta, listing);
    if block.markers.deletion {
        match read_deletion_time(store, dir).await {
            Ok(time) => block.markers.deletion_time = time,
            Err(e) => {
                return Ok(SourceBlock::defective(dir, block.meta, Failure::new(FailureCause::Source, error_chain(&e))))
            }
        }
    }
    Ok(block)
}

/// The deletion time of a block's deletion mark; `None` when the mark is partial or corrupt,
/// which Thanos treats as no mark (with a warning).
async fn read_deletion_time(store: &dyn ObjectStore, dir: &str) -> Result<Option<i64>, SourceError> {
    let path = Path::from_iter([dir, DELETION_MARK]);
    let bytes = match read_small(store, &path, MAX_MARKER_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e @ SourceError::TooLarge { .. }) => {
            tracing::warn!(block = dir, error = %e, "ignoring an oversized deletion-mark.json");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<DeletionMark>(&bytes) {
        Ok(mark) => Ok(Some(mark.deletion_time)),
        Err(error) => {
            tracing::warn!(block = dir, %error, "ignoring a partial or corrupt deletion-mark.json");
            Ok(None)
        }
    }
}
