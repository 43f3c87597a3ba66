//! The operator's window: what the sidecar is doing and what the target compactor will see, as
//! a page at `/` (server-rendered, refreshing itself, no script and no remote asset) and the same
//! data as JSON at `/api/v1/status`.
//!
//! It shows the run in progress (blocks and bytes done, rate, time left), the last runs'
//! outcomes, and every compaction group of the last run as the target compactor sees it: its
//! commit frontier (the newest minTime committed), what is held back behind which block, what
//! failed and why, late, covered and overlapping blocks, and a time line of its blocks.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bucketflow_dataflows::{
    ClusterProgress, MirrorStep, Outcome, ProcessProgress, Progress, RunReport, TargetBlockSummary,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::viewer::{Bar, Snapshot};

/// How many finished runs the page lists.
const HISTORY: usize = 10;

/// A finished run, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub run_id: u64,
    pub started_at: String,
    pub duration_seconds: f64,
    pub result: &'static str,
    pub replicated: u64,
    pub already_replicated: u64,
    pub covered: u64,
    pub failed: u64,
    pub held_back: u64,
    pub bytes_copied: u64,
    /// Selected source blocks the target still lacked after the run, and their bytes.
    pub pending_blocks: u64,
    pub pending_bytes: u64,
    /// How long ago the oldest of them appeared in the source, when known.
    pub oldest_pending_seconds: Option<f64>,
    /// The replication lag of the blocks the run committed: median and 99th percentile, in
    /// seconds, when it committed any whose meta.json's time the listing gave.
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
    /// With `--mirror`: target blocks the run's pass marked for deletion, deleted, and refused
    /// by the guard.
    pub mirror_marked: u64,
    pub mirror_deleted: u64,
    pub mirror_refused: u64,
}

/// A run's backlog as the page writes it: blocks, bytes, and how old the oldest is.
fn backlog_cell(run: &RunLine) -> String {
    match (run.pending_blocks, run.oldest_pending_seconds) {
        (0, _) => "none".to_string(),
        (blocks, Some(oldest)) => format!("{blocks}, {} B, {oldest:.0} s", run.pending_bytes),
        (blocks, None) => format!("{blocks}, {} B", run.pending_bytes),
    }
}

/// A run's lag quantiles as the page writes them.
fn lag_cell(run: &RunLine) -> String {
    match (run.lag_p50_seconds, run.lag_p99_seconds) {
        (Some(p50), Some(p99)) => format!("{p50:.1} s / {p99:.1} s"),
        _ => "-".to_string(),
    }
}

/// The `q` quantile (0 to 1) of `values`, by the nearest rank; `None` when there are none.
fn quantile(values: &mut [u64], q: f64) -> Option<f64> {
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len().max(1));
    values.get(rank - 1).map(|&v| v as f64 / 1000.0)
}

/// A block of a group, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockLine {
    pub block: String,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// The outcome's kind: replicated, already_replicated, covered, failed, held_back, ...
    pub outcome: &'static str,
    /// What the outcome says besides: the block it waits for, the error, the covering block.
    pub detail: String,
}

/// A compaction group of the last run, as the target compactor sees it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupLine {
    pub group: String,
    /// The newest minTime committed in the target (replicated now or before); `None` when none.
    pub frontier: Option<i64>,
    pub held_back: usize,
    pub failed: usize,
    pub overlapping: usize,
    pub late: usize,
    pub covered: usize,
    pub blocks: Vec<BlockLine>,
}

/// The run in progress.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub started_at: String,
    pub blocks_done: u64,
    pub blocks_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub bytes_per_second: f64,
    /// Seconds left at the current rate, when there is one.
    pub seconds_left: Option<f64>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The run in progress; in a cluster, the whole cluster's (on process 0).
    pub current: Option<Current>,
    /// In a cluster, on process 0: each process's progress in the run in progress, or in the
    /// last run it took part in. Empty outside cluster mode.
    pub processes: Vec<ProcessProgress>,
    pub runs: Vec<RunLine>,
    pub groups: Vec<GroupLine>,
}

#[derive(Default)]
struct Board {
    running_since: Option<DateTime<Utc>>,
    runs: VecDeque<RunLine>,
    last: Option<Arc<RunReport>>,
    /// Both buckets' blocks as the last run left them, for the viewer.
    snapshot: Arc<Snapshot>,
}

