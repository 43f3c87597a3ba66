//! What the target's compactor sees: the target's visible blocks, by compaction group.
//!
//! A Thanos compactor halts on two blocks of a group whose time ranges overlap (unless it
//! compacts vertically), treats a time range as done once a newer block of the group is visible,
//! and deletes blocks that it merged into another (the merged block lists them in
//! `compaction.sources`). So before a source block is made visible in the target, it is judged
//! against the target's visible blocks of its group: covered (merged already: never copied
//! again), overlapping (never committed), or late (committed, and counted).
//!
//! Block metas are immutable by ULID, so the index reads each target meta.json once per process
//! and keeps a small record of it; a run lists the target's block folders and reads only the
//! metas of folders it has not seen, and only once a source block has to be judged against them.
//! A folder that disappears from the listing is forgotten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use object_store::ObjectStore;
use tokio::sync::OnceCell;
use ulid::Ulid;

use super::inventory::{take_inventory, Inventory, Side, Validator};
use super::meta_cache::CacheFile;
use super::read::read_meta_bytes;
use crate::model::block::{SourceBlock, TargetListing};
use crate::model::failure::{error_chain, Failure, FailureCause};
use crate::model::group::Grouping;
use crate::model::layout::{block_id, tenant_of, Layout};
use crate::model::meta::{is_subset, parse_meta, MetaError, MetaSummary};
use crate::report::Outcome;

/// A visible target block, as far as judging source blocks needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TargetBlock {
    pub(crate) dir: String,
    pub(crate) ulid: Ulid,
    pub(crate) group: String,
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    /// Its downsampling resolution in milliseconds (0: raw). Required in a cache file: an older
    /// file without it is read as corrupt and ignored, never taken as raw.
    pub(crate) resolution: i64,
    /// Its compaction level (1: as Prometheus uploaded it).
    pub(crate) level: i64,
    /// The level-1 blocks this block holds, sorted (itself, for an uncompacted block).
    pub(crate) sources: Vec<Ulid>,
}

impl TargetBlock {
    /// The block in folder `dir` whose meta.json says `summary`.
    fn new(dir: &str, summary: &MetaSummary, grouping: &Grouping) -> Self {
        TargetBlock {
            dir: dir.to_string(),
            ulid: summary.ulid,
            group: grouping.key(dir, summary.resolution, &summary.labels),
            min_time: summary.min_time,
            max_time: summary.max_time,
            resolution: summary.resolution,
            level: summary.level,
            sources: summary.sources.clone(),
        }
    }
}

/// How a source block stands against the target's visible blocks of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing in the target stands in its way, and nothing newer is visible.
    Fresh,
    /// A target block already holds every source of this block: copying it would only make the
    /// compactor delete it again.
    Covered { by: String },
    /// It would overlap this visible target block, neither holding the other.
    Overlaps { with: String, min_time: i64, max_time: i64 },
    /// Older than the newest visible block of its group, overlapping nothing: the compactor may
    /// already have planned around the gap it fills.
    Late { behind: String },
}

impl Verdict {
    /// The outcome of `block` when this verdict refuses it (covered, or overlapping), logged, with
    /// what was copied of it already; `None` when it goes on. `earlier_in_run`: the block it meets
    /// was committed earlier in run `run`, rather than listed in the target at its start.
    pub(crate) fn refusal(
        &self,
        block: &SourceBlock,
        run: u64,
        earlier_in_run: bool,
        (objects_copied, bytes_copied): (u64, u64),
    ) -> Option<Outcome> {
        let (dir, group) = (&block.dir, &block.group);
        match self {
            Verdict::Fresh | Verdict::Late { .. } => None,
            Verdict::Covered { by } => {
                let why = match earlier_in_run {
                    true => "not committed: a block committed before it in this run holds it",
                    false => "not copied: the target compacted it into another block",
                };
                tracing::info!(block = %dir, group = %group, run, covered_by = %by, "{why}");
                Some(Outcome::Covered { by: by.clone() })
            }
            Verdict::Overlaps { with, min_time, max_time } => {
                let whose = match earlier_in_run {
                    true => {
                        format!("block {with} [{min_time}, {max_time}) of its group, committed before it in this run,")
                    }
                    false => format!("target block {with} [{min_time}, {max_time}) of its group,"),
                };
                let error = format!(
                    "[{}, {}) overlaps {whose} and neither holds the other: the target compactor would halt on the \
                     overlap (give --target.vertical-compaction if it compacts vertically)",
                    block.summary.min_time, block.summary.max_time
                );
                tracing::error!(block = %dir, group = %group, run, %error, "block not committed");
                let failure = Failure::new(FailureCause::Overlap, error);
                Some(Outcome::failed_after(failure, objects_copied, bytes_copied))
            }
        }
    }
}

