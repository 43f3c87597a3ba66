//! The `bench` command: the strategies at several concurrency levels over one synthetic bucket.
//!
//! Each run is a child process (`bench-run`), so that its peak memory is its own. By default both
//! buckets are simulated S3 stores: object_store's `ThrottledStore` over memory, with a latency per
//! request and a cost per byte read. With `--source-config`/`--target-config` they are real
//! buckets. Safety is observed from outside the engine by the `SafetyChecker` target wrapper.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::list_block_dirs;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::ExpectedBlock;
use bucketflow_dataflows::testkit::SafetyChecker;
use bucketflow_dataflows::{EngineConfig, Replicator, Strategy};
use bucketflow_dataflows::{RequestLabels, Side as RequestSide, Telemetry};
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::cli::{BenchArgs, BenchRunArgs, BenchWorkload, BucketFlags};
use crate::objstore::{open_bucket, Retries, Side};

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub strategy: Strategy,
    pub concurrency: usize,
    /// Objects actually allowed in flight (1 for serial).
    pub in_flight: usize,
    pub blocks: u64,
    pub objects: u64,
    pub bytes: u64,
    pub wall_seconds: f64,
    pub bytes_per_second: f64,
    pub objects_per_second: f64,
    /// Requests by "bucket operation".
    pub requests: BTreeMap<String, u64>,
    pub rss_before_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Simulated store only: the copy stage's own floor. Each object takes at least two requests
    /// one after the other (source GET, target PUT; what the target holds already is known from
    /// one listing per block) and its bytes at the stream bandwidth, with at most `in_flight`
    /// objects at once: (objects x 2 x latency + bytes / bandwidth) / in_flight.
    pub lower_bound_seconds: Option<f64>,
    pub violations: usize,
    pub failed: u64,
    /// The copy rate away from the run's start and end: bytes copied per second between the
    /// moments 10% and 90% of them were done (sampled every 100 ms).
    pub steady_bytes_per_second: Option<f64>,
}

/// Samples the bytes copied so far until `done`; returns (seconds since start, bytes).
fn sample_progress(
    progress: Arc<bucketflow_dataflows::Progress>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(f64, u64)>> {
    use std::sync::atomic::Ordering;
    let started = Instant::now();
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !done.load(Ordering::Relaxed) {
            samples.push((started.elapsed().as_secs_f64(), progress.bytes_done.load(Ordering::Relaxed)));
            std::thread::sleep(Duration::from_millis(100));
        }
        samples
    })
}

/// The rate between the first sample at 10% of `total` and the last one at 90% or below.
fn steady_rate(samples: &[(f64, u64)], total: u64) -> Option<f64> {
    let from = samples.iter().find(|(_, b)| *b * 10 >= total)?;
    let to = samples.iter().rev().find(|(_, b)| *b * 10 <= total * 9)?;
    (to.0 > from.0).then(|| (to.1 - from.1) as f64 / (to.0 - from.0))
}

fn spec(w: &BenchWorkload) -> SynthSpec {
    SynthSpec {
        groups: w.groups,
        blocks_per_group: w.blocks_per_group,
        max_chunk_bytes: w.max_chunk_bytes,
        seed: w.seed,
        ..SynthSpec::default()
    }
}

fn workload_args(w: &BenchWorkload) -> Vec<String> {
    let mut args = vec![
        format!("--groups={}", w.groups),
        format!("--blocks-per-group={}", w.blocks_per_group),
        format!("--max-chunk-bytes={}", w.max_chunk_bytes),
        format!("--seed={}", w.seed),
        format!("--latency={}ms", w.latency.as_millis()),
        format!("--stream-bytes-per-second={}", w.stream_bytes_per_second),
        format!("--workers={}", w.workers),
    ];
    if let Some(limit) = &w.bwlimit {
        args.push(format!("--bwlimit={limit}"));
    }
    if let (Some(s), Some(t)) = (&w.source_config, &w.target_config) {
        args.push(format!("--source-config={}", s.display()));
        args.push(format!("--target-config={}", t.display()));
    }
    args
}

