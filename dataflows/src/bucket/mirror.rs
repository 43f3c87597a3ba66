//! `--mirror`: after each run, the target is brought closer to the source by Thanos's deletion
//! protocol (which blocks are marked, and why: `model::mirror`).
//!
//! **Provenance.** A block is only ever marked or deleted when bucketflow can show it came from
//! the source: its ledger in the target, one empty object `bucketflow-mirror/replicated/<ULID>`
//! per block that a run saw in both buckets with the same meta.json (replicated by that run, or
//! found already byte-equal). It lives in the target, so it survives restarts and needs no
//! `--cache-dir`, and it costs one listing a pass. Thanos's and Mimir's components read only
//! folders named by a ULID, so they never see it. A block that was in the target before
//! `--mirror` and that the source no longer has is never the mirror's to delete.
//!
//! **Gone from the source.** When a replicated block's meta.json is gone from the source, an
//! empty object `bucketflow-mirror/gone/<ULID>/<Unix seconds>` records when a pass first saw it
//! so, across restarts; it is removed if the block comes back.
//!
//! **Deletion.** A marked block bucketflow replicated is deleted once its mark is older than
//! `--delete-delay`, in the order of Thanos's `block.Delete` (pkg/block/block.go): meta.json
//! first, so that no reader ever sees a visible incomplete block, then every other object, the
//! deletion mark last, so that a deletion stopped halfway is found and finished by the next pass
//! (a folder with a mark and no meta.json). Its ledger entries go after the folder.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::inventory::Inventory;
use super::listing::list_block_objects;
use super::read::read_deletion_mark;
use super::target::{TargetBlock, TargetView};
use crate::model::block::block_path;
use crate::model::failure::error_chain;
use crate::model::filter::FilterRule;
use crate::model::group::group_resolution;
use crate::model::markers::{DeletionMark, DELETION_MARK};
use crate::model::meta::META_FILENAME;
use crate::model::mirror::{plan_marks, InSource, MaxDeletions, MirrorBlock, MirrorReason, Unsettled};
use crate::report::{MirrorAction, MirrorStep, Outcome, RunReport};

/// The ledger's folder at the target's root: not a ULID, so no Thanos or Mimir component reads it.
pub(crate) const LEDGER: &str = "bucketflow-mirror";

/// The `details` of the deletion marks a mirror writes.
pub(crate) const MIRROR_DETAILS: &str = "bucketflow --mirror";

/// How the mirror follows the source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MirrorConfig {
    /// How long a marked block stays before it is deleted, and how long a block must have been
    /// gone from the source before it is marked: Thanos's compactor `--delete-delay`.
    pub delete_delay: std::time::Duration,
    /// The most blocks whose data no other target block holds that one pass may mark.
    pub max_deletions: MaxDeletions,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            delete_delay: std::time::Duration::from_secs(48 * 3600),
            max_deletions: MaxDeletions::Percent(10.0),
        }
    }
}

/// The mirror: its config, the target, and the deletion times of the marks it has read.
pub(crate) struct Mirror {
    config: MirrorConfig,
    target: Arc<dyn ObjectStore>,
    /// A mark's deletion time, by folder and the mark's size and ETag, so that a pending mark is
    /// read once, not every pass.
    mark_times: Mutex<HashMap<String, MarkTime>>,
}

/// A deletion mark's time (`None` when partial or corrupt), by the size and ETag it was read at.
#[derive(Clone)]
struct MarkTime {
    size: u64,
    e_tag: Option<String>,
    time: Option<i64>,
}

/// What one pass did: its actions, and the guard's refusal or another error.
pub(crate) struct PassEnd {
    pub(crate) actions: Vec<MirrorAction>,
    pub(crate) error: Option<String>,
}

/// The ledger as listed: the blocks replicated, and when those gone from the source went (every
/// note of a block, its earliest first: two writers may each have left one).
#[derive(Default)]
struct Ledger {
    replicated: HashSet<String>,
    gone: HashMap<String, Vec<(i64, Path)>>,
}

impl Ledger {
    fn gone_since(&self, dir: &str) -> Option<i64> {
        self.gone.get(dir).and_then(|notes| notes.iter().map(|(since, _)| *since).min())
    }
}

impl Mirror {
    pub(crate) fn new(config: MirrorConfig, target: Arc<dyn ObjectStore>) -> Self {
        Mirror { config, target, mark_times: Mutex::default() }
    }

