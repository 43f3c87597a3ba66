//! The `replicate` command: one run or a run every interval.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::report::Outcome;
use bucketflow_dataflows::{Replicator, RunReport, Strategy};

use bucketflow_dataflows::store::LatencyStore;
use object_store::ObjectStore;
use prometheus_client::registry::Registry;

use crate::cli::{LogFormat, ReplicateArgs};
use crate::http::{self, HttpState};
use crate::metrics::RunMetrics;
use crate::objstore::{open_bucket, same_store, Side};
use crate::progress::Bar;

/// How a replicate invocation ended.
pub enum Finish {
    Succeeded,
    /// A single run in which a selected block failed.
    RunFailed,
    /// A run stopped by this signal.
    Interrupted(i32),
}

pub fn run(args: &ReplicateArgs) -> Result<Finish> {
    let mut config = args.engine_config()?;
    let retries = args.request_retries();
    let source = open_bucket(&args.source(), Side::Source, retries).context("source bucket")?;
    let target = open_bucket(&args.target(), Side::Target, retries).context("target bucket")?;
    if config.mark_source_for_deletion && source.overlaps(&target) {
        bail!(
            "--mark-source-for-deletion: the source and the target are the same bucket and prefix, or one lies inside the other; marking would delete the only copy"
        );
    }
    config.same_store = same_store(&source, &target);
    if config.same_store.is_some() {
        tracing::info!("source and target are one store; objects are copied server-side");
    }
    if config.mark_source_for_deletion {
        tracing::warn!("--mark-source-for-deletion: every block that is safe in the target gets a deletion mark in the source, and the source's compactor will delete it");
    }
    if config.strategy == Strategy::Unordered {
        tracing::warn!("--strategy unordered commits blocks with no compaction-group order; a target compactor can see gaps. Use it for benchmarks only");
    }
    let (source, target) = match args.debug_latency {
        Some(latency) => (with_latency(source.store, latency), with_latency(target.store, latency)),
        None => (source.store, target.store),
    };

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let mut registry = Registry::default();
    config.telemetry.metrics.register(&mut registry);
    let run_metrics = RunMetrics::new(&mut registry);
    let state = Arc::new(HttpState { registry: Mutex::new(registry), ready: AtomicBool::new(false) });
    let bound = runtime.block_on(http::serve(args.http_address, state.clone()))?;
    tracing::info!(address = %bound, "serving HTTP: /metrics, /-/healthy, /-/ready");
    runtime.spawn(become_ready(source.clone(), target.clone(), state));

    // A signal cancels the run in progress: no new copies start, copies in flight finish (within
    // the grace period), and blocks left incomplete fail without their meta.json.
    let signal = Arc::new(AtomicI32::new(0));
    {
        let (signal, cancel, grace) = (signal.clone(), config.cancel.clone(), args.grace_period);
        runtime.spawn(async move {
            let number = shutdown_signal().await;
            signal.store(number, Ordering::SeqCst);
            cancel.cancel();
            tracing::warn!(signal = number, grace_period = ?grace, "signal received: starting no new copies and stopping after the copies in flight");
            tokio::time::sleep(grace).await;
            tracing::error!("the grace period is over; exiting with copies still in flight (their blocks have no meta.json)");
            std::process::exit(128 + number);
        });
    }

    let telemetry = config.telemetry.clone();
    if let Some(cluster) = &config.cluster {
        tracing::info!(process = cluster.process, addresses = ?cluster.addresses, "joining the cluster");
    }
    let mut replicator = Replicator::start(source, target, config, runtime.handle().clone())?;
    if !replicator.is_leader() {
        // Process 0 starts every run and gathers its report; this process copies and commits its
        // share until process 0 shuts the dataflow down.
        replicator.follow()?;
        tracing::info!("process 0 ended the replication; the run reports are on process 0");
        let interrupted = signal.load(Ordering::SeqCst);
        return Ok(if interrupted != 0 { Finish::Interrupted(interrupted) } else { Finish::Succeeded });
    }
    let single = args.is_single_run();
    let show_bar = single && !args.dry_run && args.log_format == LogFormat::Logfmt && std::io::stderr().is_terminal();
    loop {
        telemetry.progress.reset();
        let bar = show_bar.then(|| Bar::start(telemetry.progress.clone()));
        let report = replicator.run()?;
        drop(bar);
        run_metrics.observe(&report);
        log_report(&report);
        if args.dry_run {
            print_plan(&report)?;
        }
        if let Some(path) = &args.report_file {
            let json = serde_json::to_vec_pretty(&report)?;
            std::fs::write(path, json).with_context(|| format!("writing --report-file {}", path.display()))?;
        }
        let interrupted = signal.load(Ordering::SeqCst);
        if interrupted != 0 {
            return Ok(Finish::Interrupted(interrupted));
        }
        if single {
            return Ok(if report.is_failure() { Finish::RunFailed } else { Finish::Succeeded });
        }
        let next = Instant::now() + args.interval;
        while Instant::now() < next {
            if signal.load(Ordering::SeqCst) != 0 {
                // Between runs there is nothing to interrupt: a clean stop.
                tracing::info!("stopping between runs");
                return Ok(Finish::Succeeded);
            }
            std::thread::sleep(Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())));
        }
    }
}

