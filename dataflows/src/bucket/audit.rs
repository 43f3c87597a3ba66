//! Auditing one bucket: is every visible block (one with a meta.json) complete, which uploads are
//! partial, and how each compaction group's blocks line up in time.
//!
//! An audit reads; it never writes. It is what an operator runs after a migration: a visible
//! block that is incomplete is exactly what a store gateway or compactor would trip over.

use std::collections::BTreeMap;

use futures::StreamExt;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::copy::sha256_of;
use super::error::SourceError;
use super::listing::{list_block, list_blocks};
use super::read::read_meta_bytes;
use crate::model::block::{block_path, SourceBlock};
use crate::model::failure::error_chain;
use crate::model::group::Grouping;
use crate::model::layout::{block_id, Layout};
use crate::model::meta::parse_meta;

/// How an audit reads.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Blocks audited at once.
    pub concurrency: usize,
    /// Read every object whose SHA256 meta.json lists, and compare. Off: sizes only.
    pub check_hashes: bool,
    /// The clock that partial uploads' ages are measured against, in Unix milliseconds.
    pub now_millis: i64,
    /// Where the blocks are. In a tenants bucket, a time line is a tenant's group.
    pub layout: Layout,
    /// Labels stripped before grouping (the compactor's `--deduplication.replica-label`), so
    /// that the replicas of an HA pair share one time line.
    pub replica_labels: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            concurrency: 16,
            check_hashes: true,
            now_millis: chrono::Utc::now().timestamp_millis(),
            layout: Layout::Thanos,
            replica_labels: Vec::new(),
        }
    }
}

/// A visible block's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BlockStatus {
    /// Every object meta.json lists is there, with the listed size (and SHA256, when checked).
    Complete,
    /// meta.json promises what the bucket does not hold.
    Incomplete {
        /// Each missing or mismatched object, one message per problem.
        problems: Vec<String>,
    },
    /// meta.json is there but cannot be read or parsed.
    UnreadableMeta {
        /// Why meta.json could not be used, with its error chain.
        error: String,
    },
}

/// Where a block stands against the one before it in its group's time order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeNote {
    /// No block covers `millis` before this one.
    Gap {
        /// Milliseconds between the end of the group's earlier blocks and this block's minTime.
        millis: i64,
        /// The earlier block of the group that ends last, after which the gap opens.
        after: String,
    },
    /// This block starts `millis` before the previous one ends.
    Overlap {
        /// Milliseconds by which this block's minTime precedes the end of the earlier blocks.
        millis: i64,
        /// The earlier block of the group that ends last, which this block overlaps.
        with: String,
    },
}

/// One visible block's line in the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAudit {
    /// The block folder: its ULID, under its tenant in a tenants bucket.
    pub block: String,
    /// Unknown when meta.json is unreadable.
    pub group: Option<String>,
    /// The block's minTime in Unix milliseconds; unknown when meta.json is unreadable.
    pub min_time: Option<i64>,
    /// The block's maxTime in Unix milliseconds; unknown when meta.json is unreadable.
    pub max_time: Option<i64>,
    /// The block's compaction level; unknown when meta.json is unreadable.
    pub level: Option<i64>,
    /// Whether the block has a deletion mark.
    pub marked_for_deletion: bool,
    /// Whether the block is complete.
    #[serde(flatten)]
    pub status: BlockStatus,
    /// The gap or overlap with the earlier blocks of its group; `None` when they line up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_note: Option<TimeNote>,
}

/// A block folder without meta.json: an upload in progress, or one abandoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialBlock {
    /// The block folder: its ULID, under its tenant in a tenants bucket.
    pub block: String,
    /// Objects in the folder.
    pub objects: usize,
    /// Bytes of those objects.
    pub bytes: u64,
    /// Since the block's ULID was made (Thanos's partial-upload cleanup goes by the same age).
    pub age_seconds: i64,
}

/// How many blocks the audit found of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCounts {
    /// Visible blocks that hold everything their meta.json lists.
    pub complete: usize,
    /// Visible blocks with missing or mismatched objects.
    pub incomplete: usize,
    /// Visible blocks whose meta.json cannot be read or parsed.
    pub unreadable_meta: usize,
    /// Block folders without meta.json.
    pub partial: usize,
    /// Blocks with a gap before them in their group's time line.
    pub gaps: usize,
    /// Blocks that overlap the earlier blocks of their group.
    pub overlaps: usize,
}

/// What an audit found. Visible blocks are grouped by compaction group, each group in
/// (minTime, ULID) order; blocks whose meta.json is unreadable come last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The visible blocks, by compaction group and (minTime, ULID); unreadable ones last.
    pub blocks: Vec<BlockAudit>,
    /// The block folders without meta.json, by name.
    pub partial: Vec<PartialBlock>,
    /// How many blocks of each kind the audit found.
    pub counts: AuditCounts,
}

impl AuditReport {
    /// A visible block is incomplete or unreadable: the bucket is not safe to serve.
    pub fn has_broken_blocks(&self) -> bool {
        self.counts.incomplete + self.counts.unreadable_meta > 0
    }
}