    /// One pass after run `report`, against the source and the target as the run listed them
    /// (`source`, `view`), at `now` (Unix seconds). `committed`: the blocks this process made
    /// visible in the run, which hold the blocks they were compacted from. A dry run writes
    /// nothing and says what it would do. An error stops the pass, and what it did before is
    /// still reported.
    pub(crate) async fn pass(
        &self,
        source: &Inventory,
        view: &TargetView,
        committed: &[Arc<TargetBlock>],
        report: &RunReport,
        now: i64,
        dry_run: bool,
    ) -> PassEnd {
        let mut actions = Vec::new();
        let step = Step { source, view, run_commits: committed, report, now, dry_run };
        match self.try_pass(&step, &mut actions).await {
            Ok(error) => PassEnd { actions, error },
            Err(error) => PassEnd { actions, error: Some(format!("mirror: {error}")) },
        }
    }

    async fn try_pass(&self, pass: &Step<'_>, actions: &mut Vec<MirrorAction>) -> Result<Option<String>, String> {
        let Step { source, view, run_commits, report, now, dry_run } = *pass;
        let mut ledger = self.ledger().await?;
        let committed: HashSet<&str> = report
            .blocks
            .iter()
            .filter(|b| matches!(b.outcome, Outcome::Replicated { .. } | Outcome::AlreadyReplicated))
            .map(|b| b.block.as_str())
            .collect();
        for dir in &committed {
            if ledger.replicated.insert(dir.to_string()) && !dry_run {
                self.put(&ledger_path("replicated", dir)).await?;
            }
        }
        let inventory = view.inventory();
        let visible_sources = source.values().filter(|f| f.meta.is_some()).count();
        let owned_visible = ledger.replicated.iter().filter(|d| inventory.get(*d).is_some_and(|f| f.meta.is_some()));
        if visible_sources == 0 && owned_visible.count() > 0 {
            // A source with no block at all is no retention: a wrong prefix, a wiped bucket, or
            // a store that lists nothing for a while. No gone note starts its clock.
            return Err("the source lists no block, while the target holds blocks replicated from it: \
                        nothing marked or deleted"
                .into());
        }
        let owned = self.owned(&mut ledger, inventory, source, now, dry_run).await?;
        let mut seen = HashSet::new();
        let visible: Vec<MirrorBlock> = view
            .visible()
            .chain(run_commits.iter().map(|b| &**b))
            .filter(|b| seen.insert(b.ulid))
            .map(|b| MirrorBlock {
                dir: b.dir.clone(),
                ulid: b.ulid,
                resolution: b.resolution,
                range: (b.min_time, b.max_time),
                sources: b.sources.clone(),
                marked: inventory.get(&b.dir).is_some_and(|f| f.deletion_marked()),
            })
            .collect();
        let known: HashSet<&str> = visible.iter().map(|b| b.dir.as_str()).collect();
        let unsettled = unsettled(report, &known);
        let delay = self.config.delete_delay.as_secs() as i64;
        let plan = plan_marks(&visible, &owned, &unsettled, now, delay, self.config.max_deletions);
        for (dir, reason) in plan.mark {
            if !dry_run {
                self.mark(&dir, now, &reason).await?;
            }
            tracing::info!(block = %dir, reason = reason.label(), dry_run, "mirror: marked for deletion in the target");
            actions.push(MirrorAction { block: dir, step: step(MirrorStep::Marked, dry_run), reason: Some(reason) });
        }
        for (dir, reason, waiting_for) in plan.deferred {
            tracing::info!(block = %dir, reason = reason.label(), %waiting_for, "mirror: not marked until the target holds the source block over its time");
            actions.push(MirrorAction { block: dir, step: MirrorStep::Deferred, reason: Some(reason) });
        }
        let error = (!plan.refused.is_empty()).then(|| {
            let error = format!(
                "mirror: {} blocks whose data no other target block holds would be marked for deletion, over \
                 --mirror.max-deletions {} ({} blocks in this pass): none of them was marked; if the source really \
                 gave them up, raise the limit for one run",
                plan.refused.len(),
                self.config.max_deletions,
                plan.limit
            );
            tracing::error!(refused = plan.refused.len(), limit = plan.limit, "{error}");
            error
        });
        for (dir, reason) in plan.refused {
            actions.push(MirrorAction { block: dir, step: MirrorStep::Refused, reason: Some(reason) });
        }
        for dir in self.due(inventory, &ledger, now).await? {
            if !dry_run {
                self.delete(&dir, &ledger).await?;
                ledger.replicated.remove(&dir);
            }
            tracing::info!(block = %dir, dry_run, "mirror: deleted from the target");
            actions.push(MirrorAction { block: dir, step: step(MirrorStep::Deleted, dry_run), reason: None });
        }
        for (dir, reason) in stranded(report, inventory) {
            if !dry_run && !self.delete_partial(&dir).await? {
                continue;
            }
            tracing::info!(block = %dir, dry_run, "mirror: a partial copy the source gave up, deleted from the target");
            actions.push(MirrorAction { block: dir, step: step(MirrorStep::Deleted, dry_run), reason: Some(reason) });
        }
        if !dry_run {
            self.forget_absent(&ledger, inventory, &committed).await?;
        }
        Ok(error)
    }

