//! The engine through its public surface, on in-memory buckets: the promises, per strategy.

use std::collections::BTreeMap;
use std::sync::Arc;

mod support;

use bucketflow_dataflows::testkit::block_path;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::ExpectedBlock;
use bucketflow_dataflows::testkit::SafetyChecker;
use bucketflow_dataflows::{EngineConfig, Replicator, Strategy};
use bucketflow_dataflows::{FailureCause, Outcome};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, ProptestConfig};
use proptest::strategy::Strategy as _;
use support::{contents, replicate, requests, runtime};

fn source_with(rt: &tokio::runtime::Runtime, blocks: &[SynthBlock]) -> Arc<dyn ObjectStore> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&store, blocks)).unwrap();
    store
}

fn config(strategy: Strategy, workers: usize) -> EngineConfig {
    EngineConfig { strategy, workers, concurrency: 8, ..EngineConfig::default() }
}

#[test]
fn every_strategy_replicates_everything_safely_and_a_rerun_copies_nothing() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 3, blocks_per_group: 4, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let before = rt.block_on(contents(&*source));
    for strategy in Strategy::ALL {
        let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
        let target: Arc<dyn ObjectStore> = checker.clone();
        let report = replicate(&rt, source.clone(), target.clone(), config(strategy, 2));
        assert_eq!(report.counts.replicated, 12, "{strategy}: {report:#?}");
        assert!(!report.is_failure());
        if strategy.ordered_commit() {
            assert_eq!(checker.violations(), vec![], "{strategy}");
        }
        assert_eq!(rt.block_on(contents(&*target)), before, "{strategy}: the target is a byte copy");
        assert_eq!(rt.block_on(contents(&*source)), before, "{strategy}: the source is unchanged");

        let again = replicate(&rt, source.clone(), target.clone(), config(strategy, 2));
        assert_eq!(again.counts.already_replicated, 12, "{strategy}");
        assert_eq!((again.objects_copied, again.bytes_copied), (0, 0), "{strategy}");
    }
}

#[test]
fn serial_commits_in_global_time_order_and_grouped_in_group_order() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 3, blocks_per_group: 5, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let by_dir: BTreeMap<_, _> = blocks.iter().map(|b| (b.dir.clone(), b)).collect();

    let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
    replicate(&rt, source.clone(), checker.clone(), config(Strategy::Serial, 2));
    let order: Vec<_> = checker.commits().iter().map(|d| (by_dir[d].min_time, d.clone())).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "serial writes meta.json in global (minTime, ULID) order");

    let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
    replicate(&rt, source, checker.clone(), config(Strategy::Grouped, 2));
    for group in blocks.iter().map(|b| &b.group) {
        let times: Vec<_> =
            checker.commits().iter().filter(|d| &by_dir[*d].group == group).map(|d| by_dir[d].min_time).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "group {group}: {times:?}");
    }
}

#[test]
fn a_failed_block_holds_back_its_group_and_no_other() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 3, blocks_per_group: 4, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    // Block 1 of group 0 loses its index in the source: meta.json lists it, so it must fail.
    let broken = &blocks[1];
    rt.block_on(source.delete(&block_path(&broken.dir, "index"))).unwrap();
    let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
    let report = replicate(&rt, source, checker.clone(), config(Strategy::Grouped, 2));

    let outcomes = report.outcomes();
    assert_eq!(outcomes[blocks[0].dir.as_str()].kind(), "replicated", "older blocks of the group go on");
    match outcomes[broken.dir.as_str()] {
        Outcome::Failed { error, .. } => assert!(error.contains("index"), "{error}"),
        other => panic!("expected failed, got {other:?}"),
    }
    for later in &blocks[2..4] {
        assert_eq!(outcomes[later.dir.as_str()].held_back_behind(), Some(broken.dir.as_str()));
    }
    assert_eq!(report.counts.replicated, 9, "the other groups all replicate: {report:#?}");
    assert!(report.is_failure());
    assert_eq!(checker.violations(), vec![]);
    let target_dirs: Vec<_> = checker.commits();
    assert!(!target_dirs.contains(&broken.dir));
}

