//! The adversary, simulated: a target compactor that merges visible blocks while bucketflow
//! replicates into its bucket, and deletes folders without meta.json between runs, over random
//! source and target layouts (HA replica pairs, blocks the target compacted already) and random
//! faults. Whatever happens, the target must end with no overlap the compactor halts on, no
//! visible incomplete block, and every source block present or covered; a re-run then copies
//! nothing.

use std::sync::Arc;
use std::time::Duration;

mod support;

use bucketflow_dataflows::testkit::compactor::SimulatedCompactor;
use bucketflow_dataflows::testkit::synth::{blocks, write, BlockShape, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::{FaultRule, FaultyStore, Op};
use bucketflow_dataflows::{EngineConfig, Replicator, RetryPolicy};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::runtime;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

/// A random layout: per cluster, consecutive 2h blocks with random gaps, from one replica or
/// both of an HA pair; and a target that already holds some of them compacted.
struct Layout {
    source: Vec<SynthBlock>,
    target: Vec<SynthBlock>,
    replica_labels: Vec<String>,
}

fn layout(seed: u64) -> Layout {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec =
        SynthSpec { max_chunk_files: 2, max_chunk_bytes: 2048, max_index_bytes: 1024, seed, ..SynthSpec::default() };
    let ha = rng.random_bool(0.5);
    let mut shapes = Vec::new();
    for cluster in 0..rng.random_range(1..=2) {
        let mut hour = 0;
        for _ in 0..rng.random_range(2..=5) {
            hour += 2 * rng.random_range(0..=1); // A gap, sometimes.
            let replicas: &[&str] = if ha { &["a", "b"] } else { &["a"] };
            for replica in replicas {
                let labels = [("cluster", format!("c{cluster}")), ("replica", replica.to_string())];
                let labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
                shapes.push(BlockShape::new(&labels, T0 + hour * HOUR, T0 + (hour + 2) * HOUR, rng.random()));
            }
            hour += 2;
        }
    }
    let source = blocks(shapes, &spec);
    // The target compacted the oldest blocks of the first cluster (of replica a) already.
    let first: Vec<&SynthBlock> = source.iter().filter(|b| b.group == source[0].group).collect();
    let compacted_count = rng.random_range(0..=first.len().min(3));
    let target = if compacted_count >= 2 {
        let parts = &first[..compacted_count];
        let (from, to) = (parts[0].min_time, parts[compacted_count - 1].max_time);
        let shape =
            BlockShape::new(&[("cluster", "c0"), ("replica", "a")], from, to, rng.random()).compacted_from(parts, 2);
        blocks(vec![shape], &SynthSpec { seed: seed + 1, ..spec })
    } else {
        Vec::new()
    };
    let replica_labels = if ha { vec!["replica".to_string()] } else { Vec::new() };
    Layout { source, target, replica_labels }
}

fn config(layout: &Layout, workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        concurrency: 4,
        replica_labels: layout.replica_labels.clone(),
        retry: RetryPolicy {
            retries: 1,
            timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        ..EngineConfig::default()
    }
}

/// Checks the target against the promises as its compactor sees them.
fn check(
    rt: &tokio::runtime::Runtime,
    seed: u64,
    layout: &Layout,
    compactor: &SimulatedCompactor,
    target: &dyn ObjectStore,
) {
    let visible = rt.block_on(compactor.visible()).unwrap();
    assert!(!compactor.halted(), "seed {seed}: the compactor halted on an overlap");
    let blocks: Vec<_> = visible.values().collect();
    for (i, a) in blocks.iter().enumerate() {
        for b in &blocks[i + 1..] {
            let halts = a.group == b.group && a.overlaps(b) && !a.holds(b) && !b.holds(a);
            assert!(!halts || compactor.vertical, "seed {seed}: {} and {} overlap in group {}", a.dir, b.dir, a.group);
        }
        for file in a.meta.thanos.files.iter().filter(|f| f.rel_path != "meta.json") {
            let head =
                rt.block_on(target.head(&object_store::path::Path::from(format!("{}/{}", a.dir, file.rel_path))));
            let size =
                head.unwrap_or_else(|_| panic!("seed {seed}: visible block {} lacks {}", a.dir, file.rel_path)).size;
            assert_eq!(Some(size), file.size_bytes, "seed {seed}: {}/{} has the wrong size", a.dir, file.rel_path);
        }
    }
    for block in &layout.source {
        let ulid: ulid::Ulid = block.dir.parse().unwrap();
        let present = visible.contains_key(&block.dir);
        let covered = visible.values().any(|v| v.sources.contains(&ulid));
        assert!(present || covered, "seed {seed}: source block {} is neither in the target nor covered", block.dir);
    }
}

#[test]
fn a_compactor_at_work_never_sees_an_overlap_or_an_incomplete_block() {
    let rt = runtime();
    let (mut merges, mut covered, mut runs) = (0, 0, 0);
    for seed in 0..300u64 {
        let layout = layout(seed);
        let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        rt.block_on(write(&source, &layout.source)).unwrap();
        let target_store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        rt.block_on(write(&target_store, &layout.target)).unwrap();
        let compactor = Arc::new(SimulatedCompactor::new(target_store.clone(), layout.replica_labels.clone()));
        let rate = [0.0, 0.03, 0.1][seed as usize % 3];
        let faults = |store: Arc<dyn ObjectStore>, ops: &[Op]| {
            Arc::new(FaultyStore::new(store, vec![FaultRule::transient("", ops, None).with_rate(rate)], seed))
        };
        let source = faults(source, &[Op::Get, Op::List]);
        let target = faults(target_store.clone(), &[Op::Get, Op::Put, Op::List, Op::Head]);

        // The compactor merges while bucketflow runs; aborted uploads go between runs.
        let working = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let at_work = {
            let (compactor, working) = (compactor.clone(), working.clone());
            rt.spawn(async move {
                while working.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = compactor.compact().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let workers = 1 + seed as usize % 2;
        let mut replicator =
            Replicator::start(source.clone(), target.clone(), config(&layout, workers), rt.handle().clone()).unwrap();
        for _ in 0..4 {
            replicator.run().unwrap();
            runs += 1;
            rt.block_on(compactor.clean_partial()).unwrap();
        }
        // The faults stop; one more run finishes what they held back.
        source.set_enabled(false);
        target.set_enabled(false);
        let report = replicator.run().unwrap();
        assert!(!report.is_failure(), "seed {seed}: {:#?}", report.blocks);
        working.store(false, std::sync::atomic::Ordering::SeqCst);
        rt.block_on(at_work).unwrap();
        while rt.block_on(compactor.compact()).unwrap() {}
        check(&rt, seed, &layout, &compactor, &*target_store);

        // A re-run copies nothing: what is not there is covered.
        let rerun = replicator.run().unwrap();
        assert_eq!((rerun.objects_copied, rerun.counts.replicated), (0, 0), "seed {seed}: {:#?}", rerun.blocks);
        replicator.shutdown().unwrap();
        merges += compactor.merges();
        covered += rerun.counts.covered;
    }
    // The adversary did work: the check above is not vacuous.
    eprintln!("{merges} merges by the compactor, {covered} blocks found covered, over {runs} runs");
    assert!(merges > 50 && covered > 50, "merges {merges}, covered {covered} over {runs} runs");
}

#[test]
fn the_checks_catch_a_broken_target() {
    // The same checks, on a target that an unsafe replication left: an overlap, and a visible
    // block without its index.
    let rt = runtime();
    let layout = Layout {
        source: blocks(
            vec![
                BlockShape::new(&[("cluster", "c0")], T0, T0 + 4 * HOUR, 1),
                BlockShape::new(&[("cluster", "c0")], T0 + 2 * HOUR, T0 + 6 * HOUR, 2),
            ],
            &SynthSpec::default(),
        ),
        target: Vec::new(),
        replica_labels: Vec::new(),
    };
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&target, &layout.source)).unwrap();
    let compactor = SimulatedCompactor::new(target.clone(), Vec::new());
    let overlap =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&rt, 0, &layout, &compactor, &*target)));
    assert!(overlap.is_err(), "an overlap is caught");
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&target, &layout.source[..1])).unwrap();
    rt.block_on(target.delete(&object_store::path::Path::from(format!("{}/index", layout.source[0].dir)))).unwrap();
    let compactor = SimulatedCompactor::new(target.clone(), Vec::new());
    let one = Layout { source: layout.source[..1].to_vec(), ..layout };
    let incomplete =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&rt, 0, &one, &compactor, &*target)));
    assert!(incomplete.is_err(), "an incomplete visible block is caught");
}
