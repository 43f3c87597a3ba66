//! What a mirror marks for deletion, decided from what one pass knows of both buckets: no I/O.
//!
//! With `--mirror`, the target has no compactor of its own, and bucketflow keeps it converged to
//! the source in Thanos's own deletion protocol: a block leaves the target through a
//! `deletion-mark.json`, and only `--delete-delay` after it, so that a store gateway stops using
//! it before its objects go (Thanos's `IgnoreDeletionMarkFilter`, pkg/block/fetcher.go).
//!
//! A target block is marked for one of three reasons, always only when bucketflow can show that
//! it replicated the block from the source (its ledger, see `bucket::mirror`):
//! - **covered**: another visible target block of the same resolution holds all its sources, as
//!   Thanos's `DeduplicateFilter` (pkg/block/fetcher.go) finds duplicates and the compactor's
//!   garbage collection then marks them (`BestEffortCleanAbortedPartialUploads` aside, it is
//!   `GarbageCollect` in pkg/compact/compact.go). No data is lost: the guard does not count it.
//! - **source_marked**: the source marked it for deletion (its retention, or its compactor).
//! - **gone**: it has been gone from the source for longer than `--delete-delay`.
//!
//! The last two give up data that no other target block holds. A source that lost its data (a
//! wrong bucket, a wiped prefix) looks like both, so at most `--mirror.max-deletions` such
//! blocks are marked in one pass: past it, none is, and the pass fails by count.

use std::collections::{BTreeMap, HashMap};

use ulid::Ulid;

use super::meta::is_subset;

/// Why a mirror marks a target block for deletion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum MirrorReason {
    /// Another visible target block holds every source of this one.
    Covered {
        /// The target block that holds it.
        by: String,
    },
    /// The source marked it for deletion.
    SourceMarked,
    /// Gone from the source since `since` (Unix seconds), longer ago than the delete delay.
    Gone {
        /// When a pass first saw it gone.
        since: i64,
    },
}

impl MirrorReason {
    /// The reason's name, as the metrics' `reason` label says it.
    pub fn label(&self) -> &'static str {
        match self {
            MirrorReason::Covered { .. } => "covered",
            MirrorReason::SourceMarked => "source_marked",
            MirrorReason::Gone { .. } => "gone",
        }
    }

    /// Whether marking for this reason gives up data that no other target block holds.
    pub fn loses_data(&self) -> bool {
        !matches!(self, MirrorReason::Covered { .. })
    }
}

/// How many blocks whose data no other target block holds one pass may mark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDeletions {
    /// At most this many.
    Count(u64),
    /// At most this percentage of the target's visible blocks (rounded down, at least one).
    Percent(f64),
}

impl MaxDeletions {
    /// The limit for a target of `visible` blocks.
    pub fn limit(&self, visible: usize) -> u64 {
        match *self {
            MaxDeletions::Count(n) => n,
            // At least one, so that a small target can follow its source's retention a block a
            // run; 0% is none.
            MaxDeletions::Percent(p) if p > 0.0 => ((visible as f64 * p / 100.0).floor() as u64).max(1),
            MaxDeletions::Percent(_) => 0,
        }
    }
}

impl std::str::FromStr for MaxDeletions {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(percent) => match percent.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxDeletions::Percent(p)),
                _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
            },
            None => text
                .parse::<u64>()
                .map(MaxDeletions::Count)
                .map_err(|_| format!("{text:?} is neither a count of blocks nor a percentage such as 10%")),
        }
    }
}

impl std::fmt::Display for MaxDeletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDeletions::Count(n) => write!(f, "{n}"),
            MaxDeletions::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A visible target block, as the mirror's judgement needs it.
#[derive(Debug, Clone)]
pub(crate) struct MirrorBlock {
    pub(crate) dir: String,
    pub(crate) ulid: Ulid,
    pub(crate) resolution: i64,
    /// Its [minTime, maxTime) in Unix milliseconds.
    pub(crate) range: (i64, i64),
    /// Its sources, sorted.
    pub(crate) sources: Vec<Ulid>,
    /// It has a deletion mark in the target already.
    pub(crate) marked: bool,
}