/// One target block folder as the run saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetFolder<'a> {
    /// Its meta.json's digest, when it has one that could be read and parsed.
    pub(crate) meta_digest: Option<[u8; 32]>,
    /// Its meta.json could not be read: what it says is unknown.
    pub(crate) unreadable: Option<&'a str>,
    /// Its objects but meta.json, as listed.
    objects: &'a [(String, u64, Option<String>)],
}

impl TargetFolder<'_> {
    /// Whether the folder holds `rel_path` with `size` bytes, as listed.
    pub(crate) fn holds(&self, rel_path: &str, size: u64) -> bool {
        self.objects.iter().any(|(rel, s, _)| rel == rel_path && *s == size)
    }

    /// Its objects but meta.json, by path relative to the folder.
    pub(crate) fn listing(&self) -> TargetListing {
        self.objects.iter().map(|(rel, size, e_tag)| (rel.clone(), (*size, e_tag.clone()))).collect()
    }
}

/// The target as one run sees it: its folders as listed, what their metas said, and its
/// visible blocks by group.
#[derive(Debug, Default)]
pub(crate) struct TargetView {
    groups: HashMap<String, Vec<Arc<TargetBlock>>>,
    /// The run's listing of the target, shared with the list stage rather than copied.
    inventory: Arc<Inventory>,
    digests: HashMap<String, [u8; 32]>,
    unreadable: HashMap<String, String>,
}

impl TargetView {
    fn new(blocks: impl IntoIterator<Item = Arc<TargetBlock>>) -> Self {
        let mut groups: HashMap<String, Vec<Arc<TargetBlock>>> = HashMap::new();
        for block in blocks {
            groups.entry(block.group.clone()).or_default().push(block);
        }
        TargetView { groups, ..TargetView::default() }
    }

    /// Block folder `dir` in the target, when it has one.
    pub(crate) fn folder(&self, dir: &str) -> Option<TargetFolder<'_>> {
        let folder = self.inventory.get(dir)?;
        Some(TargetFolder {
            meta_digest: self.digests.get(dir).copied(),
            unreadable: self.unreadable.get(dir).map(String::as_str),
            objects: &folder.objects,
        })
    }

    /// Every visible block the run's listing showed, whose meta.json could be read.
    pub(crate) fn visible(&self) -> impl Iterator<Item = &TargetBlock> {
        self.groups.values().flatten().map(|b| &**b)
    }

    /// The run's listing of the target: every block folder, visible or not.
    pub(crate) fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The visible target block of `group` that holds every source of the block whose meta.json
    /// says `meta`, if one does: the verdict [`TargetView::judge`] would give as `Covered`, told
    /// from a meta remembered, with no block read.
    pub(crate) fn covered_by(&self, group: &str, meta: &MetaSummary) -> Option<&str> {
        let group = self.groups.get(group).map(Vec::as_slice).unwrap_or_default();
        covering(meta, group.iter().map(|t| &**t)).map(|t| t.dir.as_str())
    }

    /// Judges `block` against the visible blocks of its group, itself aside (see [`judge_among`]).
    pub(crate) fn judge(&self, block: &SourceBlock, vertical: bool) -> Verdict {
        let group = self.groups.get(&block.group).map(Vec::as_slice).unwrap_or_default();
        judge_among(block, group.iter().map(|t| &**t), vertical)
    }

    /// A target folder whose meta.json could not be read, and which could hold a block of
    /// `block`'s group: what it says is unknown, so it could be a block that `block` overlaps, or
    /// one that covers it. The first such folder by name, so that every block of a group names
    /// the same one. The block's own folder is not counted: it is the block's defect.
    pub(crate) fn unknown_in_way(&self, block: &SourceBlock, per_tenant: bool) -> Option<&str> {
        self.unreadable
            .keys()
            .filter(|dir| dir.as_str() != block.dir)
            // Under tenants, a folder's tenant is its path's: only its own tenant's groups can hold it.
            .filter(|dir| !per_tenant || tenant_of(dir) == tenant_of(&block.dir))
            .min()
            .map(String::as_str)
    }
}

