//! The main job on a built-in example: make a small Thanos bucket on disk, replicate it with the
//! default (grouped) strategy, show the report, and replicate again to show that a re-run copies
//! nothing.
//!
//! Run: `cargo run --example quickstart` (the buckets go to `target/quickstart/`).

use std::sync::Arc;

use anyhow::Result;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthSpec};
use bucketflow_dataflows::Outcome;
use bucketflow_dataflows::{EngineConfig, Replicator, RunReport};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

fn print_report(title: &str, report: &RunReport) {
    println!("\n{title}");
    println!("{:<26} {:<24} {:>14}  outcome", "block", "group", "minTime");
    for b in &report.blocks {
        let detail = match &b.outcome {
            Outcome::Replicated { objects_copied, bytes_copied, .. } => {
                format!("replicated ({objects_copied} objects, {bytes_copied} bytes)")
            }
            other => other.kind().to_string(),
        };
        let group = b.group.as_deref().unwrap_or("");
        println!("{:<26} {:<24} {:>14}  {detail}", b.block, group, b.min_time.unwrap_or_default());
    }
    let c = &report.counts;
    println!(
        "=> {} replicated, {} already there, {} failed; {} objects, {} bytes copied in {:.3}s",
        c.replicated,
        c.already_replicated,
        c.failed,
        report.objects_copied,
        report.bytes_copied,
        report.duration_seconds
    );
}

fn main() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");
    let _ = std::fs::remove_dir_all(&root);
    let (source_dir, target_dir) = (root.join("source"), root.join("target"));
    std::fs::create_dir_all(&source_dir)?;
    std::fs::create_dir_all(&target_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;

    let source: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&source_dir)?);
    let target: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&target_dir)?);
    let blocks = generate(&SynthSpec { groups: 3, blocks_per_group: 3, ..SynthSpec::default() });
    runtime.block_on(write(&source, &blocks))?;
    println!("made a bucket of {} blocks in 3 compaction groups at {}", blocks.len(), source_dir.display());

    let mut replicator = Replicator::start(source, target, EngineConfig::default(), runtime.handle().clone())?;
    print_report("first run:", &replicator.run()?);
    print_report("second run (nothing left to copy):", &replicator.run()?);
    replicator.shutdown()?;
    println!(
        "\nthe same with the CLI:\n  cargo run -- replicate --from file://{} --to file://{} --single-run --http-address 127.0.0.1:0",
        source_dir.display(),
        target_dir.display()
    );
    Ok(())
}
