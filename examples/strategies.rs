//! Replicates one synthetic bucket with one strategy between two simulated stores with per-call
//! latency (object_store's `ThrottledStore` over memory), and prints the wall time. Time whole
//! runs of it side by side to compare strategies.
//!
//! `cargo run --release --example strategies -- [grouped|serial|unordered] [latency-ms] [groups] [blocks-per-group] [concurrency]`
//! (defaults: grouped 25 8 8 32).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::testkit::synth::{generate, write, SynthSpec};
use bucketflow_dataflows::{EngineConfig, Replicator, Strategy};
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::ObjectStore;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let strategy: Strategy = arg(0, "grouped").parse()?;
    let latency = Duration::from_millis(arg(1, "25").parse().context("latency-ms")?);
    let groups: usize = arg(2, "8").parse().context("groups")?;
    let blocks_per_group: usize = arg(3, "8").parse().context("blocks-per-group")?;
    let concurrency: usize = arg(4, "32").parse().context("concurrency")?;
    if args.len() > 5 {
        bail!("too many arguments");
    }

    let runtime = tokio::runtime::Runtime::new()?;
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let blocks = generate(&SynthSpec { groups, blocks_per_group, ..SynthSpec::default() });
    runtime.block_on(write(&memory, &blocks))?;
    // Every request pays the latency of an in-region S3 call, reads and writes alike.
    let throttle = ThrottleConfig {
        wait_get_per_call: latency,
        wait_put_per_call: latency,
        wait_list_per_call: latency,
        wait_list_with_delimiter_per_call: latency,
        ..ThrottleConfig::default()
    };
    let source: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(memory, throttle));
    let target: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(InMemory::new(), throttle));

    let config = EngineConfig { strategy, concurrency, ..EngineConfig::default() };
    let started = Instant::now();
    let mut replicator = Replicator::start(source, target, config, runtime.handle().clone())?;
    let report = replicator.run()?;
    replicator.shutdown()?;
    let elapsed = started.elapsed().as_secs_f64();
    if report.counts.replicated as usize != blocks.len() {
        bail!("replicated {} of {} blocks: {:?}", report.counts.replicated, blocks.len(), report.counts);
    }
    println!(
        "strategy={strategy} latency_ms={} blocks={} objects={} seconds={elapsed:.3}",
        latency.as_millis(),
        blocks.len(),
        report.objects_copied
    );
    Ok(())
}