    /// How each visible block of the ledger stands in the source; records (or clears) when a
    /// block left the source.
    async fn owned(
        &self,
        ledger: &mut Ledger,
        inventory: &Inventory,
        source: &Inventory,
        now: i64,
        dry_run: bool,
    ) -> Result<HashMap<String, InSource>, String> {
        let mut owned = HashMap::new();
        for dir in &ledger.replicated {
            if inventory.get(dir).and_then(|f| f.meta.as_ref()).is_none() {
                continue;
            }
            let in_source = match source.get(dir).filter(|f| f.meta.is_some()) {
                Some(folder) => {
                    // It came back: whatever took it away did not last, and none of its notes
                    // may start a clock when it goes again.
                    for (_, path) in ledger.gone.remove(dir).unwrap_or_default() {
                        if !dry_run {
                            self.remove(&path).await?;
                        }
                    }
                    if folder.deletion_marked() {
                        InSource::Marked
                    } else {
                        InSource::Kept
                    }
                }
                None => match ledger.gone_since(dir) {
                    Some(since) => InSource::GoneSince(since),
                    None => {
                        let path = ledger_path("gone", &format!("{dir}/{now}"));
                        if !dry_run {
                            self.put(&path).await?;
                        }
                        ledger.gone.insert(dir.clone(), vec![(now, path)]);
                        InSource::GoneSince(now)
                    }
                },
            };
            owned.insert(dir.clone(), in_source);
        }
        Ok(owned)
    }

    /// The ledger's blocks whose deletion mark in the target is older than the delete delay,
    /// visible or left half-deleted by an earlier pass.
    async fn due(&self, inventory: &Inventory, ledger: &Ledger, now: i64) -> Result<Vec<String>, String> {
        let marked: Vec<(&String, u64, Option<String>)> = inventory
            .iter()
            .filter(|(dir, _)| ledger.replicated.contains(*dir))
            .filter_map(|(dir, folder)| {
                let (_, size, e_tag) = folder.objects.iter().find(|(rel, _, _)| rel == DELETION_MARK)?;
                Some((dir, *size, e_tag.clone()))
            })
            .collect();
        let mut due = Vec::new();
        for (dir, size, e_tag) in marked {
            let known = self.mark_times.lock().expect("never poisoned").get(dir).cloned();
            let time = match known {
                Some(known) if known.size == size && known.e_tag == e_tag => known.time,
                _ => {
                    let path = block_path(dir, DELETION_MARK);
                    let mark = read_deletion_mark(&*self.target, dir, &path).await.map_err(|e| error_chain(&e))?;
                    let time = mark.flatten().map(|m| m.deletion_time);
                    self.mark_times.lock().expect("never poisoned").insert(dir.clone(), MarkTime { size, e_tag, time });
                    time
                }
            };
            // A partial or corrupt mark keeps the block, as it does for Thanos.
            if time.is_some_and(|t| now.saturating_sub(t) >= self.config.delete_delay.as_secs() as i64) {
                due.push(dir.clone());
            }
        }
        Ok(due)
    }

