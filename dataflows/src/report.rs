//! The run report: every selected or seen block ends here with its outcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::block::SourceBlock;
use crate::model::failure::{Failure, FailureCause};
use crate::model::filter::FilterRule;
use crate::model::meta::MetaSummary;
use crate::model::mirror::MirrorReason;
use crate::model::strategy::Strategy;

/// How a block folder without meta.json is reported skipped.
pub(crate) const NO_META_JSON: &str = "no meta.json (partial or in-progress upload)";

/// What happened to one block in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Copied (as needed) and its meta.json written.
    Replicated {
        /// Objects of the block copied in this run, meta.json aside.
        objects_copied: u64,
        /// Bytes of those objects.
        bytes_copied: u64,
        /// Objects the target already held intact, which were not copied.
        objects_already_present: u64,
        /// When the block was late: the newest block of its group that the target showed before
        /// it, which the target compactor may already have planned around.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        late_behind: Option<String>,
        /// The replication lag: milliseconds from its meta.json's appearance in the source (its
        /// last-modified time) to its commit, where the source's listing gives that time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lag_millis: Option<u64>,
    },
    /// The target's meta.json was already byte-equal to the source's.
    AlreadyReplicated,
    /// Not copied: the target's compactor has merged this block into a block of the target,
    /// whose `compaction.sources` include every source of this one.
    Covered {
        /// The target block that covers it.
        by: String,
    },
    /// Not selected by the run's filters.
    Filtered {
        /// Which filter left the block out.
        reason: String,
        /// The kind of rule, in the terms of Thanos's meta fetcher where it has them.
        #[serde(default)]
        rule: FilterRule,
    },
    /// meta.json missing, unreadable or unparsable: treated as a partial upload, as Thanos does.
    Skipped {
        /// What is wrong with the block's meta.json.
        reason: String,
    },
    /// Selected, but could not be replicated; its meta.json was not written.
    Failed {
        /// What kind of failure stopped the block.
        cause: FailureCause,
        /// The error and its sources, joined with ": ".
        error: String,
        /// Objects of the block copied in this run before it failed.
        objects_copied: u64,
        /// Bytes of those objects.
        bytes_copied: u64,
    },
    /// Not committed because an older block of its commit queue failed in this run, or because
    /// a block it may be judged against cannot be read.
    HeldBack {
        /// The older block of the queue that failed, or whose meta.json could not be read.
        behind: String,
        /// `behind` is a target block folder whose meta.json could not be read (or is beyond the
        /// size bound): what it holds is unknown, so no block it could overlap is committed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        behind_in_target: bool,
        /// Objects of the block copied in this run before it was held back.
        #[serde(default, skip_serializing_if = "is_zero")]
        objects_copied: u64,
        /// Bytes of those objects.
        #[serde(default, skip_serializing_if = "is_zero")]
        bytes_copied: u64,
    },
    /// Dry run: what a real run would copy.
    Planned {
        /// Objects of the block a real run would copy unless the target holds them, meta.json aside.
        objects: u64,
        /// Bytes of those objects.
        bytes: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Outcome {
    /// Held back behind `behind`, a source block, before anything was copied.
    pub fn held_back(behind: impl Into<String>) -> Outcome {
        Outcome::HeldBack { behind: behind.into(), behind_in_target: false, objects_copied: 0, bytes_copied: 0 }
    }

    /// Whether the target still lacks the block after its run: failed, held back, or only
    /// planned. What the backlog counts.
    pub fn is_owed(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::HeldBack { .. } | Outcome::Planned { .. })
    }

    /// The block a held-back block is behind, or `None` for any other outcome.
    pub fn held_back_behind(&self) -> Option<&str> {
        match self {
            Outcome::HeldBack { behind, .. } => Some(behind),
            _ => None,
        }
    }

    /// A failure before anything was copied.
    pub fn failed(failure: Failure) -> Outcome {
        Outcome::failed_after(failure, 0, 0)
    }

    /// A failure after `objects_copied` objects of `bytes_copied` bytes were copied.
    pub fn failed_after(failure: Failure, objects_copied: u64, bytes_copied: u64) -> Outcome {
        Outcome::Failed { cause: failure.cause, error: failure.error, objects_copied, bytes_copied }
    }

    /// The outcome's name in snake_case, as the report's `outcome` field writes it.
    /// The state Thanos's meta fetcher would count the block under in `blocks_meta_synced`:
    /// `loaded`, `no-meta-json`, `corrupted-meta-json`, `failed`, `label-excluded`,
    /// `time-excluded` or `marked-for-deletion`. Thanos's replicate applies its resolution,
    /// compaction level and ULID selection after the fetcher, to loaded blocks.
    pub fn synced_state(&self, has_meta: bool) -> &'static str {
        match self {
            Outcome::Skipped { reason } if reason.starts_with(NO_META_JSON) => "no-meta-json",
            Outcome::Skipped { .. } => "corrupted-meta-json",
            Outcome::Failed { .. } if !has_meta => "failed",
            Outcome::Filtered { rule: FilterRule::Labels, .. } => "label-excluded",
            Outcome::Filtered { rule: FilterRule::Time, .. } => "time-excluded",
            Outcome::Filtered { rule: FilterRule::DeletionMark, .. } => "marked-for-deletion",
            _ => "loaded",
        }
    }

    /// The outcome's name, as the report's JSON writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Replicated { .. } => "replicated",
            Outcome::AlreadyReplicated => "already_replicated",
            Outcome::Covered { .. } => "covered",
            Outcome::Filtered { .. } => "filtered",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "failed",
            Outcome::HeldBack { .. } => "held_back",
            Outcome::Planned { .. } => "planned",
        }
    }
}