/// Judges `block` against `group`, visible target blocks of its group (itself aside). Without
/// `vertical` compaction in the target, an overlap is refused; with it, the compactor merges
/// overlapping blocks and the overlap is allowed.
pub(crate) fn judge_among<'a>(
    block: &SourceBlock,
    group: impl Iterator<Item = &'a TargetBlock> + Clone,
    vertical: bool,
) -> Verdict {
    let meta = &block.summary;
    let others = || group.clone().filter(|t| t.ulid != meta.ulid);
    let sources = &meta.sources;
    if let Some(by) = covering(meta, group.clone()) {
        return Verdict::Covered { by: by.dir.clone() };
    }
    if !vertical {
        let overlapping = others()
            .find(|t| meta.min_time < t.max_time && t.min_time < meta.max_time && !is_subset(&t.sources, sources));
        if let Some(t) = overlapping {
            return Verdict::Overlaps { with: t.dir.clone(), min_time: t.min_time, max_time: t.max_time };
        }
    }
    match others().max_by_key(|t| (t.min_time, t.ulid)) {
        Some(newest) if (meta.min_time, meta.ulid) < (newest.min_time, newest.ulid) => {
            Verdict::Late { behind: newest.dir.clone() }
        }
        _ => Verdict::Fresh,
    }
}

/// The first of `group` (visible target blocks of a block's group) other than the block whose
/// meta.json says `meta` that holds all its sources: the block the target compactor merged it into.
fn covering<'a>(meta: &MetaSummary, mut group: impl Iterator<Item = &'a TargetBlock>) -> Option<&'a TargetBlock> {
    group.find(|t| t.ulid != meta.ulid && is_subset(&meta.sources, &t.sources))
}

/// What the index keeps of a target meta.json, by folder: the version of it that was read, and
/// what it said.
#[derive(serde::Serialize, serde::Deserialize)]
struct Known {
    validator: Validator,
    digest: [u8; 32],
    block: Arc<TargetBlock>,
}

/// The target's block metas, read once per version per process, and one view of the target per
/// run.
pub(crate) struct TargetIndex {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    grouping: Grouping,
    concurrency: usize,
    /// The target meta.json files read so far, by folder.
    known: Mutex<HashMap<String, Known>>,
    /// Whether the metas this process writes are remembered for its next run.
    remember_commits: bool,
    /// Each run's listing and view, each made once by whichever worker asks first.
    runs: Mutex<BTreeMap<u64, Arc<RunCells>>>,
    /// The blocks this process made visible in its latest run, by group: the run's view is as
    /// old as the run, so a block is judged against these again at its commit.
    run_commits: Mutex<(u64, HashMap<String, Vec<Arc<TargetBlock>>>)>,
}

/// One run's listing of the target and its view, made once each per process.
#[derive(Default)]
struct RunCells {
    listing: OnceCell<Result<Arc<Inventory>, String>>,
    view: OnceCell<Result<Arc<TargetView>, String>>,
}

