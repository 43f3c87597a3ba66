//! An idle sidecar costs listings, not requests per block: a run over blocks the process has
//! seen, that the target holds already, asks the buckets for their listings and nothing else.
//! Counted with the engine's own request metrics (a count is stable, unlike a time).

use std::collections::BTreeMap;
use std::sync::Arc;

mod support;

use bucketflow_dataflows::testkit::synth::{self, generate, write, BlockShape, SynthSpec};
use bucketflow_dataflows::{BlockFilter, EngineConfig, Replicator, Telemetry};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use prometheus_client::registry::Registry;
use support::{requests, runtime};

/// What happened between two snapshots of `requests`.
fn since(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

/// A long-lived replicator (as a sidecar's) from a source holding `blocks` to an empty target,
/// with the registry its requests are counted in.
struct Sidecar {
    source: Arc<dyn ObjectStore>,
    target: Arc<dyn ObjectStore>,
    registry: Registry,
    replicator: Replicator,
}

fn sidecar(rt: &tokio::runtime::Runtime, blocks: &[synth::SynthBlock]) -> Sidecar {
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&source, blocks)).unwrap();
    let telemetry = Telemetry::default();
    let mut registry = Registry::default();
    telemetry.metrics.register(&mut registry);
    let config = EngineConfig { telemetry, workers: 2, ..EngineConfig::default() };
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let replicator = Replicator::start(source.clone(), target.clone(), config, rt.handle().clone()).unwrap();
    Sidecar { source, target, registry, replicator }
}

#[test]
fn an_idle_run_asks_for_listings_only() {
    let rt = runtime();
    let blocks =
        generate(&SynthSpec { groups: 10, blocks_per_group: 30, max_chunk_bytes: 512, ..SynthSpec::default() });
    let n = blocks.len() as u64;
    let Sidecar { source, target, registry, mut replicator } = sidecar(&rt, &blocks);
    assert_eq!(replicator.run().unwrap().counts.replicated, n);

    let before = requests(&registry);
    let report = replicator.run().unwrap();
    let idle = since(&before, &requests(&registry));
    assert_eq!(report.counts.already_replicated, n);
    let total: u64 = idle.values().sum();
    assert!(total <= n / 20, "{total} requests for {n} unchanged blocks: {idle:?}");
    assert!(idle.keys().all(|op| op.ends_with("/list")), "only listings: {idle:?}");

    // A new block, and a block whose target copy lost its meta.json, are replicated on the next
    // run, with requests for those two blocks only.
    let shape = BlockShape::new(&[("cluster", "new")], 1_700_000_000_000, 1_700_007_200_000, 99);
    let new = synth::blocks(vec![shape], &SynthSpec::default());
    rt.block_on(write(&source, &new)).unwrap();
    let partial = &blocks[7];
    rt.block_on(target.delete(&object_store::path::Path::from(format!("{}/meta.json", partial.dir)))).unwrap();
    let before = requests(&registry);
    let report = replicator.run().unwrap();
    assert_eq!(report.counts.replicated, 2, "{:?}", report.counts);
    let outcomes = report.outcomes();
    assert_eq!(outcomes[partial.dir.as_str()].kind(), "replicated");
    assert_eq!(report.counts.late, 1, "the partial block is older than its group's newest");
    let work = since(&before, &requests(&registry));
    let gets = work.get("source/get").copied().unwrap_or(0);
    assert!(gets <= 2 + new[0].objects.len() as u64 + partial.objects.len() as u64, "{work:?}");

    // A block deleted from the target (and not covered by a compacted block) comes back.
    let gone = &blocks[3];
    for rel in gone.objects.keys() {
        rt.block_on(target.delete(&object_store::path::Path::from(format!("{}/{rel}", gone.dir)))).unwrap();
    }
    let report = replicator.run().unwrap();
    assert_eq!(report.outcomes()[gone.dir.as_str()].kind(), "replicated");

    // A meta.json rewritten in the source (another version) is read again, not trusted.
    let rewritten = &blocks[5];
    let text = String::from_utf8(rewritten.meta_json().to_vec()).unwrap().replace("bucketflow-synth", "rewritten");
    let path = object_store::path::Path::from(format!("{}/meta.json", rewritten.dir));
    rt.block_on(source.put(&path, PutPayload::from(text.clone()))).unwrap();
    let report = replicator.run().unwrap();
    assert_eq!(report.outcomes()[rewritten.dir.as_str()].kind(), "replicated");
    let copied = rt.block_on(target.get(&path)).unwrap();
    assert_eq!(rt.block_on(copied.bytes()).unwrap(), text.as_bytes(), "the new version, byte for byte");
    replicator.shutdown().unwrap();
}

