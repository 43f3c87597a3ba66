//! Run metrics under Thanos's names, so that the Thanos mixin's dashboards and alerts for
//! `thanos tools bucket replicate` work unchanged, plus bucketflow's own per-run series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use bucketflow_dataflows::MirrorStep;
use bucketflow_dataflows::Outcome;
use bucketflow_dataflows::RunReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// The states of Thanos's meta fetcher that a replication's blocks fall in.
const SYNCED_STATES: [&str; 7] = [
    "loaded",
    "failed",
    "no-meta-json",
    "corrupted-meta-json",
    "label-excluded",
    "time-excluded",
    "marked-for-deletion",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockLabel {
    pub block: String,
}

/// Run durations reach hours for a bulk migration, so the buckets go from a second to a day.
const RUN_DURATION_BUCKETS: [f64; 14] =
    [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0];

/// Replication lag, from a block's meta.json appearing in the source to its commit: seconds for
/// a sidecar that keeps up, days for a bulk copy of an old bucket. The objective the alert holds
/// it to (15 minutes, as S3 Replication Time Control's) falls on a bucket boundary.
const LAG_BUCKETS: [f64; 18] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0, 604800.0,
];

fn lag_histogram() -> Histogram {
    Histogram::new(LAG_BUCKETS)
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS)
}

pub struct RunMetrics {
    runs: Family<ResultLabel, Counter>,
    run_duration: Family<ResultLabel, Histogram, fn() -> Histogram>,
    blocks_already_replicated: Counter,
    blocks_replicated: Counter,
    objects_replicated: Counter,
    blocks_held_back: Counter,
    block_failures: Family<CauseLabel, Counter>,
    blocks_covered: Counter,
    blocks_late: Counter,
    every_group_held_back_by: Family<BlockLabel, Gauge>,
    held_back_by_target: Family<BlockLabel, Gauge>,
    meta_synced: Family<StateLabel, Gauge>,
    origin_iterations: Counter,
    origin_meta_loads: Counter,
    origin_partial_meta_reads: Counter,
    /// Per group with blocks held back in the last run: how many runs in a row it has had some.
    group_held_back_runs: Family<GroupLabel, Gauge>,
    last_success: Gauge,
    replication_lag: Histogram,
    pending_blocks: Gauge,
    pending_bytes: Gauge,
    oldest_pending: Gauge<f64, std::sync::atomic::AtomicU64>,
    mirror_marked: Family<CauseLabel, Counter>,
    mirror_deleted: Counter,
    mirror_guard_refusals: Counter,
    mirror_refused_blocks: Gauge,
    mirror_deferred_blocks: Gauge,
}

