//! The `replicate` command: flags to engine configuration, then one run or a run every interval.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::copy::RetryPolicy;
use bucketflow_dataflows::filter::BlockFilter;
use bucketflow_dataflows::matcher::{parse_matchers, Selector};
use bucketflow_dataflows::report::Outcome;
use bucketflow_dataflows::{EngineConfig, Replicator, RunReport, Strategy};

use crate::cli::ReplicateArgs;
use crate::objstore::{open_bucket, same_store, Retries, Side};

/// How a replicate invocation ended.
pub enum Finish {
    Succeeded,
    /// A single run in which a selected block failed.
    RunFailed,
}

/// Builds the run's block filter from Thanos's selection flags.
pub fn block_filter(args: &ReplicateArgs) -> Result<BlockFilter> {
    let mut matchers = Vec::new();
    for text in &args.matchers {
        matchers.extend(parse_matchers(text).with_context(|| format!("--matcher {text}"))?);
    }
    let compaction_levels = if args.compaction.is_empty() {
        if args.compaction_min > args.compaction_max {
            bail!("--compaction-min {} is greater than --compaction-max {}", args.compaction_min, args.compaction_max);
        }
        (args.compaction_min..=args.compaction_max).collect()
    } else {
        args.compaction.iter().copied().collect()
    };
    Ok(BlockFilter {
        ids: args.ids.iter().copied().collect(),
        selector: Selector { matchers },
        resolutions: args.resolutions.iter().map(|d| d.as_millis() as i64).collect(),
        compaction_levels,
        min_time: args.min_time,
        max_time: args.max_time,
        ignore_marked_for_deletion: args.ignore_marked_for_deletion,
    })
}

pub fn engine_config(args: &ReplicateArgs) -> Result<EngineConfig> {
    let defaults = EngineConfig::default();
    Ok(EngineConfig {
        retry: RetryPolicy { retries: args.retries, timeout: args.retry_timeout, ..RetryPolicy::default() },
        same_store: None,
        strategy: args.strategy,
        concurrency: args.concurrency as usize,
        workers: args.workers.map(|w| w as usize).unwrap_or(defaults.workers),
        part_size: usize::try_from(args.part_size).context("--part-size is too large")?,
        dry_run: args.dry_run,
        filter: block_filter(args)?,
    })
}

pub fn run(args: &ReplicateArgs) -> Result<Finish> {
    let mut config = engine_config(args)?;
    let retries = Retries { retries: args.retries, retry_timeout: args.retry_timeout };
    let source = open_bucket(&args.source(), Side::Source, retries).context("source bucket")?;
    let target = open_bucket(&args.target(), Side::Target, retries).context("target bucket")?;
    config.same_store = same_store(&source, &target);
    if config.same_store.is_some() {
        tracing::info!("source and target are one store; objects are copied server-side");
    }
    // Bind now so that a bad or busy address is reported at start; the HTTP endpoints (metrics,
    // probes) are served from this socket by the sidecar surface.
    let listener =
        TcpListener::bind(args.http_address).with_context(|| format!("--http-address {}", args.http_address))?;
    tracing::info!(address = %listener.local_addr()?, "http address bound");
    drop(listener);
    if config.strategy == Strategy::Unordered {
        tracing::warn!("--strategy unordered commits blocks with no compaction-group order; a target compactor can see gaps. Use it for benchmarks only");
    }

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            shutdown_signal().await;
            tracing::info!("signal received; stopping after the current run");
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut replicator = Replicator::start(source.store, target.store, config, runtime.handle().clone())?;
    let single = args.is_single_run();
    loop {
        let report = replicator.run()?;
        log_report(&report);
        if args.dry_run {
            print_plan(&report)?;
        }
        if let Some(path) = &args.report_file {
            let json = serde_json::to_vec_pretty(&report)?;
            std::fs::write(path, json).with_context(|| format!("writing --report-file {}", path.display()))?;
        }
        if single {
            return Ok(if report.is_failure() { Finish::RunFailed } else { Finish::Succeeded });
        }
        let next = Instant::now() + args.interval;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                return Ok(Finish::Succeeded);
            }
            std::thread::sleep(Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())));
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(Finish::Succeeded);
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
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
