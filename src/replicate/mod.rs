//! The `replicate` command: opens both buckets, serves HTTP, handles signals, then runs the
//! replication once or every interval.

mod report;
mod runs;
mod serve;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::{EngineConfig, Replicator, Strategy};
use bucketflow_dataflows::{LatencyStore, PartStore};
use object_store::ObjectStore;

use crate::cli::{ReplicateArgs, ServerSideCopyFlag};
use crate::objstore::{open_bucket, provider_copy, same_store, Side};
use crate::Finish;

pub fn run(args: &ReplicateArgs) -> Result<Finish> {
    args.check_thanos_only_flags()?;
    let web = args.web_config()?;
    let mut config = args.engine_config()?;
    let (source, target) = open_buckets(args, &mut config)?;
    warn_of_risks(&config);

    let runtime = crate::runtime::start_with(args.io_threads.map(|n| n as usize))?;
    let group_label = args.web_group_label.as_deref();
    let serving = serve::start(&runtime, args.http_address, &web, &config, &source, &target, group_label)?;
    let cancel = config.cancel.clone();
    let interrupt = signals::install(&runtime, args.grace_period, move || cancel.cancel());

    let progress = config.telemetry.progress.clone();
    // The viewer draws the blocks in flight of a sidecar; a single run exits after its report.
    progress.track_blocks(!args.is_single_run());
    if let Some(cluster) = &config.cluster {
        tracing::info!(process = cluster.process, addresses = ?cluster.addresses, "joining the cluster");
    }
    let replicator = Replicator::start(source, target, config, runtime.handle().clone())?;
    let finish = runs::run(args, replicator, &progress, &serving.run_metrics, &serving.status, &interrupt);
    // Scrapes and page loads in flight get --http-grace-period to finish, as in Thanos.
    runtime.block_on(serving.server.stop(args.http_grace_period));
    finish
}

/// Opens both buckets, as stores to replicate between. In move mode a target that shares the
/// source's objects is refused: marking would delete the only copy. When the two are one store,
/// `config` says so, for server-side copies.
fn open_buckets(
    args: &ReplicateArgs,
    config: &mut EngineConfig,
) -> Result<(Arc<dyn ObjectStore>, Arc<dyn ObjectStore>)> {
    let retries = args.request_retries();
    let source = open_bucket(&args.source(), Side::Source, retries).context("source bucket")?;
    let target = open_bucket(&args.target(), Side::Target, retries).context("target bucket")?;
    if config.mark_source_for_deletion && source.overlaps(&target) {
        bail!(
            "--mark-source-for-deletion: the source and the target are the same bucket and prefix, or one lies inside the other; marking would delete the only copy"
        );
    }
    if let Some(cluster) = &mut config.cluster {
        // Every process must replicate between the same two buckets; where a bucket lives says
        // which it is without its credentials.
        let place = |bucket: &crate::objstore::Bucket| bucket.place.as_ref().map_or("memory".into(), |p| p.join("/"));
        cluster.settings.insert("source bucket".into(), place(&source));
        cluster.settings.insert("target bucket".into(), place(&target));
        cluster.settings.insert("build".into(), build_identity());
    }
    // Between two folders the kernel copies each file, unless --bwlimit is to pace the bytes.
    let limited_folders = config.bandwidth != Default::default()
        && [&source, &target].iter().all(|b| matches!(b.endpoint, Some(crate::objstore::Endpoint::Folder(_))));
    if args.server_side_copy == ServerSideCopyFlag::Auto && !limited_folders {
        config.same_store = same_store(&source, &target);
        if config.same_store.is_some() {
            tracing::info!("source and target are one store; objects are copied server-side");
        } else {
            match provider_copy(&source, &target, args.debug_multipart_copy_above) {
                Ok(Some(copy)) => {
                    tracing::info!(copy = ?copy, "source and target are on one provider endpoint; objects are copied server-side");
                    config.server_side_copy = Some(copy);
                }
                Ok(None) => {}
                Err(reason) => tracing::info!(%reason, "objects are streamed, not copied server-side"),
            }
        }
    }
    // Parts sent by number wait the latency the target's other requests are given.
    config.target_parts = target.part_store().map(|parts| match args.debug_latency {
        Some(latency) => PartStore(Arc::new(LatencyStore::new(parts, latency))),
        None => parts,
    });
    if config.target_parts.is_some() {
        tracing::info!("large objects are uploaded by part number: a failed part is read again and sent again alone");
    }
    Ok(match args.debug_latency {
        Some(latency) => (with_latency(source.store, latency), with_latency(target.store, latency)),
        None => (source.store, target.store),
    })
}

/// Warns of the flags whose cost an operator should see in the log.
fn warn_of_risks(config: &EngineConfig) {
    if config.mark_source_for_deletion {
        tracing::warn!("--mark-source-for-deletion: every block that is safe in the target gets a deletion mark in the source, and the source's compactor will delete it");
    }
    if config.strategy == Strategy::Unordered {
        tracing::warn!("--strategy unordered commits blocks with no compaction-group order; a target compactor can see gaps. Use it for benchmarks only");
    }
}

/// Every request to `store` waits `latency` first, as over a slow network.
fn with_latency(store: Arc<dyn ObjectStore>, latency: Duration) -> Arc<dyn ObjectStore> {
    Arc::new(LatencyStore::new(store, latency))
}

/// What tells this build from another: the xxHash64 of the running executable. The processes of a
/// cluster exchange records in the engine's own encoding, which any change of the code may alter,
/// so a process of another build (one left behind by a rolling upgrade) must not join.
fn build_identity() -> String {
    match std::env::current_exe().and_then(std::fs::read) {
        Ok(bytes) => format!("{:016x}", xxhash_rust::xxh64::xxh64(&bytes, 0)),
        Err(error) => format!("unknown ({error})"),
    }
}