/// One block's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    /// The block folder: its ULID, under its tenant in a tenants bucket.
    pub block: String,
    /// The block's compaction group key; unknown when its meta.json could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The block's minTime in Unix milliseconds; unknown when its meta.json could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time: Option<i64>,
    /// The block's maxTime in Unix milliseconds; unknown when its meta.json could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<i64>,
    /// What happened to the block.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Bytes of its objects but meta.json, where its plan is known: what a block still to copy
    /// adds to the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// When its meta.json appeared in the source (Unix milliseconds), where the listing says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_modified: Option<i64>,
    /// Its compaction level, where its meta.json could be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i64>,
    /// Its labels, on the way to the report only: the report keeps them once per group
    /// ([`RunReport::group_labels`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::sync::Arc<BTreeMap<String, String>>>,
}

/// The source blocks selected for replication that the target lacks after a run (failed, held
/// back, or only planned): what the replication still owes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// How many blocks.
    pub blocks: u64,
    /// Their bytes, where known.
    pub bytes: u64,
    /// The oldest of their meta.json files' appearance in the source (Unix milliseconds).
    pub oldest_meta_modified: Option<i64>,
}

impl Backlog {
    /// How long ago the oldest of the blocks appeared in the source, in seconds, where known.
    pub fn oldest_age_seconds(&self) -> Option<f64> {
        let now = chrono::Utc::now().timestamp_millis();
        self.oldest_meta_modified.map(|t| (now - t).max(0) as f64 / 1000.0)
    }
}

/// What reaches the collector: a block's outcome, or an error of the run as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Block(BlockOutcome),
    RunError(String),
    /// This block folder's meta.json could not be read, and its group is unknown: every commit
    /// queue of the run is held back behind it.
    HoldsEveryQueue(String),
    /// Move mode: this block, verified in the target, got a deletion mark in the source.
    SourceMarked(String),
}

impl Record {
    /// The outcome of a block whose meta.json was read: with its group and time range, its size
    /// and its meta.json's time.
    pub(crate) fn of_block(block: &SourceBlock, outcome: Outcome) -> Record {
        let mut record = Record::of_summary(&block.dir, &block.group, &block.summary, outcome);
        if let Record::Block(line) = &mut record {
            line.bytes = (!block.objects.is_empty()).then(|| block.total_bytes());
            line.meta_modified = block.meta_modified;
        }
        record
    }

    /// The outcome of block folder `dir` of `group`, whose meta.json says `summary`.
    pub(crate) fn of_summary(dir: &str, group: &str, summary: &MetaSummary, outcome: Outcome) -> Record {
        Record::Block(BlockOutcome {
            block: dir.to_string(),
            group: Some(group.to_string()),
            min_time: Some(summary.min_time),
            max_time: Some(summary.max_time),
            outcome,
            bytes: None,
            meta_modified: None,
            level: Some(summary.level),
            // Shared with the block's remembered meta: a pointer, not a copy, per block.
            labels: Some(summary.labels.clone()),
        })
    }