impl RunMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = RunMetrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(run_histogram),
            blocks_already_replicated: Counter::default(),
            blocks_replicated: Counter::default(),
            objects_replicated: Counter::default(),
            blocks_held_back: Counter::default(),
            block_failures: Family::default(),
            blocks_covered: Counter::default(),
            blocks_late: Counter::default(),
            every_group_held_back_by: Family::default(),
            held_back_by_target: Family::default(),
            meta_synced: Family::default(),
            origin_iterations: Counter::default(),
            origin_meta_loads: Counter::default(),
            origin_partial_meta_reads: Counter::default(),
            group_held_back_runs: Family::default(),
            last_success: Gauge::default(),
            replication_lag: lag_histogram(),
            pending_blocks: Gauge::default(),
            pending_bytes: Gauge::default(),
            oldest_pending: Gauge::default(),
            mirror_marked: Family::default(),
            mirror_deleted: Counter::default(),
            mirror_guard_refusals: Counter::default(),
            mirror_refused_blocks: Gauge::default(),
            mirror_deferred_blocks: Gauge::default(),
        };
        // Before the first success, the process's start: an alert on the time since the last
        // success then measures from when replication could first have succeeded.
        m.last_success.set(chrono::Utc::now().timestamp());
        // Both results exist from the start, as in Thanos, so that the mixin's error rate and its
        // alert see the first failure as a rise from zero, and its latency panel has a series
        // before the first success.
        for result in ["success", "error"] {
            m.runs.get_or_create(&ResultLabel { result }).inc_by(0);
            drop(m.run_duration.get_or_create(&ResultLabel { result }));
        }
        // prometheus-client appends `_total` to counters, which gives Thanos's exact names.
        let thanos = registry.sub_registry_with_prefix("thanos_replicate");
        thanos.register(
            "replication_runs",
            "The number of replication runs split by success and error.",
            m.runs.clone(),
        );
        thanos.register(
            "replication_run_duration_seconds",
            "The Duration of replication runs split by success and error.",
            m.run_duration.clone(),
        );
        thanos.register(
            "blocks_already_replicated",
            "Total number of blocks skipped due to already being replicated.",
            m.blocks_already_replicated.clone(),
        );
        thanos.register("blocks_replicated", "Total number of blocks replicated.", m.blocks_replicated.clone());
        thanos.register("objects_replicated", "Total number of objects replicated.", m.objects_replicated.clone());
        // The origin series of Thanos's replicate, which its dashboard's metrics panel reads.
        thanos.register(
            "origin_iterations",
            "Total number of objects iterated over in the origin bucket.",
            m.origin_iterations.clone(),
        );
        thanos.register(
            "origin_meta_loads",
            "Total number of meta.json reads in the origin bucket.",
            m.origin_meta_loads.clone(),
        );
        thanos.register(
            "origin_partial_meta_reads",
            "Total number of partial meta reads encountered.",
            m.origin_partial_meta_reads.clone(),
        );
        // Thanos's meta fetcher registers it without a prefix; the replicate dashboard reads it so.
        registry.register("blocks_meta_synced", "Number of block metadata synced", m.meta_synced.clone());
        for state in SYNCED_STATES {
            m.meta_synced.get_or_create(&StateLabel { state }).set(0);
        }
        let own = registry.sub_registry_with_prefix("bucketflow");
        own.register(
            "blocks_held_back",
            "Blocks not committed because an older block of their group failed in the same run.",
            m.blocks_held_back.clone(),
        );
        own.register(
            "group_held_back_runs",
            "For each compaction group with blocks held back in the last run, how many runs in a row it has had blocks held back.",
            m.group_held_back_runs.clone(),
        );
        own.register(
            "last_successful_run_timestamp_seconds",
            "When the last successful run ended (Unix time), or the process started before its first.",
            m.last_success.clone(),
        );
        own.register("block_failures", "Blocks that failed, by cause.", m.block_failures.clone());
        own.register(
            "blocks_covered",
            "Source blocks not copied because the target compactor merged them into a target block.",
            m.blocks_covered.clone(),
        );
        own.register(
            "blocks_late",
            "Blocks replicated after a newer block of their group was visible in the target.",
            m.blocks_late.clone(),
        );
        own.register(
            "every_group_held_back_by",
            "1 for each block whose meta.json could not be read and whose group is unknown, which held back every group in the last run.",
            m.every_group_held_back_by.clone(),
        );
        own.register(
            "replication_lag_seconds",
            "For each block committed, the time from its meta.json's appearance in the source (its last-modified time) to its commit.",
            m.replication_lag.clone(),
        );
        own.register(
            "pending_blocks",
            "Source blocks selected for replication that the target lacked after the last run (failed, held back), neither present nor covered.",
            m.pending_blocks.clone(),
        );
        own.register("pending_bytes", "The bytes of those blocks.", m.pending_bytes.clone());
        own.register(
            "oldest_pending_seconds",
            "How long ago the oldest of those blocks appeared in the source; 0 when none is pending.",
            m.oldest_pending.clone(),
        );
        own.register(
            "mirror_blocks_marked",
            "With --mirror: target blocks marked for deletion, by reason (covered, source_marked, gone).",
            m.mirror_marked.clone(),
        );
        own.register("mirror_blocks_deleted", "With --mirror: target blocks deleted.", m.mirror_deleted.clone());
        own.register(
            "mirror_guard_refusals",
            "With --mirror: runs in which the deletion guard (--mirror.max-deletions) refused to mark any block whose data no other target block holds.",
            m.mirror_guard_refusals.clone(),
        );
        own.register(
            "mirror_refused_blocks",
            "With --mirror: the blocks the guard refused to mark in the last run; 0 when it refused none.",
            m.mirror_refused_blocks.clone(),
        );
        own.register(
            "mirror_deferred_blocks",
            "With --mirror: the blocks not marked in the last run because the source holds a block over their time that the target lacks, which may hold their data.",
            m.mirror_deferred_blocks.clone(),
        );
        own.register(
            "held_back_by_target_block",
            "1 for each target block whose meta.json could not be read (or is beyond the size bound), which held back the groups it could belong to in the last run.",
            m.held_back_by_target.clone(),
        );
        m
    }

    /// What the mirror's pass did; a dry run's would-be actions count nothing.
    fn observe_mirror(&self, report: &RunReport) {
        let (mut refused, mut deferred) = (0, 0);
        for action in &report.mirror {
            match (action.step, &action.reason) {
                (MirrorStep::Marked, Some(reason)) => {
                    self.mirror_marked.get_or_create(&CauseLabel { reason: reason.label() }).inc();
                }
                (MirrorStep::Deleted, _) => {
                    self.mirror_deleted.inc();
                }
                (MirrorStep::Refused, _) => refused += 1,
                (MirrorStep::Deferred, _) => deferred += 1,
                _ => {}
            }
        }
        if refused > 0 {
            self.mirror_guard_refusals.inc();
        }
        self.mirror_refused_blocks.set(refused);
        self.mirror_deferred_blocks.set(deferred);
    }

    pub fn observe(&self, report: &RunReport) {
        let result = ResultLabel { result: if report.is_failure() { "error" } else { "success" } };
        self.runs.get_or_create(&result).inc();
        if !report.is_failure() {
            self.last_success.set(chrono::Utc::now().timestamp());
        }
        self.observe_origin(report);
        self.observe_held_back_groups(report);
        self.run_duration.get_or_create(&result).observe(report.duration_seconds);
        // A covered block is in the target, merged: Thanos's dashboards count it as replicated.
        self.blocks_already_replicated.inc_by(report.counts.already_replicated + report.counts.covered);
        self.blocks_covered.inc_by(report.counts.covered);
        self.blocks_late.inc_by(report.counts.late);
        let mut synced: std::collections::BTreeMap<&'static str, i64> = SYNCED_STATES.map(|s| (s, 0)).into();
        for block in &report.blocks {
            *synced.entry(block.outcome.synced_state(block.group.is_some())).or_default() += 1;
        }
        for (state, count) in synced {
            self.meta_synced.get_or_create(&StateLabel { state }).set(count);
        }
        self.every_group_held_back_by.clear();
        for block in &report.every_queue_held_back_by {
            self.every_group_held_back_by.get_or_create(&BlockLabel { block: block.clone() }).set(1);
        }
        self.held_back_by_target.clear();
        for block in &report.held_back_by_target {
            self.held_back_by_target.get_or_create(&BlockLabel { block: block.clone() }).set(1);
        }
        self.observe_mirror(report);
        for lag in report.lags_millis() {
            self.replication_lag.observe(lag as f64 / 1000.0);
        }
        // A dry run owes nothing: its plan is no backlog.
        if !report.dry_run {
            let backlog = report.backlog();
            self.pending_blocks.set(backlog.blocks as i64);
            self.pending_bytes.set(backlog.bytes as i64);
            self.oldest_pending.set(backlog.oldest_age_seconds().unwrap_or(0.0));
        }
        self.blocks_replicated.inc_by(report.counts.replicated);
        self.objects_replicated.inc_by(report.objects_copied);
        self.blocks_held_back.inc_by(report.counts.held_back);
        for block in &report.blocks {
            if let Outcome::Failed { cause, .. } = &block.outcome {
                self.block_failures.get_or_create(&CauseLabel { reason: cause.name() }).inc();
            }
        }
    }
}