impl TargetIndex {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, layout: Layout, grouping: Grouping, concurrency: usize) -> Self {
        TargetIndex {
            store,
            layout,
            grouping,
            concurrency: concurrency.max(1),
            known: Mutex::new(HashMap::new()),
            runs: Mutex::new(BTreeMap::new()),
            run_commits: Mutex::new((0, HashMap::new())),
            remember_commits: true,
        }
    }

    /// This index, remembering the metas the process writes only when `remember` (a process
    /// that makes one run has no use for them).
    pub(crate) fn remembering(self, remember: bool) -> Self {
        TargetIndex { remember_commits: remember, ..self }
    }

    /// The target at the start of run `run`: listed once for the run, with every meta.json
    /// not read before read, shared by every worker of the process. An error (the target could
    /// not be listed) is the run's, and every block that needs the view fails on it.
    pub(crate) async fn view(&self, run: u64) -> Result<Arc<TargetView>, String> {
        let cells = self.cells(run);
        cells.view.get_or_init(|| self.build(run)).await.clone()
    }

    /// The target's block folders at the start of run `run`, as one listing saw them, without
    /// reading any meta.json: enough to tell the blocks the target holds already.
    pub(crate) async fn listing(&self, run: u64) -> Result<Arc<Inventory>, String> {
        let cells = self.cells(run);
        let list = || async {
            let inventory = take_inventory(&*self.store, &self.layout, Side::Target).await;
            inventory.map(Arc::new).map_err(|e| error_chain(&e))
        };
        cells.listing.get_or_init(list).await.clone()
    }

    fn cells(&self, run: u64) -> Arc<RunCells> {
        let mut runs = self.runs.lock().expect("never poisoned");
        // Earlier runs are over: their listings and views are never asked for again.
        runs.retain(|&r, _| r >= run);
        runs.entry(run).or_default().clone()
    }

    /// Remembers the meta.json this process just wrote for `block` (with ETag `e_tag`) in run
    /// `run`: the blocks committed after it in the run are judged against it, and the next run
    /// knows it from the listing without reading it back.
    pub(crate) fn committed(&self, run: u64, block: &SourceBlock, e_tag: Option<String>) {
        // One record, shared by the run's commits and what the index knows.
        let visible = Arc::new(TargetBlock::new(&block.dir, &block.summary, &self.grouping));
        {
            let mut run_commits = self.run_commits.lock().expect("never poisoned");
            if run_commits.0 != run {
                // An earlier run's commits are in this run's listing of the target.
                *run_commits = (run, HashMap::new());
            }
            run_commits.1.entry(block.group.clone()).or_default().push(visible.clone());
        }
        if !self.remember_commits {
            return;
        }
        let validator = Validator { size: block.meta.size(), e_tag, last_modified: None };
        let known = Known { validator, digest: block.summary.digest, block: visible };
        self.known.lock().expect("never poisoned").insert(block.dir.clone(), known);
    }

    /// Judges `block` against the blocks of its group that this process committed earlier in
    /// run `run`, which the run's view (listed at its start) lacks. A queue's commits are made
    /// by one worker, one after another, so this sees every block committed before `block` in
    /// its queue.
    pub(crate) fn judge_against_run(&self, run: u64, block: &SourceBlock, vertical: bool) -> Verdict {
        let run_commits = self.run_commits.lock().expect("never poisoned");
        if run_commits.0 != run {
            return Verdict::Fresh;
        }
        let group = run_commits.1.get(&block.group).map(Vec::as_slice).unwrap_or_default();
        judge_among(block, group.iter().map(|t| &**t), vertical)
    }

    /// Every visible target block this process knows: read from the target, or committed.
    /// Each with whether the latest run's listing showed a deletion mark in its folder.
    pub(crate) fn known_blocks(&self) -> Vec<(Arc<TargetBlock>, bool)> {
        let listing = {
            let runs = self.runs.lock().expect("never poisoned");
            runs.values().next_back().and_then(|cells| cells.listing.get().cloned()).and_then(Result::ok)
        };
        let marked = |dir: &str| listing.as_ref().and_then(|l| l.get(dir)).is_some_and(|f| f.deletion_marked());
        let known = self.known.lock().expect("never poisoned");
        known.values().map(|k| (k.block.clone(), marked(&k.block.dir))).collect()
    }

    /// The blocks this process committed in run `run`, which the run's view (listed at its start)
    /// lacks.
    pub(crate) fn committed_in_run(&self, run: u64) -> Vec<Arc<TargetBlock>> {
        let run_commits = self.run_commits.lock().expect("never poisoned");
        match run_commits.0 == run {
            true => run_commits.1.values().flatten().cloned().collect(),
            false => Vec::new(),
        }
    }

    /// Takes what a cache file at `path` (made under `settings`) knows of the target.
    pub(crate) fn load(&self, path: &std::path::Path, settings: &str) {
        let entries = CacheFile::<Known>::load(path, settings);
        self.known.lock().expect("never poisoned").extend(entries);
    }

    /// Writes what the index knows of the target to a cache file at `path`.
    pub(crate) fn save(&self, path: &std::path::Path, settings: &str) -> std::io::Result<()> {
        let entries = {
            let known = self.known.lock().expect("never poisoned");
            known
                .iter()
                .map(|(dir, k)| {
                    let copy = Known { validator: k.validator.clone(), digest: k.digest, block: k.block.clone() };
                    (dir.clone(), copy)
                })
                .collect()
        };
        CacheFile::save(path, settings, entries)
    }

    async fn build(&self, run: u64) -> Result<Arc<TargetView>, String> {
        let inventory = self.listing(run).await?;
        let unread: Vec<(String, Validator)> = {
            let mut known = self.known.lock().expect("never poisoned");
            // A folder gone from the listing, or whose meta.json is gone, is forgotten.
            known.retain(|dir, k| {
                inventory.get(dir).and_then(|f| f.meta.as_ref()).is_some_and(|v| v.same(&k.validator))
            });
            inventory
                .iter()
                .filter_map(|(dir, folder)| Some((dir, folder.meta.as_ref()?)))
                .filter(|(dir, _)| !known.contains_key(*dir))
                .map(|(dir, v)| (dir.clone(), v.clone()))
                .collect()
        };
        let read = |(dir, validator): (String, Validator)| async move {
            let read = read_meta_bytes(&*self.store, &dir).await.map_err(|e| error_chain(&e));
            (dir, validator, read)
        };
        let read: Vec<_> = futures::stream::iter(unread).map(read).buffer_unordered(self.concurrency).collect().await;
        let mut unreadable = HashMap::new();
        let mut known = self.known.lock().expect("never poisoned");
        for (dir, validator, bytes) in read {
            match bytes {
                Ok(Some(bytes)) => match parse_meta(block_id(&dir), bytes) {
                    Ok(raw) => {
                        let summary = MetaSummary::of(&raw);
                        let block = Arc::new(TargetBlock::new(&dir, &summary, &self.grouping));
                        known.insert(dir, Known { validator, digest: summary.digest, block });
                    }
                    // A meta.json that Go's JSON cannot read into Thanos's metadata (no JSON, a
                    // field of the wrong type, nesting deeper than Go parses) is a partial upload
                    // to the compactor, invisible to it (`ErrorSyncMetaCorrupted` in Thanos's
                    // pkg/block/fetcher.go). A missing field is another matter: Go reads it as
                    // zero, and the block is visible to Thanos with what bucketflow cannot know.
                    Err(MetaError::Parse { reason, .. }) if !reason.starts_with("missing field") => {}
                    // Any other error fails the compactor's view: what the block holds is
                    // unknown to bucketflow, not absent.
                    Err(error) => {
                        tracing::warn!(block = %dir, %error, "a target meta.json that cannot be used");
                        unreadable.insert(dir, error.to_string());
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(block = %dir, %error, "reading a target meta.json");
                    unreadable.insert(dir, error);
                }
            }
        }
        let digests = inventory.keys().filter_map(|dir| Some((dir.clone(), known.get(dir)?.digest))).collect();
        let view =
            TargetView { inventory, digests, unreadable, ..TargetView::new(known.values().map(|k| k.block.clone())) };
        Ok(Arc::new(view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::{BlockMeta, RawMeta};

    fn ulid(n: u8) -> Ulid {
        Ulid::from_parts(1_700_000_000_000 + u64::from(n), u128::from(n))
    }

    fn meta(n: u8, min: i64, max: i64, sources: &[u8]) -> BlockMeta {
        let json = serde_json::json!({
            "ulid": ulid(n).to_string(), "minTime": min, "maxTime": max, "version": 1,
            "compaction": {"level": 1, "sources": sources.iter().map(|&s| ulid(s).to_string()).collect::<Vec<_>>()},
            "thanos": {"labels": {"cluster": "eu1"}},
        });
        serde_json::from_value(json).unwrap()
    }

    fn source(n: u8, min: i64, max: i64, sources: &[u8]) -> SourceBlock {
        let meta = meta(n, min, max, sources);
        let raw = RawMeta { bytes: bytes::Bytes::new(), meta };
        SourceBlock::plan(&ulid(n).to_string(), raw, vec![("index".into(), 1)], &Grouping::default())
    }

    fn view(blocks: &[BlockMeta]) -> TargetView {
        let grouping = Grouping::default();
        TargetView::new(blocks.iter().map(|m| {
            let summary = MetaSummary::of(&RawMeta { bytes: bytes::Bytes::new(), meta: m.clone() });
            Arc::new(TargetBlock::new(&m.ulid.to_string(), &summary, &grouping))
        }))
    }

    /// A target meta.json Go cannot read into Thanos's metadata (a field of the wrong type, no
    /// JSON) is a partial upload, left out; one Thanos reads but bucketflow cannot judge (a
    /// missing field, which Go reads as zero; another version) is unknown, and holds back.
    #[tokio::test]
    async fn target_metas_are_partial_or_unknown_as_thanos_reads_them() {
        use object_store::{memory::InMemory, ObjectStoreExt, PutPayload};
        let store = Arc::new(InMemory::new());
        let json = |n: u8, body: &str| format!(r#"{{"ulid":"{}",{body}}}"#, ulid(n));
        let metas = [
            (1, json(1, r#""minTime":"zero","maxTime":1,"version":1"#)),
            (2, "{not json".to_string()),
            (3, json(3, r#""maxTime":1,"version":1"#)),
            (4, json(4, r#""minTime":0,"maxTime":1,"version":2"#)),
            (5, json(5, r#""minTime":0,"maxTime":1,"version":1,"thanos":{"labels":{"a":"b"}}"#)),
        ];
        for (n, meta) in metas {
            let path = object_store::path::Path::from(format!("{}/meta.json", ulid(n)));
            store.put(&path, PutPayload::from(meta)).await.unwrap();
        }
        let index = TargetIndex::new(store, Layout::Thanos, Grouping::default(), 1);
        let view = index.view(0).await.unwrap();
        let mut unknown: Vec<&String> = view.unreadable.keys().collect();
        unknown.sort();
        assert_eq!(unknown, [&ulid(3).to_string(), &ulid(4).to_string()]);
        let visible: Vec<&Ulid> = view.groups.values().flatten().map(|b| &b.ulid).collect();
        assert_eq!(visible, [&ulid(5)]);
    }

    #[test]
    fn covered_overlapping_late_and_fresh() {
        // The target compacted blocks 1 and 2 into block 10, covering [0, 20).
        let target = view(&[meta(10, 0, 20, &[1, 2]), meta(3, 20, 30, &[3])]);
        assert_eq!(target.judge(&source(1, 0, 10, &[1]), false), Verdict::Covered { by: ulid(10).to_string() });
        // A block the compactor never saw, inside the compacted range: it would overlap.
        let backfilled = source(5, 5, 15, &[5]);
        let overlap = Verdict::Overlaps { with: ulid(10).to_string(), min_time: 0, max_time: 20 };
        assert_eq!(target.judge(&backfilled, false), overlap);
        // With vertical compaction the compactor merges it; it is still older than block 3.
        assert_eq!(target.judge(&backfilled, true), Verdict::Late { behind: ulid(3).to_string() });
        // Ranges are half-open: [20, 30) and [30, 40) do not overlap.
        assert_eq!(target.judge(&source(4, 30, 40, &[4]), false), Verdict::Fresh);
        // A source block that holds a target block (compacted in the source) is not an overlap.
        assert_eq!(target.judge(&source(11, 20, 40, &[3, 4]), false), Verdict::Fresh);
        // The target's copy of the block itself does not count.
        assert_eq!(target.judge(&source(3, 20, 30, &[3]), false), Verdict::Fresh);
        // Other groups do not count.
        assert_eq!(view(&[]).judge(&source(1, 0, 10, &[1]), false), Verdict::Fresh);
    }
}