/// An audit that could not list the bucket's block folders.
#[derive(Debug, thiserror::Error)]
#[error("auditing the bucket")]
pub struct AuditError(#[source] SourceError);

enum Found {
    Visible(BlockAudit),
    Partial(PartialBlock),
}

/// Audits every block folder of `store`.
pub async fn audit(store: &dyn ObjectStore, config: &AuditConfig) -> Result<AuditReport, AuditError> {
    let dirs = list_blocks(store, &config.layout).await.map_err(AuditError)?;
    let found: Vec<Found> = futures::stream::iter(dirs)
        .map(|dir| audit_block(store, dir, config))
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    let mut visible = Vec::new();
    let mut partial = Vec::new();
    for f in found {
        match f {
            Found::Visible(block) => visible.push(block),
            Found::Partial(block) => partial.push(block),
        }
    }
    partial.sort_by(|a, b| a.block.cmp(&b.block));
    let blocks = timeline(visible);
    let mut counts = AuditCounts { partial: partial.len(), ..AuditCounts::default() };
    for b in &blocks {
        match b.status {
            BlockStatus::Complete => counts.complete += 1,
            BlockStatus::Incomplete { .. } => counts.incomplete += 1,
            BlockStatus::UnreadableMeta { .. } => counts.unreadable_meta += 1,
        }
        match b.time_note {
            Some(TimeNote::Gap { .. }) => counts.gaps += 1,
            Some(TimeNote::Overlap { .. }) => counts.overlaps += 1,
            None => {}
        }
    }
    Ok(AuditReport { blocks, partial, counts })
}

async fn audit_block(store: &dyn ObjectStore, dir: String, config: &AuditConfig) -> Found {
    let unreadable = |dir: String, error: String| {
        Found::Visible(BlockAudit {
            block: dir,
            group: None,
            min_time: None,
            max_time: None,
            level: None,
            marked_for_deletion: false,
            status: BlockStatus::UnreadableMeta { error },
            time_note: None,
        })
    };
    let listing = match list_block(store, &dir).await {
        Ok(listing) => listing,
        Err(e) => return unreadable(dir, error_chain(&e)),
    };
    let bytes = match read_meta_bytes(store, &dir).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            let born = Ulid::from_string(block_id(&dir)).map(|u| u.timestamp_ms() as i64).unwrap_or(config.now_millis);
            return Found::Partial(PartialBlock {
                objects: listing.len(),
                bytes: listing.iter().map(|(_, size)| size).sum(),
                age_seconds: (config.now_millis - born).max(0) / 1000,
                block: dir,
            });
        }
        Err(e) => return unreadable(dir, error_chain(&e)),
    };
    let meta = match parse_meta(block_id(&dir), bytes) {
        Ok(meta) => meta,
        Err(e) => return unreadable(dir, error_chain(&e)),
    };
    // The replicator's own plan checks what meta.json lists against the listing.
    let grouping = Grouping {
        replica_labels: config.replica_labels.clone(),
        per_tenant: matches!(config.layout, Layout::Tenants(_)),
    };
    let block = SourceBlock::plan(&dir, meta, listing, &grouping);
    let mut problems: Vec<String> = block.defect.iter().map(|d| d.error.clone()).collect();
    if config.check_hashes && problems.is_empty() {
        for object in block.objects.iter().filter(|o| o.sha256.is_some()) {
            let path = block_path(&dir, &object.rel_path);
            match sha256_of(store, &path).await {
                Ok(actual) if Some(actual) == object.sha256 => {}
                Ok(actual) => problems.push(format!(
                    "{path}: SHA256 {actual} differs from meta.json's {}",
                    object.sha256.map(|d| d.to_string()).unwrap_or_default()
                )),
                Err(e) => problems.push(format!("reading {path}: {}", error_chain(&e))),
            }
        }
    }
    let meta = &block.summary;
    let group = block.group.clone();
    Found::Visible(BlockAudit {
        group: Some(group),
        min_time: Some(meta.min_time),
        max_time: Some(meta.max_time),
        level: Some(meta.level),
        marked_for_deletion: block.markers.deletion,
        status: if problems.is_empty() { BlockStatus::Complete } else { BlockStatus::Incomplete { problems } },
        time_note: None,
        block: dir,
    })
}

/// Orders the blocks by group and (minTime, ULID), and notes each block's gap or overlap with the
/// block before it in its group.
fn timeline(mut blocks: Vec<BlockAudit>) -> Vec<BlockAudit> {
    blocks.sort_by(|a, b| {
        (a.group.is_none(), &a.group, a.min_time, &a.block).cmp(&(b.group.is_none(), &b.group, b.min_time, &b.block))
    });
    let mut previous: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for block in &mut blocks {
        let (Some(group), Some(min), Some(max)) = (&block.group, block.min_time, block.max_time) else {
            continue;
        };
        if let Some((prev_max, prev)) = previous.get(group) {
            block.time_note = match min.cmp(prev_max) {
                std::cmp::Ordering::Greater => {
                    Some(TimeNote::Gap { millis: min.saturating_sub(*prev_max), after: prev.clone() })
                }
                std::cmp::Ordering::Less => {
                    Some(TimeNote::Overlap { millis: prev_max.saturating_sub(min), with: prev.clone() })
                }
                std::cmp::Ordering::Equal => None,
            };
        }
        // A block inside the previous one's range must not hide a gap after the longer one.
        let end = previous.get(group).map_or(max, |(prev_max, _)| max.max(*prev_max));
        let by = if end == max { block.block.clone() } else { previous[group].1.clone() };
        previous.insert(group.clone(), (end, by));
    }
    blocks
}
