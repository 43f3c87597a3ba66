//! Move mode: once a block is visible in the target and every one of its objects is there with
//! the source's size, a Thanos deletion mark is written into the source block, so that the
//! source's compactor deletes it after its delete delay. This is the only write bucketflow ever
//! makes to a source, and only when asked for.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ulid::Ulid;

use super::error::SourceError;
use super::listing::list_block;
use crate::model::block::{block_path, folder_path};
use crate::model::layout::{block_id, global_deletion_mark};
use crate::model::markers::{is_marker, DeletionMark, DELETION_MARK, MOVE_MODE_DETAILS};

#[derive(Debug, thiserror::Error)]
pub(crate) enum MarkError {
    #[error("not marking block {block} for deletion in the source")]
    Listing {
        block: String,
        #[source]
        source: SourceError,
    },
    #[error("not marking block {block} for deletion in the source: {rel_path} is not in the target with the source's {size} bytes")]
    NotInTarget { block: String, rel_path: String, size: u64 },
    #[error("not marking {block} for deletion in the source: its folder name is not a block ULID")]
    NotABlock { block: String },
    #[error("writing the deletion mark of block {block} into the source")]
    Write {
        block: String,
        #[source]
        source: object_store::Error,
    },
}

/// Writes deletion marks into a source's blocks, after checking them in the target.
#[derive(Clone)]
pub(crate) struct SourceMarker {
    /// The source as move mode may write it: deletion marks only.
    pub writer: Arc<dyn ObjectStore>,
    pub target: Arc<dyn ObjectStore>,
}

impl SourceMarker {
    /// Marks block `dir` of the source for deletion at `now_seconds`, once every object of the
    /// source block (markers aside) is in the target with the same size. `false` when the source
    /// block had a deletion mark already (which is left as it is, with its own time).
    pub(crate) async fn mark(&self, dir: &str, now_seconds: i64) -> Result<bool, MarkError> {
        let listing = |store: Arc<dyn ObjectStore>| async move {
            list_block(&*store, dir).await.map_err(|source| MarkError::Listing { block: dir.to_string(), source })
        };
        let source: Vec<(String, u64)> = listing(self.writer.clone()).await?;
        // A mark already there, in the block or (Mimir, Cortex) in the tenant's markers/ folder,
        // keeps its own time.
        let global = global_deletion_mark(dir).map(|mark| folder_path(&mark));
        let marked_globally = match &global {
            Some(path) => self.writer.head(path).await.is_ok(),
            None => false,
        };
        if marked_globally || source.iter().any(|(rel, _)| rel == DELETION_MARK) {
            return Ok(false);
        }
        let target: BTreeMap<String, u64> = listing(self.target.clone()).await?.into_iter().collect();
        for (rel_path, size) in source.into_iter().filter(|(rel, _)| !is_marker(rel)) {
            if target.get(&rel_path) != Some(&size) {
                return Err(MarkError::NotInTarget { block: dir.to_string(), rel_path, size });
            }
        }
        let id = Ulid::from_string(block_id(dir)).map_err(|_| MarkError::NotABlock { block: dir.to_string() })?;
        let mark = DeletionMark {
            id,
            deletion_time: now_seconds,
            version: DeletionMark::VERSION,
            details: Some(MOVE_MODE_DETAILS.into()),
        };
        let json = serde_json::to_vec(&mark).expect("a deletion mark always serializes");
        // Mimir and Cortex read a tenant's marks from its markers/ folder too: both are written,
        // the block's own last, since that is the one this check looks for.
        let paths = global.into_iter().chain([block_path(dir, DELETION_MARK)]);
        for path in paths {
            self.writer
                .put(&path, PutPayload::from(json.clone()))
                .await
                .map_err(|source| MarkError::Write { block: dir.to_string(), source })?;
        }
        Ok(true)
    }
}