#[test]
fn partial_target_is_resumed_and_wrong_objects_are_replaced() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 1, blocks_per_group: 2, max_chunk_files: 1, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let block = &blocks[0];
    // A previous, interrupted run left the chunk intact and a truncated index.
    let chunk = &block.objects["chunks/000001"];
    rt.block_on(target.put(&block_path(&block.dir, "chunks/000001"), PutPayload::from(chunk.clone()))).unwrap();
    let index = &block.objects["index"];
    rt.block_on(target.put(&block_path(&block.dir, "index"), PutPayload::from(index.slice(..index.len() / 2))))
        .unwrap();

    let report = replicate(&rt, source.clone(), target.clone(), config(Strategy::Grouped, 1));
    match report.outcomes()[block.dir.as_str()] {
        Outcome::Replicated { objects_copied, objects_already_present, .. } => {
            assert_eq!((*objects_copied, *objects_already_present), (1, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
}

#[test]
fn same_size_corruption_is_caught_by_the_listed_hash() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 1, blocks_per_group: 1, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let block = &blocks[0];
    let index = &block.objects["index"];
    let flipped: Vec<u8> = index.iter().map(|b| !b).collect();
    rt.block_on(target.put(&block_path(&block.dir, "index"), PutPayload::from(flipped))).unwrap();
    replicate(&rt, source.clone(), target.clone(), config(Strategy::Grouped, 1));
    assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
}

#[test]
fn large_objects_go_through_multipart_parts() {
    let rt = runtime();
    let spec = SynthSpec { groups: 1, blocks_per_group: 2, max_chunk_bytes: 300_000, ..SynthSpec::default() };
    let blocks = generate(&spec);
    let source = source_with(&rt, &blocks);
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let config = EngineConfig { part_size: 4096, ..config(Strategy::Grouped, 2) };
    let report = replicate(&rt, source.clone(), target.clone(), config);
    assert_eq!(report.counts.replicated, 2);
    assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
}

#[test]
fn unreadable_and_unsupported_metas_touch_only_their_block() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 1, blocks_per_group: 3, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let corrupt = &blocks[0];
    rt.block_on(source.put(&block_path(&corrupt.dir, "meta.json"), PutPayload::from_static(b"{\"ulid\": 12"))).unwrap();
    // The newest block of the group, so that failing in its group's order holds nothing back.
    let v2 = &blocks[2];
    let text = String::from_utf8(v2.meta_json().to_vec()).unwrap().replace("\"version\": 1", "\"version\": 2");
    rt.block_on(source.put(&block_path(&v2.dir, "meta.json"), PutPayload::from(text))).unwrap();
    rt.block_on(source.put(&object_store::path::Path::from("not-a-block/meta.json"), PutPayload::from_static(b"x")))
        .unwrap();

    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let report = replicate(&rt, source, target, config(Strategy::Grouped, 2));
    let outcomes = report.outcomes();
    assert_eq!(outcomes[corrupt.dir.as_str()].kind(), "skipped");
    match outcomes[v2.dir.as_str()] {
        Outcome::Failed { error, .. } => assert!(error.contains("version 2"), "{error}"),
        other => panic!("{other:?}"),
    }
    let v2_line = report.blocks.iter().find(|b| b.block == v2.dir).unwrap();
    assert_eq!(v2_line.group.as_deref(), Some(v2.group.as_str()), "its group is still known");
    assert_eq!(outcomes[blocks[1].dir.as_str()].kind(), "replicated");
    assert_eq!(outcomes.len(), 3, "the non-ULID folder is not a block: {outcomes:?}");
}

#[test]
fn dry_run_plans_and_writes_nothing() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 2, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let report = replicate(&rt, source, target.clone(), EngineConfig { dry_run: true, ..config(Strategy::Grouped, 2) });
    assert_eq!(report.counts.planned, 4);
    assert!(rt.block_on(contents(&*target)).is_empty());
}

#[test]
fn one_replicator_runs_many_epochs() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 3, ..SynthSpec::default() });
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut replicator =
        Replicator::start(source.clone(), target, config(Strategy::Grouped, 2), rt.handle().clone()).unwrap();
    let empty = replicator.run().unwrap();
    assert_eq!((empty.run_id, empty.blocks.len()), (0, 0), "an empty bucket is a successful run");
    rt.block_on(write(&source, &blocks[..3])).unwrap();
    let first = replicator.run().unwrap();
    assert_eq!((first.run_id, first.counts.replicated), (1, 3));
    rt.block_on(write(&source, &blocks[3..])).unwrap();
    let second = replicator.run().unwrap();
    assert_eq!((second.run_id, second.counts.replicated, second.counts.already_replicated), (2, 3, 3));
    replicator.shutdown().unwrap();
}

/// A random bucket and a random fault schedule: which blocks lose an object in the source (so
/// they fail), and which target objects a previous run left behind, intact or truncated.
#[derive(Debug, Clone)]
struct Scenario {
    groups: usize,
    blocks_per_group: usize,
    seed: u64,
    broken: Vec<usize>,
    leftovers: Vec<(usize, bool)>,
    workers: usize,
}