/// What the run loop tells the page; shared with the HTTP server.
pub struct StatusBoard {
    board: Mutex<Board>,
    progress: Arc<Progress>,
    cluster: Arc<ClusterProgress>,
}

impl StatusBoard {
    /// A board that reads this process's `progress` and, on process 0 of a cluster, every
    /// process's (`cluster`, empty otherwise).
    pub fn new(progress: Arc<Progress>, cluster: Arc<ClusterProgress>) -> Self {
        StatusBoard { board: Mutex::new(Board::default()), progress, cluster }
    }

    pub fn run_started(&self) {
        self.board.lock().expect("never poisoned").running_since = Some(Utc::now());
    }

    /// The last run ended with `report`; `targets` are the target's visible blocks after it, for
    /// the block viewer (`None`: no viewer, as for a single run, which exits after it).
    pub fn run_finished(&self, report: &RunReport, targets: Option<&[TargetBlockSummary]>) {
        // Built outside the lock: a page asked for meanwhile shows the run before.
        let snapshot = targets.map(|targets| Arc::new(Snapshot::new(report, targets)));
        let mut board = self.board.lock().expect("never poisoned");
        board.snapshot = snapshot.unwrap_or_default();
        board.running_since = None;
        let c = &report.counts;
        let backlog = report.backlog();
        let mut lags: Vec<u64> = report.lags_millis().collect();
        board.runs.push_front(RunLine {
            run_id: report.run_id,
            started_at: report.started_at.clone(),
            duration_seconds: report.duration_seconds,
            result: if report.is_failure() { "error" } else { "success" },
            replicated: c.replicated,
            already_replicated: c.already_replicated,
            covered: c.covered,
            failed: c.failed,
            held_back: c.held_back,
            bytes_copied: report.bytes_copied,
            pending_blocks: backlog.blocks,
            pending_bytes: backlog.bytes,
            oldest_pending_seconds: backlog.oldest_age_seconds(),
            lag_p50_seconds: quantile(&mut lags, 0.5),
            lag_p99_seconds: quantile(&mut lags, 0.99),
            mirror_marked: mirror_steps(report, MirrorStep::Marked),
            mirror_deleted: mirror_steps(report, MirrorStep::Deleted),
            mirror_refused: mirror_steps(report, MirrorStep::Refused),
        });
        board.runs.truncate(HISTORY);
        board.last = Some(Arc::new(report.clone()));
    }

    /// The blocks being copied or committed by the run in progress (none between runs), as
    /// source bars of their groups.
    pub fn in_flight(&self) -> BTreeMap<String, Vec<Bar>> {
        if self.board.lock().expect("never poisoned").running_since.is_none() {
            return BTreeMap::new();
        }
        let mut groups: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
        for (dir, block) in self.progress.in_flight() {
            groups.entry(block.group.clone()).or_default().push(Bar {
                side: crate::viewer::Side::Source,
                block: dir,
                min_time: block.min_time,
                max_time: block.max_time,
                level: Some(block.level),
                resolution: bucketflow_dataflows::group_resolution(&block.group),
                state: "in_flight",
                detail: "being copied or committed by the run in progress".into(),
            });
        }
        groups
    }

    /// Both buckets' blocks as the last run left them.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.board.lock().expect("never poisoned").snapshot.clone()
    }

    pub fn status(&self) -> Status {
        let board = self.board.lock().expect("never poisoned");
        let processes = self.cluster.processes();
        let current = board.running_since.map(|since| {
            let (blocks_done, blocks_total, bytes_done, bytes_total) =
                cluster_sum(&processes).unwrap_or_else(|| self.progress.snapshot());
            let elapsed = (Utc::now() - since).num_milliseconds().max(1) as f64 / 1000.0;
            let rate = bytes_done as f64 / elapsed;
            let seconds_left = (rate > 0.0).then(|| bytes_total.saturating_sub(bytes_done) as f64 / rate);
            Current {
                started_at: since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                blocks_done,
                blocks_total,
                bytes_done,
                bytes_total,
                bytes_per_second: rate,
                seconds_left,
            }
        });
        let groups = board.last.as_deref().map(groups_of).unwrap_or_default();
        Status { current, processes, runs: board.runs.iter().cloned().collect(), groups }
    }
}

/// How many of the run's mirror actions took `step`.
fn mirror_steps(report: &RunReport, step: MirrorStep) -> u64 {
    report.mirror.iter().filter(|a| a.step == step).count() as u64
}