    /// The outcome of a block folder whose meta.json could not be used: its name alone.
    pub fn of_folder(dir: &str, outcome: Outcome) -> Record {
        Record::Block(BlockOutcome {
            block: dir.to_string(),
            group: None,
            min_time: None,
            max_time: None,
            outcome,
            bytes: None,
            meta_modified: None,
            level: None,
            labels: None,
        })
    }
}

/// How many blocks of a run had each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Blocks replicated in this run.
    pub replicated: u64,
    /// Blocks the target held already: its meta.json equal to the source's (in a single run, of
    /// the source's size, told from the listings).
    pub already_replicated: u64,
    /// Blocks the target's compactor had already merged into a target block.
    #[serde(default)]
    pub covered: u64,
    /// Replicated blocks that were older than the newest visible block of their group.
    #[serde(default)]
    pub late: u64,
    /// Blocks not selected by the run's filters.
    pub filtered: u64,
    /// Block folders skipped as partial uploads, for want of a usable meta.json.
    pub skipped: u64,
    /// Selected blocks that could not be replicated.
    pub failed: u64,
    /// Blocks not committed because an older block of their commit queue failed.
    pub held_back: u64,
    /// Dry run: blocks that a real run would copy.
    pub planned: u64,
    /// Move mode: source blocks given a deletion mark this run.
    #[serde(default)]
    pub marked_in_source: u64,
}

/// The report of one replication run (one timely epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's number, which is its timely epoch: 0 for a replicator's first run.
    pub run_id: u64,
    /// The strategy the run followed.
    pub strategy: Strategy,
    /// Whether the run only planned, writing nothing.
    pub dry_run: bool,
    /// The run's clock, when it started, as RFC 3339 in UTC with milliseconds.
    pub started_at: String,
    /// Seconds from `started_at` until the report was built.
    pub duration_seconds: f64,
    /// Objects copied in this run, over all blocks.
    pub objects_copied: u64,
    /// Objects of replicated blocks that the target already held intact, over all blocks.
    pub objects_already_present: u64,
    /// Bytes copied in this run, over all blocks.
    pub bytes_copied: u64,
    /// How many blocks had each outcome.
    pub counts: Counts,
    /// Blocks in (group, minTime) order, unselected ones last.
    pub blocks: Vec<BlockOutcome>,
    /// Errors that concern the run rather than a block, such as a source listing that failed.
    pub errors: Vec<String>,
    /// Block folders whose meta.json could not be read and whose group was unknown: each held
    /// back every commit queue of the run.
    #[serde(default)]
    pub every_queue_held_back_by: Vec<String>,
    /// Target block folders whose meta.json could not be read (or is beyond the size bound):
    /// each held back the blocks of every group it could belong to.
    #[serde(default)]
    pub held_back_by_target: Vec<String>,
    /// With `--mirror`: what the pass after the run marked for deletion in the target and
    /// deleted from it, and why (in a dry run, what it would).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<MirrorAction>,
    /// Each group's labels: those its blocks in this run share (so an HA pair's replica label,
    /// which differs between its blocks, is not among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// One step a mirror took on a target block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorAction {
    /// The target block folder.
    pub block: String,
    /// What was done.
    pub step: MirrorStep,
    /// Why it was marked (a deletion follows the mark, whatever its reason).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub reason: Option<MirrorReason>,
}

/// What a mirror did to a target block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorStep {
    /// Marked for deletion (a Thanos `deletion-mark.json` written).
    Marked,
    /// Deleted, its mark older than the delete delay.
    Deleted,
    /// Dry run: would be marked.
    WouldMark,
    /// Dry run: would be deleted.
    WouldDelete,
    /// Would have been marked, but the deletion guard refused the pass's losses.
    Refused,
    /// Would lose data if marked now, while the source holds a block over its time that the
    /// target lacks (which may hold its data): marked once that block is in the target.
    Deferred,
}