fn scenario() -> impl proptest::strategy::Strategy<Value = Scenario> {
    (1usize..4, 1usize..5, any::<u64>(), 1usize..3).prop_flat_map(|(groups, per, seed, workers)| {
        let n = groups * per;
        (proptest::collection::vec(0..n, 0..3), proptest::collection::vec((0..n, any::<bool>()), 0..4)).prop_map(
            move |(broken, leftovers)| Scenario { groups, blocks_per_group: per, seed, broken, leftovers, workers },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn promises_hold_for_random_layouts_and_faults(s in scenario()) {
        let rt = runtime();
        let spec = SynthSpec { groups: s.groups, blocks_per_group: s.blocks_per_group, seed: s.seed, max_chunk_bytes: 4096, ..SynthSpec::default() };
        let blocks = generate(&spec);
        let source = source_with(&rt, &blocks);
        for &i in &s.broken {
            let _ = rt.block_on(source.delete(&block_path(&blocks[i].dir, "chunks/000001")));
        }
        let source_before = rt.block_on(contents(&*source));
        let mut finals = Vec::new();
        for strategy in [Strategy::Grouped, Strategy::Serial, Strategy::Unordered] {
            let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
            for &(i, intact) in &s.leftovers {
                let data = &blocks[i].objects["index"];
                let data = if intact { data.clone() } else { data.slice(..data.len() / 2) };
                rt.block_on(checker.put(&block_path(&blocks[i].dir, "index"), PutPayload::from(data))).unwrap();
            }
            let target: Arc<dyn ObjectStore> = checker.clone();
            let report = replicate(&rt, source.clone(), target.clone(), config(strategy, s.workers));
            if strategy.ordered_commit() {
                prop_assert_eq!(checker.violations(), vec![], "{}", strategy);
            }
            // Promise 1 for every strategy: no visible block is incomplete.
            let after = rt.block_on(contents(&*target));
            for b in &blocks {
                if after.contains_key(&format!("{}/meta.json", b.dir)) {
                    for (rel, data) in &b.objects {
                        prop_assert_eq!(after.get(&format!("{}/{rel}", b.dir)), Some(data));
                    }
                }
            }
            prop_assert_eq!(rt.block_on(contents(&*source)), source_before.clone());
            // A broken block fails, or is held back behind an older broken block of its group.
            let outcomes = report.outcomes();
            for &i in &s.broken {
                let kind = outcomes[blocks[i].dir.as_str()].kind();
                let expected: &[&str] = if strategy.ordered_commit() { &["failed", "held_back"] } else { &["failed"] };
                prop_assert!(expected.contains(&kind), "{}: broken block {} was {}", strategy, i, kind);
            }
            finals.push((strategy, checker.commits().len(), after.keys().filter(|k| k.ends_with("meta.json")).count()));
            // Promise 4: a rerun is cheap and changes nothing that was finished.
            let rerun = replicate(&rt, source.clone(), target.clone(), config(strategy, s.workers));
            prop_assert_eq!(rerun.counts.already_replicated, report.counts.replicated);
        }
        // Without faults the strategies agree; with faults unordered may commit more (it does not
        // hold back), but grouped and serial hold back exactly the same blocks per group only if
        // the group order is the same, which it is.
        if s.broken.is_empty() {
            prop_assert!(finals.iter().all(|f| f.2 == blocks.len()), "{:?}", finals);
        } else {
            prop_assert!(finals[1].2 <= finals[0].2, "serial never commits more than grouped: {:?}", finals);
        }
    }
}

#[test]
fn cancelling_mid_run_commits_only_complete_blocks_and_a_rerun_finishes() {
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 6, ..SynthSpec::default() });
    let memory = source_with(&rt, &blocks);
    let latency = std::time::Duration::from_millis(20);
    let throttle =
        ThrottleConfig { wait_get_per_call: latency, wait_put_per_call: latency, ..ThrottleConfig::default() };
    let source: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(memory.clone(), throttle));
    let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
    let cancel = tokio_util::sync::CancellationToken::new();
    let telemetry = bucketflow_dataflows::Telemetry::default();
    let progress = telemetry.progress.clone();
    let cancellable =
        EngineConfig { concurrency: 2, cancel: cancel.clone(), telemetry, ..config(Strategy::Grouped, 2) };
    let mut replicator = Replicator::start(source.clone(), checker.clone(), cancellable, rt.handle().clone()).unwrap();
    // Cancel as soon as two blocks are done, which leaves most of the run still to go.
    let canceller = std::thread::spawn(move || {
        while progress.snapshot().0 < 2 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        cancel.cancel();
    });
    let report = replicator.run().unwrap();
    canceller.join().unwrap();
    replicator.shutdown().unwrap();
    assert!(report.counts.replicated < 12, "the run was cut short: {:?}", report.counts);
    let interrupted = report
        .blocks
        .iter()
        .filter(|b| matches!(b.outcome, Outcome::Failed { cause: FailureCause::Interrupted, .. }))
        .count();
    assert!(interrupted > 0, "{report:#?}");
    assert_eq!(checker.violations(), vec![], "no incomplete or out-of-order block became visible");

    let report = replicate(&rt, source, checker.clone(), config(Strategy::Grouped, 2));
    assert_eq!(report.counts.replicated + report.counts.already_replicated, 12);
    assert_eq!(checker.violations(), vec![]);
    assert_eq!(rt.block_on(contents(&*checker)), rt.block_on(contents(&*memory)));
}