/// How a block the mirror replicated stands in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InSource {
    /// Visible, unmarked.
    Kept,
    /// Visible, with a deletion mark.
    Marked,
    /// No meta.json in the source (the folder may be gone too), first seen so at this time.
    GoneSince(i64),
}

/// A source block the target does not hold yet (failed, held back, left out by the selection,
/// or committed in the run but not yet known to the pass): its data may be where a block the
/// source gave up went.
#[derive(Debug, Clone)]
pub(crate) struct Unsettled {
    pub(crate) dir: String,
    pub(crate) resolution: i64,
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
}

/// What one pass decided to mark, and what the guard refused.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct MarkPlan {
    pub(crate) mark: Vec<(String, MirrorReason)>,
    /// Blocks that would lose data if marked now, while a source block of the same resolution
    /// over their time the target lacks (the second) may hold it: marked once that one settles.
    pub(crate) deferred: Vec<(String, MirrorReason, String)>,
    /// Blocks that would have been marked, with data no other target block holds, beyond the
    /// guard: none of them is marked.
    pub(crate) refused: Vec<(String, MirrorReason)>,
    /// The guard's limit in this pass.
    pub(crate) limit: u64,
}

/// Decides which of the target's `visible` blocks to mark at time `now` (Unix seconds):
/// `owned` says, for each block bucketflow replicated, how it stands in the source, and
/// `unsettled` are the source's blocks the target lacks.
pub(crate) fn plan_marks(
    visible: &[MirrorBlock],
    owned: &HashMap<String, InSource>,
    unsettled: &[Unsettled],
    now: i64,
    delete_delay_seconds: i64,
    max_deletions: MaxDeletions,
) -> MarkPlan {
    let covered = duplicates(visible);
    let mut candidates = Vec::new();
    for block in visible.iter().filter(|b| !b.marked) {
        let Some(in_source) = owned.get(&block.dir) else { continue };
        let reason = match (covered.get(&block.ulid), in_source) {
            (Some(by), _) => MirrorReason::Covered { by: by.clone() },
            (None, InSource::Marked) => MirrorReason::SourceMarked,
            (None, InSource::GoneSince(since)) if now.saturating_sub(*since) >= delete_delay_seconds => {
                MirrorReason::Gone { since: *since }
            }
            (None, InSource::GoneSince(_) | InSource::Kept) => continue,
        };
        candidates.push((block.dir.clone(), reason));
    }
    let limit = max_deletions.limit(visible.len());
    let (losing, keeping): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|(_, r)| r.loses_data());
    // A source that compacted A and B into C marks A and B: until the target holds C, marking
    // them would lose their data, C being failed, held back, left out by the selection (a level
    // above --compaction-max, a time window) or committed by another process of the run.
    let mut deferred = Vec::new();
    let mut losing_now = Vec::new();
    for (dir, reason) in losing {
        let block = visible.iter().find(|b| b.dir == dir).expect("a candidate is visible");
        let (min_time, max_time) = block.range;
        let waiting = unsettled.iter().find(|u| {
            u.resolution == block.resolution && u.min_time < max_time && min_time < u.max_time && u.dir != dir
        });
        match waiting {
            Some(u) => deferred.push((dir, reason, u.dir.clone())),
            None => losing_now.push((dir, reason)),
        }
    }
    if losing_now.len() as u64 > limit {
        return MarkPlan { mark: keeping, deferred, refused: losing_now, limit };
    }
    let mut mark = keeping;
    mark.extend(losing_now);
    MarkPlan { mark, deferred, refused: Vec::new(), limit }
}