impl RunMetrics {
    /// Thanos counts each block folder of the origin it iterates over, each meta.json it loads,
    /// and each folder without a readable meta.json (a partial upload); the report says as much
    /// of every block of the run.
    fn observe_origin(&self, report: &RunReport) {
        self.origin_iterations.inc_by(report.blocks.len() as u64);
        let partial = report.blocks.iter().filter(|b| matches!(b.outcome, Outcome::Skipped { .. })).count() as u64;
        self.origin_partial_meta_reads.inc_by(partial);
        self.origin_meta_loads.inc_by(report.blocks.len() as u64 - partial);
    }

    /// Counts, per group, the runs in a row with blocks held back; a group with none in this
    /// run leaves the family, so that only groups held back now have a series.
    fn observe_held_back_groups(&self, report: &RunReport) {
        let held: std::collections::BTreeSet<&str> = report
            .blocks
            .iter()
            .filter(|b| matches!(b.outcome, Outcome::HeldBack { .. }))
            .filter_map(|b| b.group.as_deref())
            .collect();
        let runs: Vec<(String, i64)> = held
            .into_iter()
            .map(|group| {
                let label = GroupLabel { group: group.to_string() };
                let before = self.group_held_back_runs.get(&label).map_or(0, |g| g.get());
                (label.group, before + 1)
            })
            .collect();
        self.group_held_back_runs.clear();
        for (group, runs) in runs {
            self.group_held_back_runs.get_or_create(&GroupLabel { group }).set(runs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bucketflow_dataflows::{MirrorAction, MirrorReason, Strategy};

    fn exposed(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn the_mirror_pass_is_counted_by_step_and_reason() {
        let mut registry = Registry::default();
        let metrics = RunMetrics::new(&mut registry);
        let mut report = RunReport::from_records(0, Strategy::Grouped, false, chrono::Utc::now(), Vec::new());
        let action = |step, reason| MirrorAction { block: "01HF8C28G0N8Z4R7CBP4ACHFGZ".into(), step, reason };
        report.mirror = vec![
            action(MirrorStep::Marked, Some(MirrorReason::Covered { by: "x".into() })),
            action(MirrorStep::Marked, Some(MirrorReason::SourceMarked)),
            action(MirrorStep::Deleted, None),
            action(MirrorStep::Refused, Some(MirrorReason::Gone { since: 0 })),
            action(MirrorStep::Refused, Some(MirrorReason::Gone { since: 0 })),
            action(MirrorStep::Deferred, Some(MirrorReason::SourceMarked)),
            action(MirrorStep::WouldMark, Some(MirrorReason::SourceMarked)),
        ];
        metrics.observe(&report);
        let text = exposed(&registry);
        for line in [
            "bucketflow_mirror_blocks_marked_total{reason=\"covered\"} 1",
            "bucketflow_mirror_blocks_marked_total{reason=\"source_marked\"} 1",
            "bucketflow_mirror_blocks_deleted_total 1",
            "bucketflow_mirror_guard_refusals_total 1",
            "bucketflow_mirror_refused_blocks 2",
            "bucketflow_mirror_deferred_blocks 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        // The next run refuses nothing: the alert's gauge goes back to 0, the counter stays.
        report.mirror.clear();
        metrics.observe(&report);
        let text = exposed(&registry);
        assert!(
            text.contains("bucketflow_mirror_refused_blocks 0")
                && text.contains("bucketflow_mirror_guard_refusals_total 1")
        );
    }
}