/// The whole cluster's progress in the newest run any process reported: (blocks done, blocks
/// total, bytes done, bytes total), as [`Progress::snapshot`]. `None` outside cluster mode.
fn cluster_sum(processes: &[ProcessProgress]) -> Option<(u64, u64, u64, u64)> {
    let run = processes.iter().map(|p| p.run).max()?;
    Some(processes.iter().filter(|p| p.run == run).fold((0, 0, 0, 0), |(a, b, c, d), p| {
        (a + p.blocks_done, b + p.blocks_total, c + p.bytes_done, d + p.bytes_total)
    }))
}

/// The groups of a run's report, each with its blocks in time order.
fn groups_of(report: &RunReport) -> Vec<GroupLine> {
    let mut groups: BTreeMap<String, GroupLine> = BTreeMap::new();
    for block in &report.blocks {
        let Some(group) = &block.group else { continue };
        let line = groups.entry(group.clone()).or_insert_with(|| GroupLine {
            group: group.clone(),
            frontier: None,
            held_back: 0,
            failed: 0,
            overlapping: 0,
            late: 0,
            covered: 0,
            blocks: Vec::new(),
        });
        // The viewer's words for the block, counted as the target compactor sees them.
        let (state, detail) = crate::viewer::state_of(&block.outcome);
        match state {
            "held_back" => line.held_back += 1,
            "failed" => line.failed += 1,
            "overlap" => {
                line.failed += 1;
                line.overlapping += 1;
            }
            "covered" => line.covered += 1,
            "late" => line.late += 1,
            _ => {}
        }
        if matches!(block.outcome, Outcome::Replicated { .. } | Outcome::AlreadyReplicated) {
            line.frontier = line.frontier.max(block.min_time);
        }
        line.blocks.push(BlockLine {
            block: block.block.clone(),
            min_time: block.min_time,
            max_time: block.max_time,
            outcome: block.outcome.kind(),
            detail,
        });
    }
    groups.into_values().collect()
}

/// Text made safe to put in HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time in Unix milliseconds as people read it.
pub fn when(millis: Option<i64>) -> String {
    millis
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// The page at `/`: the run in progress and the last runs, then `groups` (the viewer's part).
/// It refreshes itself, at the same URL, so with the same filters.
pub fn html(status: &Status, groups: &str) -> String {
    let mut page = format!(
        concat!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">",
            "<title>bucketflow</title><style>{}</style></head><body><h1>bucketflow</h1>"
        ),
        crate::viewer::page::STYLE
    );
    match &status.current {
        Some(c) => {
            let left = c.seconds_left.map_or_else(|| "unknown".to_string(), |s| format!("{s:.0} s"));
            let _ = write!(
                page,
                "<p>Run in progress since {}: {} of {} blocks, {} of {} bytes, {:.0} B/s, {} left.</p>",
                escape(&c.started_at),
                c.blocks_done,
                c.blocks_total,
                c.bytes_done,
                c.bytes_total,
                c.bytes_per_second,
                left
            );
        }
        None => page.push_str("<p>No run in progress.</p>"),
    }
    if !status.processes.is_empty() {
        page.push_str("<h2>Processes of the cluster</h2><table><tr><th>process</th><th>run</th><th>blocks</th><th>bytes</th></tr>");
        for p in &status.processes {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{} of {}</td><td>{} of {}</td></tr>",
                p.process, p.run, p.blocks_done, p.blocks_total, p.bytes_done, p.bytes_total
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Last runs</h2><table><tr><th>run</th><th>started</th><th>seconds</th><th>result</th><th>replicated</th><th>already</th><th>covered</th><th>failed</th><th>held back</th><th>bytes</th><th>backlog (blocks, bytes, oldest)</th><th>lag p50 / p99</th><th>mirror (marked, deleted, refused)</th></tr>");
    for run in &status.runs {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}, {}, {}</td></tr>",
            run.run_id,
            escape(&run.started_at),
            run.duration_seconds,
            run.result,
            run.replicated,
            run.already_replicated,
            run.covered,
            run.failed,
            run.held_back,
            run.bytes_copied,
            backlog_cell(run),
            lag_cell(run),
            run.mirror_marked,
            run.mirror_deleted,
            run.mirror_refused
        );
    }
    page.push_str("</table>");
    page.push_str(groups);
    page.push_str("</body></html>");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
