//! The `gen` command: a synthetic Thanos bucket written to any bucket bucketflow can open.

use anyhow::{Context, Result};
use bucketflow_dataflows::testkit::synth::{generate, write, SynthSpec};

use crate::cli::GenArgs;
use crate::objstore::{open_bucket, Retries, Side};

pub fn run(args: &GenArgs) -> Result<()> {
    let bucket = open_bucket(&args.target(), Side::Target, Retries::default()).context("target bucket")?;
    let spec = SynthSpec {
        groups: args.groups,
        blocks_per_group: args.blocks_per_group,
        max_chunk_files: args.max_chunk_files,
        min_chunk_bytes: args.min_chunk_bytes,
        max_chunk_bytes: args.max_chunk_bytes,
        with_hashes: !args.no_hashes,
        seed: args.seed,
        ..SynthSpec::default()
    };
    let blocks = generate(&spec);
    let objects: usize = blocks.iter().map(|b| b.objects.len()).sum();
    let bytes: usize = blocks.iter().flat_map(|b| b.objects.values()).map(|o| o.len()).sum();
    let runtime = crate::runtime::start()?;
    runtime.block_on(write(&bucket.store, &blocks)).context("writing the synthetic bucket")?;
    tracing::info!(blocks = blocks.len(), objects, bytes, "synthetic bucket written");
    Ok(())
}
