//! A simulated target compactor: the adversary a replication must be safe against.
//!
//! It acts on a target store as a Thanos or Mimir compactor does, in miniature, each rule after
//! the source it comes from (thanos-io/thanos as of v0.42; grafana/mimir):
//! - Reading metas ([`SimulatedCompactor::visible`]): a meta.json is read whole, as Thanos's
//!   `BaseFetcher.loadMeta` reads it with `io.ReadAll` and no bound (pkg/block/fetcher.go). A
//!   missing one, or one that is no JSON, makes its folder partial (`ErrorSyncMetaNotFound`,
//!   `ErrorSyncMetaCorrupted`); any other error makes the whole view incomplete, and the
//!   compactor does nothing that pass (`Syncer.SyncMetas` turns the fetch error into a retry,
//!   pkg/compact/compact.go). Blocks younger than the consistency delay (30m by default, by
//!   `thanos.upload_time` or else the ULID's time) are not seen, except the compactor's own
//!   (`ConsistencyDelayMetaFilter`, pkg/block/fetcher.go).
//! - Grouping: Thanos's group key after its `--deduplication.replica-label` labels are removed
//!   (`ReplicaLabelRemover`, then `DefaultGroupKey`); Mimir's per tenant, without the shard label
//!   ([`SimulatedCompactor::mimir`]; `splitAndMergeGrouper`, pkg/compactor/split_merge_grouper.go).
//! - Deduplication ([`SimulatedCompactor::compact`]): a block whose `compaction.sources` another
//!   block of its group holds is a duplicate, the lowest ULID of equal source sets kept
//!   (`DefaultDeduplicateFilter`, pkg/block/fetcher.go); duplicates are marked and deleted
//!   (`Syncer.GarbageCollect`, pkg/compact/compact.go; here at once rather than after
//!   `--delete-delay`).
//! - Overlaps: two blocks of a group that overlap, neither holding the other, halt a Thanos
//!   compactor (`Group.compact` returns a `HaltError`, pkg/compact/compact.go) unless it
//!   compacts vertically (`--compact.enable-vertical-compaction`, or any
//!   `--deduplication.replica-label`); Mimir and Cortex always merge them.
//! - Planning: the newest block of a group is left out, and the visible blocks before it merge
//!   into one that records their sources, around any gap (`tsdbBasedPlanner`,
//!   pkg/compact/planner.go, in miniature: one level).
//! - Partial uploads ([`SimulatedCompactor::clean_partial`]): a folder without meta.json is
//!   deleted once it is older than the partial-upload threshold (`PartialUploadThresholdAge`,
//!   48h, in `BestEffortCleanAbortedPartialUploads`, pkg/compact/clean.go): by the ULID's time
//!   in older Thanos, which a mirrored block's always exceeds, and in recent ones by its
//!   objects' last modification (the function's test ages the objects, not the ULID). Mimir marks such a folder after
//!   `-compactor.partial-block-deletion-delay` (1d) by its objects' age, Cortex only when it
//!   carries a deletion mark. The simulation takes an age by last modification, which may be
//!   zero: the worst case.
//!
//! A merged block is written as a real uploader writes one (objects, then meta.json), and the
//! blocks it replaces are deleted meta.json first, so that an observer never sees a visible
//! incomplete block of its making.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::json;
use ulid::Ulid;

use crate::model::block::block_path;
use crate::model::group::Grouping;
use crate::model::meta::{parse_meta, BlockMeta, MetaError};

/// A visible block as the compactor reads it.
#[derive(Debug, Clone)]
pub struct SeenBlock {
    /// Its folder.
    pub dir: String,
    /// Its group, as the compactor forms groups.
    pub group: String,
    /// Its parsed meta.json.
    pub meta: BlockMeta,
    /// Its sources, sorted.
    pub sources: BTreeSet<Ulid>,
}

impl SeenBlock {
    /// Whether the two blocks' `[minTime, maxTime)` ranges overlap.
    pub fn overlaps(&self, other: &SeenBlock) -> bool {
        self.meta.min_time < other.meta.max_time && other.meta.min_time < self.meta.max_time
    }

    /// Whether this block holds every source of `other`.
    pub fn holds(&self, other: &SeenBlock) -> bool {
        other.sources.is_subset(&self.sources)
    }
}

/// The simulated compactor of one target store.
pub struct SimulatedCompactor {
    store: Arc<dyn ObjectStore>,
    grouping: Grouping,
    /// It merges overlapping blocks rather than halting on them.
    pub vertical: bool,
    halted: AtomicBool,
    merges: AtomicU64,
    cleaned: AtomicU64,
    incomplete_views: AtomicU64,
    next: AtomicU64,
    /// One duty at a time, as one compactor loop does them: a cleanup must never see a merged
    /// block between its objects and its meta.json.
    busy: tokio::sync::Mutex<()>,
}

