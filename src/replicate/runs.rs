//! The run loop: on process 0, one run or a run every interval until a signal; on the other
//! processes of a cluster, following process 0's runs.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bucketflow_dataflows::Progress;
use bucketflow_dataflows::Replicator;

use super::report;
use super::signals::Interrupt;
use crate::cli::{LogFormat, ReplicateArgs};
use crate::metrics::RunMetrics;
use crate::progress::Bar;
use crate::status::StatusBoard;
use crate::Finish;

/// Runs the replication as the flags ask, until it is done or `interrupt` stops it.
pub fn run(
    args: &ReplicateArgs,
    mut replicator: Replicator,
    progress: &Arc<Progress>,
    metrics: &RunMetrics,
    status: &StatusBoard,
    interrupt: &Interrupt,
) -> Result<Finish> {
    if !replicator.is_leader() {
        return follow(replicator, interrupt);
    }
    let single = args.is_single_run();
    let show_bar = single && !args.dry_run && args.log_format == LogFormat::Logfmt && std::io::stderr().is_terminal();
    loop {
        progress.reset();
        let bar = show_bar.then(|| Bar::start(progress.clone()));
        status.run_started();
        let report = replicator.run()?;
        drop(bar);
        metrics.observe(&report);
        // A single run exits after its report: no viewer to build for it.
        let targets = (!single).then(|| replicator.target_blocks());
        status.run_finished(&report, targets.as_deref());
        report::publish(args, &report)?;
        if let Some(signal) = interrupt.signal() {
            return Ok(Finish::Interrupted(signal));
        }
        if single {
            return Ok(if report.is_failure() { Finish::RunFailed } else { Finish::Succeeded });
        }
        if !wait_for_next_run(args.interval, interrupt) {
            // Between runs there is nothing to interrupt: a clean stop.
            tracing::info!("stopping between runs");
            return Ok(Finish::Succeeded);
        }
    }
}

/// Process 0 starts every run and gathers its report; this process copies and commits its share
/// until process 0 shuts the dataflow down.
fn follow(replicator: Replicator, interrupt: &Interrupt) -> Result<Finish> {
    replicator.follow()?;
    tracing::info!("process 0 ended the replication; the run reports are on process 0");
    Ok(interrupt.signal().map_or(Finish::Succeeded, Finish::Interrupted))
}

/// Sleeps for `interval`; false when a signal arrives first.
fn wait_for_next_run(interval: Duration, interrupt: &Interrupt) -> bool {
    let next = Instant::now() + interval;
    while Instant::now() < next {
        if interrupt.signal().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())));
    }
    true
}
