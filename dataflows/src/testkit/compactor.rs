//! A simulated target compactor: the adversary a replication must be safe against.
//!
//! It acts on a target store as a Thanos compactor does, in miniature:
//! - [`SimulatedCompactor::compact`]: in each group (labels minus replica labels), as soon as a
//!   newer block of the group is visible, the visible blocks before it merge into one block that
//!   records their sources, as the leveled planner does (it compacts around any gap). A block
//!   whose sources another block holds is deleted as a duplicate. Two blocks that overlap,
//!   neither holding the other, halt it, unless it compacts vertically (then they merge too).
//! - [`SimulatedCompactor::clean_partial`]: folders without a meta.json are deleted, as aborted
//!   uploads are once older than the compactor's delay.
//!
//! A merged block is written as a real uploader writes one (objects, then meta.json), and the
//! blocks it replaces are deleted meta.json first, so that an observer never sees a visible
//! incomplete block of its making.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::json;
use ulid::Ulid;

use crate::model::block::block_path;
use crate::model::group::Grouping;
use crate::model::meta::{parse_meta, BlockMeta};

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
            next: AtomicU64::new(1),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether it ever met an overlap it halts on.
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    /// How many blocks it wrote by merging others.
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::SeqCst)
    }

    /// The visible blocks (those with a meta.json that parses), by folder.
    pub async fn visible(&self) -> object_store::Result<BTreeMap<String, SeenBlock>> {
        let objects: Vec<_> = self.store.list(None).try_collect().await?;
        let mut blocks = BTreeMap::new();
        for object in objects.iter().filter(|o| o.location.filename() == Some("meta.json")) {
            let dir = object.location.as_ref().trim_end_matches("/meta.json").to_string();
            let Ok(result) = self.store.get(&object.location).await else { continue };
            let Ok(bytes) = result.bytes().await else { continue };
            let Ok(raw) = parse_meta(&dir, bytes) else { continue };
            let meta = raw.meta;
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
        let mut groups: BTreeMap<String, Vec<SeenBlock>> = BTreeMap::new();
        for block in self.visible().await?.into_values() {
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
        let dir = ulid.to_string();
        let labels = self.grouping.labels(&blocks[0].meta.thanos.labels);
        let index = Bytes::from(format!("merged index of {} blocks", blocks.len()));
        let meta = json!({
            "ulid": dir, "minTime": min_time, "maxTime": max_time, "version": 1,
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

    /// Deletes every folder without a meta.json; returns how many.
    pub async fn clean_partial(&self) -> object_store::Result<usize> {
        let _busy = self.busy.lock().await;
        let objects: Vec<_> = self.store.list(None).try_collect().await?;
        let mut folders: BTreeMap<String, bool> = BTreeMap::new();
        for object in &objects {
            let Some((dir, _)) = object.location.as_ref().split_once('/') else { continue };
            *folders.entry(dir.to_string()).or_default() |= object.location.filename() == Some("meta.json");
        }
        let partial: Vec<String> = folders.into_iter().filter(|(_, visible)| !visible).map(|(d, _)| d).collect();
        for dir in &partial {
            self.delete_block(dir).await?;
        }
        Ok(partial.len())
    }
}
