//! Reading the source bucket: block folders, their meta.json and their objects.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};
use ulid::Ulid;

use crate::block::{block_path, folder_path, SourceBlock};
use crate::error::error_chain;
use crate::layout::{block_id, global_deletion_mark, Layout};
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
    #[error("--tenant-mapping writes tenant {from:?} as {to:?}, which is also a tenant of the source that keeps its name: the two would mix in the target")]
    TenantCollision { from: String, to: String },
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
    list_block_dirs_under(store, None).await
}

/// The block folders of a bucket in `layout`: `<ULID>` at the root, or `<tenant>/<ULID>` in the
/// selected tenants' folders.
pub async fn list_blocks(store: &dyn ObjectStore, layout: &Layout) -> Result<Vec<String>, SourceError> {
    let Layout::Tenants(tenants) = layout else {
        return list_block_dirs(store).await;
    };
    let listing = store.list_with_delimiter(None).await.map_err(SourceError::List)?;
    let selected: Vec<&Path> =
        listing.common_prefixes.iter().filter(|p| p.filename().is_some_and(|t| tenants.selects(t))).collect();
    let names: std::collections::BTreeSet<&str> = selected.iter().filter_map(|p| p.filename()).collect();
    for (from, to) in &tenants.mapping {
        if names.contains(to.as_str()) && !tenants.mapping.contains_key(to) {
            return Err(SourceError::TenantCollision { from: from.clone(), to: to.clone() });
        }
    }
    for missing in tenants.enabled.iter().filter(|t| !names.contains(t.as_str())) {
        tracing::warn!(tenant = %missing, "--enabled-tenants names a tenant the source does not have");
    }
    let mut dirs = Vec::new();
    for tenant in selected {
        dirs.extend(list_block_dirs_under(store, Some(tenant)).await?);
    }
    Ok(dirs)
}

/// The ULID-named folders under `prefix` (the root when `None`), as paths from the root. The
/// prefix is the listed path itself, so that a tenant name is never encoded a second time.
async fn list_block_dirs_under(store: &dyn ObjectStore, prefix: Option<&Path>) -> Result<Vec<String>, SourceError> {
    let listing = store.list_with_delimiter(prefix).await.map_err(SourceError::List)?;
    let mut dirs = Vec::new();
    for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
        if Ulid::from_string(name).is_ok() {
            dirs.push(prefix.map_or_else(|| name.to_string(), |p| format!("{p}/{name}")));
        } else if name != "markers" {
            tracing::info!(folder = name, prefix = ?prefix.map(|p| p.as_ref()), "left alone: a folder whose name is not a block ULID");
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
    read_small(store, &block_path(dir, META_FILENAME), MAX_META_BYTES).await
}

/// The objects under a block folder, as paths relative to it, with their sizes.
pub async fn list_block(store: &dyn ObjectStore, dir: &str) -> Result<Vec<(String, u64)>, SourceError> {
    let objects = list_block_objects(store, dir)
        .await
        .map_err(|source| SourceError::ListBlock { block: dir.to_string(), source })?;
    Ok(objects.into_iter().map(|(rel_path, size, _)| (rel_path, size)).collect())
}

/// The objects under block folder `dir`, by one listing: path relative to the folder, size and
/// ETag.
pub async fn list_block_objects(
    store: &dyn ObjectStore,
    dir: &str,
) -> object_store::Result<Vec<(String, u64, Option<String>)>> {
    let objects: Vec<_> = store.list(Some(&folder_path(dir))).try_collect().await?;
    let folder = format!("{dir}/");
    Ok(objects
        .into_iter()
        .filter_map(|o| Some((o.location.as_ref().strip_prefix(&folder)?.to_string(), o.size, o.e_tag)))
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
    let meta = match parse_meta(block_id(dir), bytes.clone()) {
        Ok(meta) => meta,
        Err(e @ MetaError::UnsupportedVersion { .. }) => {
            // Its group may still be readable; then the block fails in its group's order.
            return match serde_json::from_slice::<BlockMeta>(&bytes) {
                Ok(meta) if meta.ulid.to_string() == block_id(dir) => Ok(SourceBlock::defective(
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
    let mark = if block.markers.deletion {
        Some(block_path(dir, DELETION_MARK))
    } else {
        // Mimir also keeps a tenant's deletion marks in its markers/ folder.
        global_deletion_mark(dir).map(|mark| folder_path(&mark))
    };
    if let Some(mark) = mark {
        match read_deletion_time(store, dir, &mark).await {
            Ok(Some(time)) => {
                block.markers.deletion = true;
                block.markers.deletion_time = time;
            }
            Ok(None) => {}
            Err(e) => {
                return Ok(SourceBlock::defective(dir, block.meta, Failure::new(FailureCause::Source, error_chain(&e))))
            }
        }
    }
    Ok(block)
}

/// A block's deletion mark at `path`: `None` when there is none, `Some(None)` when it is partial
/// or corrupt (which Thanos treats as no mark, with a warning), else its deletion time.
async fn read_deletion_time(
    store: &dyn ObjectStore,
    dir: &str,
    path: &Path,
) -> Result<Option<Option<i64>>, SourceError> {
    let bytes = match read_small(store, path, MAX_MARKER_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e @ SourceError::TooLarge { .. }) => {
            tracing::warn!(block = dir, error = %e, "ignoring an oversized deletion mark");
            return Ok(Some(None));
        }
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<DeletionMark>(&bytes) {
        Ok(mark) => Ok(Some(Some(mark.deletion_time))),
        Err(error) => {
            tracing::warn!(block = dir, %error, %path, "ignoring a partial or corrupt deletion mark");
            Ok(Some(None))
        }
    }
}