impl RunReport {
    /// Builds the report from the records the collector gathered.
    pub fn from_records(
        run_id: u64,
        strategy: Strategy,
        dry_run: bool,
        started_at: chrono::DateTime<chrono::Utc>,
        records: Vec<Record>,
    ) -> RunReport {
        let mut report = RunReport {
            run_id,
            strategy,
            dry_run,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            duration_seconds: (chrono::Utc::now() - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6,
            objects_copied: 0,
            objects_already_present: 0,
            bytes_copied: 0,
            counts: Counts::default(),
            blocks: Vec::new(),
            errors: Vec::new(),
            every_queue_held_back_by: Vec::new(),
            held_back_by_target: Vec::new(),
            mirror: Vec::new(),
            group_labels: BTreeMap::new(),
        };
        for record in records {
            match record {
                Record::RunError(e) => report.errors.push(e),
                Record::Block(mut b) => {
                    if let (Some(group), Some(labels)) = (&b.group, b.labels.take()) {
                        match report.group_labels.get_mut(group) {
                            Some(shared) => shared.retain(|name, value| labels.get(name) == Some(value)),
                            None => {
                                report.group_labels.insert(group.clone(), (*labels).clone());
                            }
                        }
                    }
                    report.blocks.push(b)
                }
                Record::SourceMarked(_) => report.counts.marked_in_source += 1,
                Record::HoldsEveryQueue(dir) => report.every_queue_held_back_by.push(dir),
            }
        }
        let c = &mut report.counts;
        for b in &report.blocks {
            match &b.outcome {
                Outcome::Replicated { objects_copied, bytes_copied, objects_already_present, late_behind, .. } => {
                    c.replicated += 1;
                    c.late += u64::from(late_behind.is_some());
                    report.objects_copied += objects_copied;
                    report.bytes_copied += bytes_copied;
                    report.objects_already_present += objects_already_present;
                }
                Outcome::Failed { objects_copied, bytes_copied, .. } => {
                    c.failed += 1;
                    report.objects_copied += objects_copied;
                    report.bytes_copied += bytes_copied;
                }
                Outcome::AlreadyReplicated => c.already_replicated += 1,
                Outcome::Covered { .. } => c.covered += 1,
                Outcome::Filtered { .. } => c.filtered += 1,
                Outcome::Skipped { .. } => c.skipped += 1,
                Outcome::HeldBack { behind, behind_in_target, objects_copied, bytes_copied } => {
                    c.held_back += 1;
                    // Copies made before the block was held back are work done, and paid for.
                    report.objects_copied += objects_copied;
                    report.bytes_copied += bytes_copied;
                    if *behind_in_target {
                        report.held_back_by_target.push(behind.clone());
                    }
                }
                Outcome::Planned { .. } => c.planned += 1,
            }
        }
        report.held_back_by_target.sort();
        report.held_back_by_target.dedup();
        let unselected = |o: &Outcome| matches!(o, Outcome::Filtered { .. } | Outcome::Skipped { .. });
        report.blocks.sort_by(|a, b| {
            (unselected(&a.outcome), &a.group, a.min_time, &a.block).cmp(&(
                unselected(&b.outcome),
                &b.group,
                b.min_time,
                &b.block,
            ))
        });
        report
    }

    /// A run failed when a selected block failed, a target block could not be judged (its
    /// meta.json unreadable: the run could not tell what is safe), or the run itself hit an error.
    pub fn is_failure(&self) -> bool {
        self.counts.failed > 0 || !self.held_back_by_target.is_empty() || !self.errors.is_empty()
    }

    /// What the run leaves owed: the selected blocks the target still lacks.
    pub fn backlog(&self) -> Backlog {
        let mut backlog = Backlog::default();
        for block in self.blocks.iter().filter(|b| b.outcome.is_owed()) {
            backlog.blocks += 1;
            backlog.bytes += block.bytes.unwrap_or_default();
            backlog.oldest_meta_modified = match (backlog.oldest_meta_modified, block.meta_modified) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        backlog
    }

    /// The replication lag of each block committed in the run, in milliseconds, where known.
    pub fn lags_millis(&self) -> impl Iterator<Item = u64> + '_ {
        self.blocks.iter().filter_map(|b| match b.outcome {
            Outcome::Replicated { lag_millis, .. } => lag_millis,
            _ => None,
        })
    }

    /// The outcome of each block by folder name, for tests and summaries.
    pub fn outcomes(&self) -> BTreeMap<&str, &Outcome> {
        self.blocks.iter().map(|b| (b.block.as_str(), &b.outcome)).collect()
    }
}