impl SimulatedCompactor {
    /// A compactor of `store` that strips `replica_labels` before grouping (and then compacts
    /// vertically, as Thanos's does).
    pub fn new(store: Arc<dyn ObjectStore>, replica_labels: Vec<String>) -> Self {
        let vertical = !replica_labels.is_empty();
        SimulatedCompactor {
            store,
            grouping: Grouping { replica_labels, per_tenant: false },
            vertical,
            halted: AtomicBool::new(false),
            merges: AtomicU64::new(0),
            cleaned: AtomicU64::new(0),
            incomplete_views: AtomicU64::new(0),
            next: AtomicU64::new(1),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// A Mimir (or Cortex) compactor of `store`, a bucket of tenant folders: it groups per
    /// tenant, without the shard label, and merges overlapping blocks of a tenant (several
    /// ingesters upload one range each), never halting on them.
    pub fn mimir(store: Arc<dyn ObjectStore>) -> Self {
        let compactor = SimulatedCompactor::new(store, Vec::new());
        SimulatedCompactor {
            grouping: Grouping { replica_labels: Vec::new(), per_tenant: true },
            vertical: true,
            ..compactor
        }
    }

    /// How many partial folders it deleted.
    pub fn cleaned(&self) -> u64 {
        self.cleaned.load(Ordering::SeqCst)
    }

    /// How many passes it skipped because a meta.json could not be read.
    pub fn incomplete_views(&self) -> u64 {
        self.incomplete_views.load(Ordering::SeqCst)
    }

    /// Whether it ever met an overlap it halts on.
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// How many blocks it wrote by merging others.
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::SeqCst)
    }