/// Every request to `store` waits `latency` first, as over a slow network.
fn with_latency(store: Arc<dyn ObjectStore>, latency: Duration) -> Arc<dyn ObjectStore> {
    Arc::new(LatencyStore::new(store, latency))
}

/// Ready once both buckets have been listed, retried every few seconds until they can be.
async fn become_ready(source: Arc<dyn ObjectStore>, target: Arc<dyn ObjectStore>, state: Arc<HttpState>) {
    loop {
        match tokio::try_join!(source.list_with_delimiter(None), target.list_with_delimiter(None)) {
            Ok(_) => {
                state.ready.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "listing the buckets for readiness failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Waits for SIGINT or SIGTERM and returns its number.
async fn shutdown_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => 2,
                _ = term.recv() => 15,
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            2
        }
    }
}

fn log_report(report: &RunReport) {
    let c = &report.counts;
    let result = if report.is_failure() { "error" } else { "success" };
    tracing::info!(
        run = report.run_id,
        result,
        replicated = c.replicated,
        already_replicated = c.already_replicated,
        filtered = c.filtered,
        skipped = c.skipped,
        failed = c.failed,
        held_back = c.held_back,
        objects_copied = report.objects_copied,
        bytes_copied = report.bytes_copied,
        duration_seconds = report.duration_seconds,
        "replication run finished"
    );
    for error in &report.errors {
        tracing::error!(run = report.run_id, %error, "replication run error");
    }
}

/// The dry run's plan as a table a person reads: one line per block, then the counts.
fn print_plan(report: &RunReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:<26} {:>15} {:>15} {:>12}  ACTION", "GROUP", "BLOCK", "MIN TIME", "MAX TIME", "BYTES")?;
    for b in &report.blocks {
        let (action, bytes) = match &b.outcome {
            Outcome::Planned { bytes, .. } => ("replicate".to_string(), bytes.to_string()),
            Outcome::AlreadyReplicated => ("already replicated".into(), String::new()),
            Outcome::Filtered { reason } => (format!("filtered: {reason}"), String::new()),
            Outcome::Skipped { reason } => (format!("skipped: {reason}"), String::new()),
            other => (other.kind().to_string(), String::new()),
        };
        let time = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        let group = b.group.clone().unwrap_or_default();
        writeln!(
            out,
            "{group:<24} {:<26} {:>15} {:>15} {bytes:>12}  {action}",
            b.block,
            time(b.min_time),
            time(b.max_time)
        )?;
    }
    let c = &report.counts;
    writeln!(
        out,
        "{} to replicate, {} already replicated, {} filtered, {} skipped, {} failed",
        c.planned, c.already_replicated, c.filtered, c.skipped, c.failed
    )?;
    Ok(())
}