/// The blocks Thanos's `DeduplicateFilter` (pkg/block/fetcher.go, `filterForResolution`) finds
/// duplicate, each with a block that holds it. Per resolution, blocks are taken by their count
/// of sources, most first, then by ULID; each joins the tree under the first block taken before
/// it whose sources hold all of its own, and every block below the root is a duplicate. So of
/// two blocks with the same sources, the one with the greater ULID is the duplicate. A block
/// already marked for deletion holds nothing: it is on its way out (the compactor drops marked
/// blocks before it deduplicates, with its `IgnoreDeletionMarkFilter`).
fn duplicates(visible: &[MirrorBlock]) -> HashMap<Ulid, String> {
    let mut by_resolution: BTreeMap<i64, Vec<&MirrorBlock>> = BTreeMap::new();
    for block in visible.iter().filter(|b| !b.marked) {
        by_resolution.entry(block.resolution).or_default().push(block);
    }
    let mut covered = HashMap::new();
    for blocks in by_resolution.values_mut() {
        blocks.sort_by(|a, b| b.sources.len().cmp(&a.sources.len()).then(a.ulid.cmp(&b.ulid)));
        for (i, block) in blocks.iter().enumerate() {
            let holder = blocks[..i].iter().find(|earlier| is_subset(&block.sources, &earlier.sources));
            if let Some(holder) = holder {
                covered.insert(block.ulid, holder.dir.clone());
            }
        }
    }
    covered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulid(n: u8) -> Ulid {
        Ulid::from_parts(1_700_000_000_000 + u64::from(n), u128::from(n))
    }

    fn block(n: u8, resolution: i64, sources: &[u8]) -> MirrorBlock {
        let mut sources: Vec<Ulid> = sources.iter().map(|&s| ulid(s)).collect();
        sources.sort();
        let range = (i64::from(n) * 10, i64::from(n) * 10 + 10);
        MirrorBlock { dir: ulid(n).to_string(), ulid: ulid(n), resolution, range, sources, marked: false }
    }

    fn owned(blocks: &[(u8, InSource)]) -> HashMap<String, InSource> {
        blocks.iter().map(|(n, s)| (ulid(*n).to_string(), *s)).collect()
    }

    const DAY: i64 = 86_400;

    #[test]
    fn blocks_merged_into_another_are_marked_as_covered_and_the_merged_one_kept() {
        let visible = [block(1, 0, &[1]), block(2, 0, &[2]), block(3, 0, &[1, 2])];
        let owned = owned(&[(1, InSource::Kept), (2, InSource::GoneSince(0)), (3, InSource::Kept)]);
        let plan = plan_marks(&visible, &owned, &[], 10, 2 * DAY, MaxDeletions::Count(0));
        let by = ulid(3).to_string();
        assert_eq!(
            plan.mark,
            [
                (ulid(1).to_string(), MirrorReason::Covered { by: by.clone() }),
                (ulid(2).to_string(), MirrorReason::Covered { by })
            ]
        );
    }

    #[test]
    fn a_downsampled_block_covers_nothing_of_another_resolution() {
        let visible = [block(1, 0, &[1, 2]), block(2, 300_000, &[1, 2])];
        let plan = plan_marks(&visible, &owned(&[(1, InSource::Kept)]), &[], 0, DAY, MaxDeletions::Count(9));
        assert!(plan.mark.is_empty());
    }

    #[test]
    fn of_two_blocks_with_the_same_sources_the_greater_ulid_is_the_duplicate() {
        let visible = [block(5, 0, &[1, 2]), block(4, 0, &[1, 2])];
        let owned = owned(&[(4, InSource::Kept), (5, InSource::Kept)]);
        let plan = plan_marks(&visible, &owned, &[], 0, DAY, MaxDeletions::Count(0));
        assert_eq!(plan.mark, [(ulid(5).to_string(), MirrorReason::Covered { by: ulid(4).to_string() })]);
    }

    #[test]
    fn a_block_bucketflow_did_not_replicate_is_never_marked() {
        let visible = [block(1, 0, &[1]), block(3, 0, &[1, 2])];
        let plan = plan_marks(&visible, &HashMap::new(), &[], 0, DAY, MaxDeletions::Count(9));
        assert!(plan.mark.is_empty());
    }

    #[test]
    fn a_block_gone_from_the_source_is_marked_only_after_the_delay() {
        let visible = [block(1, 0, &[1])];
        let owned = owned(&[(1, InSource::GoneSince(100))]);
        let early = plan_marks(&visible, &owned, &[], 100 + DAY - 1, DAY, MaxDeletions::Count(9));
        assert!(early.mark.is_empty());
        let late = plan_marks(&visible, &owned, &[], 100 + DAY, DAY, MaxDeletions::Count(9));
        assert_eq!(late.mark, [(ulid(1).to_string(), MirrorReason::Gone { since: 100 })]);
    }

    #[test]
    fn the_guard_refuses_every_loss_past_its_limit_and_still_marks_covered_blocks() {
        let visible = [block(1, 0, &[1]), block(2, 0, &[2]), block(3, 0, &[3]), block(4, 0, &[3, 4])];
        let owned = owned(&[(1, InSource::Marked), (2, InSource::Marked), (3, InSource::Kept)]);
        let plan = plan_marks(&visible, &owned, &[], 0, DAY, MaxDeletions::Percent(25.0));
        assert_eq!(plan.limit, 1);
        assert_eq!(plan.mark, [(ulid(3).to_string(), MirrorReason::Covered { by: ulid(4).to_string() })]);
        assert_eq!(plan.refused.len(), 2);
        let within = plan_marks(&visible, &owned, &[], 0, DAY, MaxDeletions::Count(2));
        assert_eq!(within.mark.len(), 3);
        assert!(within.refused.is_empty());
    }

    #[test]
    fn a_loss_waits_while_the_source_holds_a_block_over_its_time_the_target_lacks() {
        let visible = [block(1, 0, &[1]), block(2, 0, &[2])];
        let owned = owned(&[(1, InSource::Marked), (2, InSource::Marked)]);
        // Block 1 spans [10, 20): a source block over [15, 19) the target lacks may hold it;
        // block 2, [20, 30), meets no such block.
        let waiting = Unsettled { dir: "C".into(), resolution: 0, min_time: 15, max_time: 19 };
        let plan = plan_marks(&visible, &owned, std::slice::from_ref(&waiting), 0, DAY, MaxDeletions::Count(9));
        assert_eq!(plan.deferred, [(ulid(1).to_string(), MirrorReason::SourceMarked, "C".to_string())]);
        assert_eq!(plan.mark, [(ulid(2).to_string(), MirrorReason::SourceMarked)]);
        let other_resolution = Unsettled { resolution: 300_000, ..waiting };
        let plan = plan_marks(&visible, &owned, &[other_resolution], 0, DAY, MaxDeletions::Count(9));
        assert_eq!(plan.mark.len(), 2);
    }

    #[test]
    fn a_marked_block_covers_nothing() {
        let mut holder = block(3, 0, &[1, 2]);
        holder.marked = true;
        let visible = [block(1, 0, &[1]), holder];
        let plan = plan_marks(&visible, &owned(&[(1, InSource::Kept)]), &[], 0, DAY, MaxDeletions::Count(9));
        assert!(plan.mark.is_empty());
    }

    #[test]
    fn max_deletions_reads_a_count_or_a_percentage() {
        assert_eq!("10".parse::<MaxDeletions>(), Ok(MaxDeletions::Count(10)));
        assert_eq!("12.5%".parse::<MaxDeletions>(), Ok(MaxDeletions::Percent(12.5)));
        assert!("120%".parse::<MaxDeletions>().unwrap_err().contains("percentage"));
        assert!("ten".parse::<MaxDeletions>().unwrap_err().contains("\"ten\""));
        assert_eq!(MaxDeletions::Percent(10.0).limit(25), 2);
        assert_eq!(MaxDeletions::Percent(10.0).limit(5), 1, "a small target follows its retention a block a run");
        assert_eq!(MaxDeletions::Percent(0.0).limit(50), 0);
    }
}