    /// The visible blocks (those with a meta.json that parses), by folder; an error when a
    /// meta.json could not be read (the view is incomplete, see the module).
    pub async fn visible(&self) -> object_store::Result<BTreeMap<String, SeenBlock>> {
        let objects: Vec<_> = self.store.list(None).try_collect().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut blocks = BTreeMap::new();
        for object in objects.iter().filter(|o| o.location.filename() == Some("meta.json")) {
            let dir = object.location.as_ref().trim_end_matches("/meta.json").to_string();
            let bytes = match self.store.get(&object.location).await {
                Ok(result) => result.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let meta = match parse_meta(crate::model::layout::block_id(&dir), bytes) {
                Ok(raw) => raw.meta,
                // Go reads a missing field as zero and keeps the block, which this model cannot
                // do: it stops the pass instead, as an unreadable meta.json does.
                Err(MetaError::Parse { reason, .. }) if !reason.starts_with("missing field") => continue,
                Err(e) => return Err(object_store::Error::Generic { store: "compactor", source: Box::new(e) }),
            };
            let uploaded =
                meta.thanos.upload_time.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let uploaded = uploaded.map_or(meta.ulid.timestamp_ms() as i64, |t| t.timestamp_millis());
            if meta.thanos.source != "compactor" && uploaded + CONSISTENCY_DELAY_MILLIS > now {
                continue;
            }
            let mut sources: BTreeSet<Ulid> = meta.compaction.sources.iter().copied().collect();
            if sources.is_empty() {
                sources.insert(meta.ulid);
            }
            let group = meta.group_key(&dir, &self.grouping);
            blocks.insert(dir.clone(), SeenBlock { dir, group, meta, sources });
        }
        Ok(blocks)
    }

    /// One pass of the planner over every group; returns whether it changed anything.
    pub async fn compact(&self) -> object_store::Result<bool> {
        let _busy = self.busy.lock().await;
        let Ok(visible) = self.visible().await else {
            self.incomplete_views.fetch_add(1, Ordering::SeqCst);
            return Ok(false);
        };
        let mut groups: BTreeMap<String, Vec<SeenBlock>> = BTreeMap::new();
        for block in visible.into_values() {
            groups.entry(block.group.clone()).or_default().push(block);
        }
        let mut changed = false;
        for blocks in groups.values_mut() {
            // Duplicates first, as Thanos's deduplication filter drops them before planning.
            let duplicates: Vec<SeenBlock> = blocks
                .iter()
                .filter(|b| {
                    blocks.iter().any(|o| o.dir != b.dir && o.holds(b) && (o.sources != b.sources || o.dir < b.dir))
                })
                .cloned()
                .collect();
            for duplicate in &duplicates {
                self.delete_block(&duplicate.dir).await?;
                changed = true;
            }
            blocks.retain(|b| !duplicates.iter().any(|d| d.dir == b.dir));
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
            let Some(newest) = blocks.last().cloned() else { continue };
            let older: Vec<&SeenBlock> = blocks.iter().filter(|b| b.meta.max_time <= newest.meta.min_time).collect();
            let halts = blocks.iter().enumerate().any(|(i, a)| blocks[i + 1..].iter().any(|b| a.overlaps(b)));
            if halts && !self.vertical {
                self.halted.store(true, Ordering::SeqCst);
                continue;
            }
            if older.len() >= 2 {
                self.merge(&older).await?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Writes one block holding every source of `blocks`, then deletes them.
    async fn merge(&self, blocks: &[&SeenBlock]) -> object_store::Result<()> {
        let min_time = blocks.iter().map(|b| b.meta.min_time).min().unwrap_or_default();
        let max_time = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or_default();
        let sources: BTreeSet<Ulid> = blocks.iter().flat_map(|b| b.sources.iter().copied()).collect();
        let level = blocks.iter().map(|b| b.meta.compaction.level).max().unwrap_or(1) + 1;
        let ulid = Ulid::from_parts(max_time as u64, u128::from(self.next.fetch_add(1, Ordering::SeqCst)) << 64);
        // A tenant's merged block stays in the tenant's folder.
        let dir = match crate::model::layout::tenant_of(&blocks[0].dir) {
            Some(tenant) => format!("{tenant}/{ulid}"),
            None => ulid.to_string(),
        };
        let labels = self.grouping.labels(&blocks[0].meta.thanos.labels);
        let index = Bytes::from(format!("merged index of {} blocks", blocks.len()));
        let meta = json!({
            "ulid": ulid.to_string(), "minTime": min_time, "maxTime": max_time, "version": 1,
            "compaction": {"level": level, "sources": sources.iter().map(Ulid::to_string).collect::<Vec<_>>()},
            "thanos": {
                "labels": labels,
                "downsample": {"resolution": blocks[0].meta.thanos.downsample.resolution},
                "source": "compactor",
                "files": [{"rel_path": "index", "size_bytes": index.len()}, {"rel_path": "meta.json"}],
            }
        });
        self.store.put(&block_path(&dir, "index"), PutPayload::from(index)).await?;
        let meta = serde_json::to_vec(&meta).expect("a JSON value serialises");
        self.store.put(&block_path(&dir, "meta.json"), PutPayload::from(meta)).await?;
        self.merges.fetch_add(1, Ordering::SeqCst);
        for block in blocks {
            self.delete_block(&block.dir).await?;
        }
        Ok(())
    }

    /// Deletes a block folder, meta.json first, so that it is never visible incomplete.
    async fn delete_block(&self, dir: &str) -> object_store::Result<()> {
        match self.store.delete(&block_path(dir, "meta.json")).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let prefix = object_store::path::Path::from(dir);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        for object in objects {
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes every folder without a meta.json whose newest object is older than `min_age`;
    /// returns how many.
    pub async fn clean_partial(&self, min_age: Duration) -> object_store::Result<usize> {
        self.clean_partial_among(min_age, None).await
    }

    /// [`SimulatedCompactor::clean_partial`] among the folders `among` only (all when `None`):
    /// an adversary that strikes at a chosen moment takes the folders it chooses.
    pub async fn clean_partial_among(
        &self,
        min_age: Duration,
        among: Option<&[String]>,
    ) -> object_store::Result<usize> {
        let _busy = self.busy.lock().await;
        let objects: Vec<_> = self.store.list(None).try_collect().await?;
        let mut folders: BTreeMap<String, (bool, chrono::DateTime<chrono::Utc>)> = BTreeMap::new();
        for object in &objects {
            let Some(dir) = block_folder(object.location.as_ref()) else { continue };
            let folder = folders.entry(dir).or_insert((false, object.last_modified));
            folder.0 |= object.location.filename() == Some("meta.json");
            folder.1 = folder.1.max(object.last_modified);
        }
        let old_enough = chrono::Utc::now() - chrono::Duration::from_std(min_age).unwrap_or_default();
        let partial: Vec<String> = folders
            .into_iter()
            .filter(|(dir, (visible, newest))| {
                !visible && *newest <= old_enough && among.is_none_or(|a| a.contains(dir))
            })
            .map(|(d, _)| d)
            .collect();
        for dir in &partial {
            self.delete_block(dir).await?;
        }
        self.cleaned.fetch_add(partial.len() as u64, Ordering::SeqCst);
        Ok(partial.len())
    }
}

/// Thanos's default consistency delay (`--consistency-delay`).
const CONSISTENCY_DELAY_MILLIS: i64 = 30 * 60 * 1000;

/// The block folder an object path is in: `<ULID>` or `<tenant>/<ULID>`.
fn block_folder(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    let first = parts.next()?;
    if first.parse::<Ulid>().is_ok() {
        return Some(first.to_string());
    }
    let second = parts.next()?;
    second.parse::<Ulid>().is_ok().then(|| format!("{first}/{second}"))
}
