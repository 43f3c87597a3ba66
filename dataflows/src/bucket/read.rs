//! Reading a source block: its meta.json, its deletion mark, and its plan.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};

use super::error::SourceError;
use super::inventory::Folder;
use super::listing::list_block;
use crate::model::block::{block_path, folder_path, SourceBlock};
use crate::model::failure::{error_chain, Failure, FailureCause};
use crate::model::group::Grouping;
use crate::model::layout::{block_id, global_deletion_mark};
use crate::model::markers::{DeletionMark, DELETION_MARK, MAX_MARKER_BYTES, MOVE_MODE_DETAILS};
use crate::model::meta::{
    group_of_unparsable, parse_meta, BlockMeta, MetaError, RawMeta, MAX_META_BYTES, META_FILENAME,
};
use crate::report::NO_META_JSON;

/// Why a listed block folder will not be replicated, when that is known before its group is.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// No meta.json, or one that is not JSON at all: an upload in progress or abandoned, skipped
    /// as Thanos does.
    Partial(String),
    /// meta.json says the block is of a format bucketflow cannot read: a failure of this block.
    Unsupported(String),
    /// meta.json could not be read (the store refused it, or it is beyond the size bound), or is
    /// JSON but no usable block metadata. The block may be older than blocks of its group that would commit without it,
    /// so it holds back its group: the one its meta.json names (`group`), when it names one.
    Unreadable { error: String, group: Option<String> },
}

/// Reads a small object whole, refusing one larger than `limit` without reading its body.
/// `None` when there is no such object. (A ranged read is not used: it fails on an empty object.)
pub(crate) async fn read_small(
    store: &dyn ObjectStore,
    path: &Path,
    limit: usize,
) -> Result<Option<Bytes>, SourceError> {
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
pub(crate) async fn read_meta_bytes(store: &dyn ObjectStore, dir: &str) -> Result<Option<Bytes>, SourceError> {
    read_small(store, &block_path(dir, META_FILENAME), MAX_META_BYTES).await
}

/// Reads and plans one source block from its `folder` as the run's listing saw it, grouping it as
/// the target compactor will. A folder without meta.json is a partial upload, known without a
/// request. Once meta.json is parsed, every later problem makes the block defective rather than
/// unusable, so that it keeps its place in its group's order.
pub(crate) async fn load_block(
    store: &dyn ObjectStore,
    dir: &str,
    folder: &Folder,
    grouping: &Grouping,
) -> Result<SourceBlock, Unusable> {
    if folder.meta.is_none() {
        return Err(Unusable::Partial(NO_META_JSON.into()));
    }
    let bytes = match read_meta_bytes(store, dir).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Unusable::Partial(NO_META_JSON.into())),
        // Thanos reads a meta.json of any size, so a block beyond the bound is valid to it: a
        // failure named as such, never a partial upload. Nothing waits for it: bucketflow never
        // copies it, so it can never land behind the blocks of its group that commit meanwhile.
        Err(e @ SourceError::TooLarge { .. }) => {
            return Err(Unusable::Unsupported(format!("{e}: bucketflow never reads a meta.json that large")))
        }
        Err(e) => return Err(Unusable::Unreadable { error: error_chain(&e), group: None }),
    };
    let defective = |bytes: &Bytes, cause: FailureCause, error: &MetaError| {
        // A meta.json that names its group and time range fails in its group's order.
        let meta = serde_json::from_slice::<BlockMeta>(bytes).ok()?;
        let raw = RawMeta { bytes: bytes.clone(), meta };
        Some(SourceBlock::defective(dir, raw, Failure::new(cause, error.to_string()), grouping))
    };
    let meta = match parse_meta(block_id(dir), bytes.clone()) {
        Ok(meta) => meta,
        Err(e @ MetaError::UnsupportedVersion { .. }) => {
            return defective(&bytes, FailureCause::Unsupported, &e).ok_or(Unusable::Unsupported(e.to_string()));
        }
        Err(e @ MetaError::UlidMismatch { .. }) => {
            return defective(&bytes, FailureCause::Source, &e).ok_or(Unusable::Partial(e.to_string()));
        }
        Err(e) if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() => {
            let group = group_of_unparsable(dir, &bytes, grouping);
            return Err(Unusable::Unreadable { error: e.to_string(), group });
        }
        Err(e) => return Err(Unusable::Partial(e.to_string())),
    };
    // The run's listing may have passed an object's place before an upload in progress wrote it,
    // and still seen its meta.json. What meta.json lists is checked against the listing, so such
    // a block fails this run; a meta.json that lists nothing cannot be checked, and its folder
    // is listed again, now that meta.json is known to be there.
    let listing = if meta.meta.thanos.files.is_empty() {
        match list_block(store, dir).await {
            Ok(listing) => listing,
            Err(e) => {
                let failure = Failure::new(FailureCause::Source, error_chain(&e));
                return Ok(SourceBlock::defective(dir, meta, failure, grouping));
            }
        }
    } else {
        folder.sizes()
    };
    let mut block = SourceBlock::plan(dir, meta, listing, grouping);
    let mark = if block.markers.deletion {
        Some(block_path(dir, DELETION_MARK))
    } else if folder.tenant_deletion_mark {
        // Mimir also keeps a tenant's deletion marks in its markers/ folder.
        global_deletion_mark(dir).map(|mark| folder_path(&mark))
    } else {
        None
    };
    if let Some(mark) = mark {
        match read_deletion_mark(store, dir, &mark).await {
            Ok(Some(read)) => {
                block.markers.deletion = true;
                block.markers.deletion_time = read.as_ref().map(|m| m.deletion_time);
                block.markers.deletion_by_move = read.is_some_and(|m| m.details.as_deref() == Some(MOVE_MODE_DETAILS));
            }
            Ok(None) => {}
            Err(e) => {
                let failure = Failure::new(FailureCause::Source, error_chain(&e));
                return Ok(block.with_defect(failure));
            }
        }
    }
    Ok(block)
}

/// A block's deletion mark at `path`: `None` when there is none, `Some(None)` when it is partial
/// or corrupt (which Thanos treats as no mark, with a warning), else the mark.
pub(crate) async fn read_deletion_mark(
    store: &dyn ObjectStore,
    dir: &str,
    path: &Path,
) -> Result<Option<Option<DeletionMark>>, SourceError> {
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
        Ok(mark) => Ok(Some(Some(mark))),
        Err(error) => {
            tracing::warn!(block = dir, %error, %path, "ignoring a partial or corrupt deletion mark");
            Ok(Some(None))
        }
    }
}