/// A new single-run process needs no meta.json of a block the target holds (the two listings
/// tell it), unless the selection is narrowed by what a meta.json says. A new continuous process
/// reads every meta.json once (its later runs and status page need the groups), unless a cache
/// folder kept them.
#[test]
fn a_single_run_reads_no_meta_json_of_replicated_blocks_and_a_cache_dir_spares_a_new_process_the_rest() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 4, blocks_per_group: 25, max_chunk_bytes: 512, ..SynthSpec::default() });
    let n = blocks.len() as u64;
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&source, &blocks)).unwrap();
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let cache = tempfile::tempdir().unwrap();
    let every_block = bucketflow_dataflows::BlockFilter {
        ids: blocks.iter().map(|b| b.dir.parse().unwrap()).collect(),
        ..Default::default()
    };
    // One process per run, as a cron job runs: each starts from the cache folder alone.
    let run =
        |cache_dir: Option<std::path::PathBuf>, single_run: bool, filter: BlockFilter, replica_labels: Vec<String>| {
            let telemetry = Telemetry::default();
            let mut registry = Registry::default();
            telemetry.metrics.register(&mut registry);
            let config = EngineConfig {
                telemetry,
                workers: 2,
                cache_dir,
                single_run,
                filter,
                replica_labels,
                ..EngineConfig::default()
            };
            let mut replicator =
                Replicator::start(source.clone(), target.clone(), config, rt.handle().clone()).unwrap();
            let report = replicator.run().unwrap();
            replicator.shutdown().unwrap();
            (report, requests(&registry))
        };
    let source_gets = |requests: &BTreeMap<String, u64>| requests.get("source/get").copied().unwrap_or(0);
    let (first, _) = run(Some(cache.path().to_path_buf()), false, BlockFilter::default(), vec![]);
    assert_eq!(first.counts.replicated, n);

    let (again, single) = run(None, true, BlockFilter::default(), vec![]);
    assert_eq!(again.counts.already_replicated, n);
    assert!(single.keys().all(|op| op.ends_with("/list")), "only listings: {single:?}");
    let (again, narrowed) = run(None, true, every_block, vec![]);
    assert_eq!(again.counts.already_replicated, n);
    assert_eq!(source_gets(&narrowed), n, "--id is told from each meta.json: {narrowed:?}");

    let (again, without_cache) = run(None, false, BlockFilter::default(), vec![]);
    assert_eq!(again.counts.already_replicated, n);
    assert_eq!(source_gets(&without_cache), n, "{without_cache:?}");
    let (again, with_cache) = run(Some(cache.path().to_path_buf()), false, BlockFilter::default(), vec![]);
    assert_eq!(again.counts.already_replicated, n);
    assert!(with_cache.keys().all(|op| op.ends_with("/list")), "only listings: {with_cache:?}");

    // A cache made under another grouping is not used: its groups would be wrong.
    let (_, other) = run(Some(cache.path().to_path_buf()), false, BlockFilter::default(), vec!["replica".into()]);
    assert_eq!(source_gets(&other), n, "{other:?}");
}

/// A source block the target compacted away (its sources held by a target block, its own folder
/// gone from the target) costs no request on a later run, however long the source keeps it
/// (its delete delay, or a source without a compactor): it is told covered from the meta
/// remembered and the target's view.
#[test]
fn a_block_the_target_compacted_away_costs_no_request_on_a_later_run() {
    let rt = runtime();
    let shape = |from: i64, seed| {
        BlockShape::new(
            &[("cluster", "eu1")],
            1_700_000_000_000 + from * 3_600_000,
            1_700_000_000_000 + (from + 2) * 3_600_000,
            seed,
        )
    };
    let spec = SynthSpec { max_chunk_bytes: 512, ..SynthSpec::default() };
    let blocks = synth::blocks((0..6).map(|i| shape(2 * i, i as u64 + 1)).collect(), &spec);
    let Sidecar { target, registry, mut replicator, .. } = sidecar(&rt, &blocks);
    assert_eq!(replicator.run().unwrap().counts.replicated, 6);

    // The target's compactor merges the first four into one block, and deletes them.
    let refs: Vec<&synth::SynthBlock> = blocks[..4].iter().collect();
    let merged = synth::blocks(
        vec![BlockShape::new(&[("cluster", "eu1")], 1_700_000_000_000, 1_700_000_000_000 + 8 * 3_600_000, 50)
            .compacted_from(&refs, 2)],
        &spec,
    );
    rt.block_on(write(&target, &merged)).unwrap();
    for block in &blocks[..4] {
        for rel in block.objects.keys() {
            rt.block_on(target.delete(&object_store::path::Path::from(format!("{}/{rel}", block.dir)))).unwrap();
        }
    }
    let first = replicator.run().unwrap();
    assert_eq!(first.counts.covered, 4, "{:?}", first.counts);
    let before = requests(&registry);
    let again = replicator.run().unwrap();
    assert_eq!((again.counts.covered, again.counts.already_replicated), (4, 2), "{:?}", again.counts);
    let idle = since(&before, &requests(&registry));
    assert!(idle.keys().all(|op| op.ends_with("/list")), "only listings: {idle:?}");
    replicator.shutdown().unwrap();
}