#[test]
fn telemetry_counts_requests_bytes_and_progress() {
    use prometheus_client::encoding::text::encode;
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 2, ..SynthSpec::default() });
    let source = source_with(&rt, &blocks);
    let telemetry = bucketflow_dataflows::Telemetry::default();
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.metrics.register(&mut registry);
    let observed = EngineConfig { telemetry: telemetry.clone(), ..config(Strategy::Grouped, 2) };
    let report = replicate(&rt, source, Arc::new(InMemory::new()), observed);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let streamed = format!("bucketflow_bytes_copied_total{{method=\"stream\"}} {}", report.bytes_copied);
    assert!(text.contains(&streamed), "{text}");
    assert!(text.contains("bucketflow_bytes_copied_total{method=\"server_side\"} 0"), "{text}");
    assert!(text.contains("bucketflow_objects_in_flight 0"), "{text}");
    assert!(text.contains("bucketflow_requests_total{bucket=\"source\",operation=\"get\"}"), "{text}");
    assert!(text.contains("bucketflow_requests_total{bucket=\"target\",operation=\"put\"}"), "{text}");
    assert!(text.contains("bucketflow_request_duration_seconds_bucket{le="), "{text}");
    let (blocks_done, blocks_total, bytes_done, bytes_total) = telemetry.progress.snapshot();
    assert_eq!((blocks_done, blocks_total), (4, 4));
    assert_eq!((bytes_done, bytes_total), (report.bytes_copied, report.bytes_copied));
}

/// A block's re-check before its meta.json reads each object of a small block by a HEAD, and a
/// block of more than four objects (meta.json aside) by its two folder listings: the cheaper
/// request for each, and every object read once either way.
#[test]
fn the_recheck_heads_each_object_of_a_small_block_and_lists_a_large_one() {
    let rt = runtime();
    // Up to 8 chunk files and an index: blocks on both sides of the threshold.
    let spec = SynthSpec { groups: 2, blocks_per_group: 6, max_chunk_files: 8, seed: 3, ..SynthSpec::default() };
    let blocks = generate(&spec);
    let objects = |b: &SynthBlock| b.objects.keys().filter(|rel| *rel != "meta.json").count() as u64;
    let (small, large): (Vec<&SynthBlock>, Vec<&SynthBlock>) = blocks.iter().partition(|b| objects(b) <= 4);
    let sizes: Vec<u64> = blocks.iter().map(objects).collect();
    assert!(
        sizes.contains(&4) && sizes.contains(&5),
        "the seed makes blocks on both sides of the threshold: {sizes:?}"
    );
    let source = source_with(&rt, &blocks);
    let run = |dry_run: bool| {
        let telemetry = bucketflow_dataflows::Telemetry::default();
        let mut registry = prometheus_client::registry::Registry::default();
        telemetry.metrics.register(&mut registry);
        let observed = EngineConfig { telemetry, dry_run, ..config(Strategy::Grouped, 2) };
        let report = replicate(&rt, source.clone(), Arc::new(InMemory::new()), observed);
        let counts = requests(&registry);
        let count = |operation: &str| counts.get(&format!("target/{operation}")).copied().unwrap_or(0);
        (report, count("head"), count("list_with_delimiter"))
    };
    // What planning alone asks of the target.
    let (_, planning_heads, planning_listings) = run(true);
    let (report, heads, listings) = run(false);
    assert_eq!(report.counts.replicated, blocks.len() as u64, "{report:#?}");
    assert_eq!(heads - planning_heads, small.iter().map(|b| objects(b)).sum::<u64>());
    assert_eq!(listings - planning_listings, 2 * large.len() as u64);
}