    /// Deletes block folder `dir` in Thanos's order, then its ledger entries.
    async fn delete(&self, dir: &str, ledger: &Ledger) -> Result<(), String> {
        let objects = list_block_objects(&*self.target, dir).await.map_err(|e| error_chain(&e))?;
        let (meta, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|(rel, _, _)| rel == META_FILENAME);
        let (mark, rest): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(rel, _, _)| rel == DELETION_MARK);
        for (rel, _, _) in meta {
            self.remove(&block_path(dir, &rel)).await?;
            tracing::info!(block = %dir, "mirror: meta.json deleted, no reader sees the block; deleting its objects");
        }
        let paths = rest.into_iter().map(|(rel, _, _)| block_path(dir, &rel));
        self.remove_all(paths).await?;
        for (rel, _, _) in mark {
            self.remove(&block_path(dir, &rel)).await?;
        }
        self.mark_times.lock().expect("never poisoned").remove(dir);
        self.forget(dir, ledger).await
    }

    /// Drops the ledger entries of blocks the target no longer has at all (a pass stopped after
    /// the folder went), but never of a block this run just committed, which the run's listing
    /// of the target predates.
    async fn forget_absent(
        &self,
        ledger: &Ledger,
        inventory: &Inventory,
        committed: &HashSet<&str>,
    ) -> Result<(), String> {
        for dir in &ledger.replicated {
            if !inventory.contains_key(dir) && !committed.contains(dir.as_str()) {
                self.forget(dir, ledger).await?;
            }
        }
        Ok(())
    }

    /// Removes block `dir` from the ledger: its gone notes, then its entry.
    async fn forget(&self, dir: &str, ledger: &Ledger) -> Result<(), String> {
        for (_, path) in ledger.gone.get(dir).map(Vec::as_slice).unwrap_or_default() {
            self.remove(path).await?;
        }
        self.remove(&ledger_path("replicated", dir)).await
    }

    /// Deletes the partial copy in folder `dir`, unless a meta.json has appeared there since the
    /// run listed it (another writer finished the block): then it is a block, and stays.
    async fn delete_partial(&self, dir: &str) -> Result<bool, String> {
        let objects = list_block_objects(&*self.target, dir).await.map_err(|e| error_chain(&e))?;
        if objects.iter().any(|(rel, _, _)| rel == META_FILENAME) {
            tracing::warn!(block = %dir, "mirror: a partial copy became a block since the run's listing; left alone");
            return Ok(false);
        }
        let paths = objects.into_iter().map(|(rel, _, _)| block_path(dir, &rel));
        self.remove_all(paths).await?;
        Ok(true)
    }

    async fn ledger(&self) -> Result<Ledger, String> {
        let prefix = Path::from(LEDGER);
        let objects: Vec<_> = self.target.list(Some(&prefix)).try_collect().await.map_err(|e| e.to_string())?;
        let mut ledger = Ledger::default();
        for object in objects {
            let parts: Vec<&str> = object.location.as_ref().split('/').collect();
            match parts.as_slice() {
                [_, "replicated", dir] => {
                    ledger.replicated.insert(dir.to_string());
                }
                [_, "gone", dir, since] => {
                    if let Ok(since) = since.parse::<i64>() {
                        ledger.gone.entry(dir.to_string()).or_default().push((since, object.location.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(ledger)
    }

    async fn mark(&self, dir: &str, now: i64, reason: &MirrorReason) -> Result<(), String> {
        let id = ulid::Ulid::from_string(dir).map_err(|e| format!("{dir}: {e}"))?;
        let details = Some(format!("{MIRROR_DETAILS}: {}", reason.label()));
        let mark = DeletionMark { id, deletion_time: now, version: DeletionMark::VERSION, details };
        let body = serde_json::to_vec(&mark).expect("a deletion mark serialises");
        let path = block_path(dir, DELETION_MARK);
        self.target.put(&path, PutPayload::from(body)).await.map_err(|e| format!("marking {dir}: {e}"))?;
        Ok(())
    }

    async fn put(&self, path: &Path) -> Result<(), String> {
        self.target.put(path, PutPayload::default()).await.map(|_| ()).map_err(|e| format!("writing {path}: {e}"))
    }

    /// Deletes `paths`, 16 at a time, in no order.
    async fn remove_all(&self, paths: impl Iterator<Item = Path>) -> Result<(), String> {
        let removed: Vec<Result<(), String>> = futures::stream::iter(paths)
            .map(|path| async move { self.remove(&path).await })
            .buffer_unordered(16)
            .collect()
            .await;
        removed.into_iter().collect::<Result<Vec<()>, String>>().map(|_| ())
    }

    async fn remove(&self, path: &Path) -> Result<(), String> {
        match self.target.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("deleting {path}: {e}")),
        }
    }
}

/// What one pass works from.
#[derive(Clone, Copy)]
struct Step<'a> {
    source: &'a Inventory,
    view: &'a TargetView,
    run_commits: &'a [Arc<TargetBlock>],
    report: &'a RunReport,
    now: i64,
    dry_run: bool,
}

/// The source's blocks the target does not hold as far as the pass knows: failed, held back,
/// planned, left out by the selection (not by a deletion mark), or committed in the run by
/// another process (not `known`). A block the source gave up may live on in one of them.
fn unsettled(report: &RunReport, known: &HashSet<&str>) -> Vec<Unsettled> {
    report
        .blocks
        .iter()
        .filter(|b| match &b.outcome {
            Outcome::Failed { .. } | Outcome::HeldBack { .. } | Outcome::Planned { .. } => true,
            Outcome::Filtered { rule, .. } => *rule != FilterRule::DeletionMark,
            Outcome::Replicated { .. } => !known.contains(b.block.as_str()),
            _ => false,
        })
        .filter_map(|b| {
            Some(Unsettled {
                dir: b.block.clone(),
                resolution: group_resolution(b.group.as_deref()?),
                min_time: b.min_time?,
                max_time: b.max_time?,
            })
        })
        .collect()
}

/// Target folders without meta.json (no reader sees them) of source blocks the run will never
/// copy: covered by a target block, or marked for deletion in the source. A run that copied
/// some of a block's objects before it found the block covered at its commit leaves them; the
/// compactor of a target would clean them up as aborted partial uploads (Thanos's
/// `BestEffortCleanAbortedPartialUploads`, pkg/compact/clean.go), a mirror's has none. The
/// run's outcome shows the block is the source's. They are in the listing of the run after.
fn stranded(report: &RunReport, inventory: &Inventory) -> Vec<(String, MirrorReason)> {
    report
        .blocks
        .iter()
        .filter_map(|b| {
            let reason = match &b.outcome {
                Outcome::Covered { by } => MirrorReason::Covered { by: by.clone() },
                Outcome::Filtered { rule: FilterRule::DeletionMark, .. } => MirrorReason::SourceMarked,
                _ => return None,
            };
            let folder = inventory.get(&b.block)?;
            // A folder with a mark and no meta.json is a deletion stopped halfway: `due` has it.
            let partial = folder.meta.is_none() && !folder.objects.is_empty() && !folder.deletion_marked();
            partial.then(|| (b.block.clone(), reason))
        })
        .collect()
}

fn ledger_path(kind: &str, rest: &str) -> Path {
    Path::from(format!("{LEDGER}/{kind}/{rest}"))
}

fn step(done: MirrorStep, dry_run: bool) -> MirrorStep {
    match (done, dry_run) {
        (MirrorStep::Marked, true) => MirrorStep::WouldMark,
        (MirrorStep::Deleted, true) => MirrorStep::WouldDelete,
        (step, _) => step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{RecordingStore, Write};
    use object_store::memory::InMemory;

    const A: &str = "01HF856H80D55FJT0TCK9K0631";

    /// Thanos's `block.Delete` order: meta.json first (the block is invisible from then on),
    /// the deletion mark last (a stopped deletion is found again by it), the ledger after.
    #[tokio::test]
    async fn a_block_is_deleted_meta_json_first_and_its_mark_last() {
        let target = Arc::new(RecordingStore::new(InMemory::new()));
        for rel in ["meta.json", "index", "chunks/000001", "chunks/000002", "deletion-mark.json"] {
            target.put(&block_path(A, rel), PutPayload::from_static(b"x")).await.unwrap();
        }
        target.put(&ledger_path("replicated", A), PutPayload::default()).await.unwrap();
        let before = target.writes().len();
        let mirror = Mirror::new(MirrorConfig::default(), target.clone());
        mirror.delete(A, &Ledger::default()).await.unwrap();
        let deleted: Vec<String> = target.writes()[before..]
            .iter()
            .map(|w| match w {
                Write::Delete(path) => path.clone(),
                other => panic!("only deletes, not {other:?}"),
            })
            .collect();
        assert_eq!(deleted.len(), 6, "{deleted:?}");
        assert_eq!(deleted[0], format!("{A}/meta.json"));
        assert_eq!(deleted[4], format!("{A}/deletion-mark.json"));
        assert_eq!(deleted[5], format!("{LEDGER}/replicated/{A}"));
    }
}