fn open_yaml(path: &Path, side: Side) -> Result<Arc<dyn ObjectStore>> {
    let flags = BucketFlags { config_file: Some(path.to_path_buf()), ..Default::default() };
    Ok(open_bucket(&flags, side, Retries::default())?.store)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let w = &args.workload;
    if let Some(source) = &w.source_config {
        let store = open_yaml(source, Side::Target)?;
        let runtime = crate::runtime::start()?;
        if runtime.block_on(list_block_dirs(&*store))?.is_empty() {
            tracing::info!("writing the synthetic bucket into the source");
            runtime.block_on(write(&store, &generate(&spec(w))))?;
        }
    }
    let exe = std::env::current_exe().context("finding the bucketflow binary")?;
    let stamp = chrono::Utc::now().timestamp();
    let mut results = Vec::new();
    for &strategy in &args.strategies {
        let levels = if strategy == Strategy::Serial { vec![1] } else { args.concurrency.clone() };
        for concurrency in levels {
            let output = Command::new(&exe)
                .arg("bench-run")
                .args(workload_args(w))
                .arg(format!("--strategy={strategy}"))
                .arg(format!("--concurrency={concurrency}"))
                .arg(format!("--target-prefix=bench-{stamp}-{strategy}-c{concurrency}"))
                .output()
                .context("starting a benchmark run")?;
            if !output.status.success() {
                bail!(
                    "the {strategy} run at concurrency {concurrency} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let result: RunResult = serde_json::from_slice(&output.stdout).context("reading a run's result")?;
            tracing::info!(
                strategy = %strategy,
                concurrency,
                seconds = result.wall_seconds,
                mb_per_second = result.bytes_per_second / 1e6,
                violations = result.violations,
                "benchmark run finished"
            );
            results.push(result);
        }
    }
    let table = markdown(w, &results);
    std::fs::write(args.out.join("results.md"), &table)?;
    std::fs::write(args.out.join("results.json"), serde_json::to_vec_pretty(&results)?)?;
    chart(&args.out.join("throughput.svg"), &results)?;
    println!("{table}");
    println!("written: {}/results.md, results.json, throughput.svg", args.out.display());
    Ok(())
}

/// Resident memory figures of this process from /proc: (current, peak), in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn run_one(args: &BenchRunArgs) -> Result<()> {
    let w = &args.workload;
    let blocks: Vec<SynthBlock> = generate(&spec(w));
    let runtime = crate::runtime::start()?;
    let simulated = w.source_config.is_none();
    let (source, target_base): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) = match (&w.source_config, &w.target_config)
    {
        (Some(s), Some(t)) => {
            let target = open_yaml(t, Side::Target)?;
            let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(target, args.target_prefix.as_str()));
            (open_yaml(s, Side::Source)?, prefixed)
        }
        _ => {
            let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            runtime.block_on(write(&memory, &blocks))?;
            (memory, Arc::new(InMemory::new()))
        }
    };
    let checker = Arc::new(SafetyChecker::new(target_base, blocks.iter().map(ExpectedBlock::from)));
    let (source, target): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) = if simulated {
        let per_byte = Duration::from_secs_f64(1.0 / w.stream_bytes_per_second.max(1) as f64);
        let throttle = ThrottleConfig {
            wait_get_per_call: w.latency,
            wait_get_per_byte: per_byte,
            wait_put_per_call: w.latency,
            wait_list_per_call: w.latency,
            wait_list_with_delimiter_per_call: w.latency,
            wait_delete_per_call: w.latency,
            ..ThrottleConfig::default()
        };
        let target: Arc<dyn ObjectStore> = checker.clone();
        (Arc::new(ThrottledStore::new(source, throttle)), Arc::new(ThrottledStore::new(target, throttle)))
    } else {
        (source, checker.clone())
    };

    let telemetry = Telemetry::default();
    let config = EngineConfig {
        strategy: args.strategy,
        concurrency: args.concurrency,
        workers: w.workers,
        telemetry: telemetry.clone(),
        bandwidth: match &w.bwlimit {
            Some(limit) => limit.parse().map_err(anyhow::Error::msg)?,
            None => Default::default(),
        },
        ..EngineConfig::default()
    };
    let (rss_before, _) = rss();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_progress(telemetry.progress.clone(), sampling.clone());
    let started = Instant::now();
    let mut replicator = Replicator::start(source, target, config, runtime.handle().clone())?;
    let report = replicator.run()?;
    let wall = started.elapsed().as_secs_f64();
    sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().map_err(|_| anyhow::anyhow!("the progress sampler panicked"))?;
    replicator.shutdown()?;
    let (_, peak) = rss();

    let mut requests = BTreeMap::new();
    for side in [RequestSide::Source, RequestSide::Target] {
        for operation in ["get", "head", "put", "put_multipart", "list", "list_with_delimiter", "copy"] {
            let n = telemetry.metrics.requests.get_or_create(&RequestLabels { bucket: side, operation }).get();
            if n > 0 {
                let side = if side == RequestSide::Source { "source" } else { "target" };
                requests.insert(format!("{side} {operation}"), n);
            }
        }
    }
    let in_flight = args.strategy.copy_concurrency(args.concurrency);
    let lower_bound = simulated.then(|| {
        let requests = report.objects_copied as f64 * 2.0 * w.latency.as_secs_f64();
        (requests + report.bytes_copied as f64 / w.stream_bytes_per_second as f64) / in_flight as f64
    });
    let result = RunResult {
        strategy: args.strategy,
        concurrency: args.concurrency,
        in_flight,
        blocks: report.counts.replicated,
        objects: report.objects_copied,
        bytes: report.bytes_copied,
        wall_seconds: wall,
        bytes_per_second: report.bytes_copied as f64 / wall,
        objects_per_second: report.objects_copied as f64 / wall,
        requests,
        rss_before_bytes: rss_before,
        peak_rss_bytes: peak,
        lower_bound_seconds: lower_bound,
        violations: checker.violations().len(),
        failed: report.counts.failed,
        steady_bytes_per_second: steady_rate(&samples, report.bytes_copied),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn markdown(w: &BenchWorkload, results: &[RunResult]) -> String {
    let mut out = String::new();
    let stores = match &w.source_config {
        Some(_) => "real buckets".to_string(),
        None => format!(
            "simulated S3 (ThrottledStore: {} ms per request, {} MB/s per GET stream)",
            w.latency.as_millis(),
            w.stream_bytes_per_second / 1_000_000
        ),
    };
    let limit = w.bwlimit.as_deref().map(|l| format!(", --bwlimit {l}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} groups x {} blocks (seed {}), {}, {} workers{limit}\n",
        w.groups, w.blocks_per_group, w.seed, stores, w.workers
    );
    let _ = writeln!(out, "| strategy | concurrency | in flight | wall s | MB/s | objects/s | requests | peak RSS MiB | copy lower bound s | violations |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let requests: u64 = r.requests.values().sum();
        let bound = r.lower_bound_seconds.map(|b| format!("{b:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.1} | {:.0} | {} | {:.1} | {} | {} |",
            r.strategy,
            r.concurrency,
            r.in_flight,
            r.wall_seconds,
            r.bytes_per_second / 1e6,
            r.objects_per_second,
            requests,
            r.peak_rss_bytes as f64 / 1048576.0,
            bound,
            r.violations
        );
    }
    // Requests by operation, a column each, so that a strategy's extra requests show where they go.
    let operations: std::collections::BTreeSet<&String> = results.iter().flat_map(|r| r.requests.keys()).collect();
    let _ = writeln!(out, "\nRequests by bucket and operation:\n");
    let header: Vec<&str> = operations.iter().map(|o| o.as_str()).collect();
    let _ = writeln!(out, "| strategy | concurrency | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|---:|{}", "---:|".repeat(header.len()));
    for r in results {
        let counts: Vec<String> =
            operations.iter().map(|o| r.requests.get(*o).copied().unwrap_or(0).to_string()).collect();
        let _ = writeln!(out, "| {} | {} | {} |", r.strategy, r.concurrency, counts.join(" | "));
    }
    out
}

/// Throughput against concurrency, a line per strategy; serial, at one object in flight whatever
/// the concurrency asked for, is drawn flat.
fn chart(path: &Path, results: &[RunResult]) -> Result<()> {
    use plotters::prelude::*;
    let levels: Vec<usize> = {
        let mut l: Vec<_> = results.iter().filter(|r| r.strategy != Strategy::Serial).map(|r| r.concurrency).collect();
        l.sort_unstable();
        l.dedup();
        if l.is_empty() {
            vec![1]
        } else {
            l
        }
    };
    let (x_min, x_max) = (*levels.first().unwrap_or(&1) as f64, *levels.last().unwrap_or(&1) as f64);
    let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
    let y_max = results.iter().map(|r| r.bytes_per_second / 1e6).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("bucketflow: throughput by strategy", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("concurrency (objects in flight asked for)")
        .y_desc("MB/s")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let colors = [(Strategy::Grouped, BLUE), (Strategy::Unordered, RED), (Strategy::Serial, BLACK)];
    for (strategy, color) in colors {
        let mut points: Vec<(f64, f64)> = results
            .iter()
            .filter(|r| r.strategy == strategy)
            .map(|r| (r.concurrency as f64, r.bytes_per_second / 1e6))
            .collect();
        if points.is_empty() {
            continue;
        }
        if strategy == Strategy::Serial {
            let y = points[0].1;
            points = vec![(x_min, y), (x_max, y)];
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label =
            if strategy == Strategy::Serial { "serial (1 in flight)".to_string() } else { strategy.to_string() };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}
