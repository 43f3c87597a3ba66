//! The adversary, simulated: a target compactor modelled on Thanos's and Mimir's rules (see
//! `testkit::compactor`, which names the source of each) that merges visible blocks while
//! bucketflow replicates into its bucket, and deletes partial folders during runs, at the worst
//! moment: just before each meta.json bucketflow writes. Over random source and target layouts
//! (HA replica pairs, overlapping source blocks, Mimir ingester triples, blocks the target
//! compacted already, a target meta.json bucketflow may not read) and random faults, the target
//! must never show a visible incomplete block (checked at each meta.json write) or an overlap
//! the compactor halts on, must end with every source block present or covered, and a re-run
//! must copy nothing.
//!
//! `BUCKETFLOW_ADVERSARY_SEEDS` sets how many seeded layouts the long test runs (1,000 by
//! default).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod support;

use bucketflow_dataflows::testkit::compactor::SimulatedCompactor;
use bucketflow_dataflows::testkit::synth::{blocks, write, BlockShape, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::{ExpectedBlock, FaultRule, FaultyStore, Op, SafetyChecker, Violation};
use bucketflow_dataflows::{EngineConfig, Layout as BucketLayout, Replicator};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::runtime;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

/// A random layout: the source's blocks, the target's, and how the target compactor groups.
struct Layout {
    source: Vec<SynthBlock>,
    target: Vec<SynthBlock>,
    replica_labels: Vec<String>,
    /// A Mimir bucket of tenant folders, whose compactor merges a tenant's overlapping blocks.
    mimir: bool,
    /// A target block whose meta.json bucketflow's access to the target may not read, though
    /// the compactor reads it.
    unreadable: Option<String>,
}

fn spec(seed: u64) -> SynthSpec {
    SynthSpec { max_chunk_files: 2, max_chunk_bytes: 2048, max_index_bytes: 1024, seed, ..SynthSpec::default() }
}

/// A Thanos bucket: per cluster, consecutive 2h blocks with random gaps, from one replica or
/// both of an HA pair, sometimes a block overlapping another of its group (a backfill); and a
/// target that already holds some of them compacted, whose meta.json bucketflow may not read.
fn thanos_layout(seed: u64, rng: &mut StdRng) -> Layout {
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
        if rng.random_bool(0.3) {
            // A block that overlaps the cluster's first by an hour, neither holding the other.
            let labels = [("cluster", format!("c{cluster}")), ("replica", "a".to_string())];
            let labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
            shapes.push(BlockShape::new(&labels, T0 + HOUR, T0 + 3 * HOUR, rng.random()));
        }
    }
    let source = blocks(shapes, &spec(seed));
    // The target compacted the oldest blocks of the first cluster (of replica a) already.
    let first: Vec<&SynthBlock> =
        source.iter().filter(|b| b.group == source[0].group && (b.min_time - T0) % (2 * HOUR) == 0).collect();
    let compacted_count = rng.random_range(0..=first.len().min(3));
    let target = if compacted_count >= 2 {
        let parts = &first[..compacted_count];
        let (from, to) = (parts[0].min_time, parts[compacted_count - 1].max_time);
        let shape =
            BlockShape::new(&[("cluster", "c0"), ("replica", "a")], from, to, rng.random()).compacted_from(parts, 2);
        blocks(vec![shape], &spec(seed + 1))
    } else {
        Vec::new()
    };
    let unreadable = target.first().filter(|_| rng.random_bool(0.3)).map(|b| b.dir.clone());
    let replica_labels = if ha { vec!["replica".to_string()] } else { Vec::new() };
    Layout { source, target, replica_labels, mimir: false, unreadable }
}

/// A Mimir bucket: per tenant, 2h ranges each uploaded by three ingesters (replication factor
/// 3, no external labels); the target may hold the first range merged already.
fn mimir_layout(seed: u64, rng: &mut StdRng) -> Layout {
    let mut shapes = Vec::new();
    for tenant in 0..rng.random_range(1..=2) {
        for range in 0..rng.random_range(2..=3) {
            let (from, to) = (T0 + range * 2 * HOUR, T0 + (range + 1) * 2 * HOUR);
            for _ in 0..3 {
                shapes.push(BlockShape::new(&[], from, to, rng.random()).in_tenant(&format!("t{tenant}")));
            }
        }
    }
    let source = blocks(shapes, &spec(seed));
    let target = if rng.random_bool(0.5) {
        let triple: Vec<&SynthBlock> = source[..3].iter().collect();
        let shape = BlockShape::new(&[], T0, T0 + 2 * HOUR, rng.random()).compacted_from(&triple, 2).in_tenant("t0");
        blocks(vec![shape], &spec(seed + 1))
    } else {
        Vec::new()
    };
    Layout { source, target, replica_labels: Vec::new(), mimir: true, unreadable: None }
}

fn layout(seed: u64) -> Layout {
    let mut rng = StdRng::seed_from_u64(seed);
    if seed % 4 == 3 {
        mimir_layout(seed, &mut rng)
    } else {
        thanos_layout(seed, &mut rng)
    }
}

/// The commit queue of each source block, as bucketflow forms them: its tenant in a Mimir
/// bucket, else its group without the replica labels.
fn queues(layout: &Layout) -> std::collections::BTreeMap<String, String> {
    let queue = |block: &SynthBlock| {
        if layout.mimir {
            return block.dir.split('/').next().unwrap().to_string();
        }
        let meta: serde_json::Value = serde_json::from_slice(&block.objects["meta.json"]).unwrap();
        let mut labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(meta["thanos"]["labels"].clone()).unwrap();
        labels.retain(|name, _| !layout.replica_labels.contains(name));
        bucketflow_dataflows::group_key(0, &labels)
    };
    layout.source.iter().map(|b| (b.dir.clone(), queue(b))).collect()
}

fn config(layout: &Layout, workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        concurrency: 4,
        replica_labels: layout.replica_labels.clone(),
        layout: if layout.mimir { BucketLayout::Tenants(Default::default()) } else { BucketLayout::Thanos },
        // The tightest bound: every meta.json write follows a re-check made after its turn came.
        recheck_max_age: Duration::ZERO,
        retry: support::quick_retries(),
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
    // A source block that overlaps one the target shows, neither holding the other, is refused
    // where the compactor would halt: it is neither present nor covered, by design.
    let refused = |block: &SynthBlock| {
        !compactor.vertical
            && visible
                .values()
                .any(|v| v.group == block.group && v.meta.min_time < block.max_time && block.min_time < v.meta.max_time)
    };
    for block in &layout.source {
        let ulid: ulid::Ulid = block.dir.rsplit('/').next().unwrap().parse().unwrap();
        let present = visible.contains_key(&block.dir);
        let covered = visible.values().any(|v| v.sources.contains(&ulid));
        assert!(
            present || covered || refused(block),
            "seed {seed}: source block {} is neither in the target nor covered",
            block.dir
        );
    }
}

/// What the adversary did over all seeds: the checks are not vacuous.
#[derive(Debug, Default)]
struct Tally {
    runs: u64,
    merges: u64,
    cleanups: u64,
    covered: u64,
    overlaps_refused: u64,
    held_back_by_target: u64,
}

/// One seeded layout: runs with faults and the compactor at work, then one without faults,
/// then the checks, then a re-run that must copy nothing.
fn one_seed(rt: &tokio::runtime::Runtime, seed: u64, tally: &mut Tally) {
    let layout = layout(seed);
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&source, &layout.source)).unwrap();
    let target_store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&target_store, &layout.target)).unwrap();
    let compactor = Arc::new(match layout.mimir {
        true => SimulatedCompactor::mimir(target_store.clone()),
        false => SimulatedCompactor::new(target_store.clone(), layout.replica_labels.clone()),
    });
    let rate = [0.0, 0.03, 0.1][seed as usize % 3];
    let faults = |store: Arc<dyn ObjectStore>, ops: &[Op], mut rules: Vec<FaultRule>| {
        rules.push(FaultRule::transient("", ops, None).with_rate(rate));
        FaultyStore::new(store, rules, seed)
    };
    let source = Arc::new(faults(source, &[Op::Get, Op::List], Vec::new()));
    // Every meta.json write is checked for an incomplete block at the moment it is made.
    let expected = layout.source.iter().map(ExpectedBlock::from);
    let checker = Arc::new(SafetyChecker::new(target_store.clone(), expected));
    let checked: Arc<dyn ObjectStore> = checker.clone();
    let unreadable: Vec<FaultRule> =
        layout.unreadable.iter().map(|dir| FaultRule::permanent(&format!("{dir}/meta.json"), &[Op::Get])).collect();
    // The compactor's cleanup strikes just before each meta.json bucketflow writes, taking the
    // other partial folders of the block's commit queue: blocks copied and re-checked, waiting
    // for their turns behind it, included. (A cleanup that takes another queue's folder between
    // its re-check and its meta.json write, an instant apart, is a race no re-check can close;
    // the README says so.)
    let queues = queues(&layout);
    let cleanup = {
        let compactor = compactor.clone();
        Arc::new(move |meta: object_store::path::Path| {
            let (compactor, dir) = (compactor.clone(), meta.as_ref().trim_end_matches("/meta.json").to_string());
            let others: Vec<String> = match queues.get(&dir) {
                Some(queue) => {
                    queues.iter().filter(|(d, q)| *q == queue && **d != dir).map(|(d, _)| d.clone()).collect()
                }
                None => Vec::new(),
            };
            Box::pin(async move {
                let _ = compactor.clean_partial_among(Duration::ZERO, Some(&others)).await;
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let target = Arc::new(
        faults(checked, &[Op::Get, Op::Put, Op::List, Op::Head], unreadable).before_put("/meta\\.json$", cleanup),
    );

    // The compactor merges while bucketflow runs.
    let working = Arc::new(AtomicBool::new(true));
    let at_work = {
        let (compactor, working) = (compactor.clone(), working.clone());
        rt.spawn(async move {
            while working.load(Ordering::SeqCst) {
                let _ = compactor.compact().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let workers = 1 + seed as usize % 2;
    let mut replicator =
        Replicator::start(source.clone(), target.clone(), config(&layout, workers), rt.handle().clone()).unwrap();
    for _ in 0..4 {
        let report = replicator.run().unwrap();
        tally.runs += 1;
        tally.held_back_by_target += report.held_back_by_target.len() as u64;
        if let Some(dir) = &layout.unreadable {
            // A run whose listing of the target failed (a fault) holds back nothing: it fails all.
            assert!(report.held_back_by_target.iter().all(|d| d == dir), "seed {seed}: {report:#?}");
            assert_eq!(report.counts.replicated, 0, "seed {seed}: nothing is judged against an unknown block");
        }
    }
    // The faults, the unreadable meta.json and the cleanup stop; one more run finishes what they
    // held back.
    source.set_enabled(false);
    target.set_enabled(false);
    let report = replicator.run().unwrap();
    tally.runs += 1;
    let overlap = |b: &&bucketflow_dataflows::BlockOutcome| {
        matches!(
            b.outcome,
            bucketflow_dataflows::Outcome::Failed { cause: bucketflow_dataflows::FailureCause::Overlap, .. }
        )
    };
    assert_eq!(
        report.counts.failed,
        report.blocks.iter().filter(overlap).count() as u64,
        "seed {seed}: {:#?}",
        report.blocks
    );
    working.store(false, Ordering::SeqCst);
    rt.block_on(at_work).unwrap();
    while rt.block_on(compactor.compact()).unwrap() {}
    let incomplete: Vec<Violation> =
        checker.violations().into_iter().filter(|v| matches!(v, Violation::Incomplete { .. })).collect();
    assert_eq!(incomplete, vec![], "seed {seed}: a meta.json written while its block was incomplete");
    check(rt, seed, &layout, &compactor, &*target_store);

    // A re-run copies nothing: what is not there is covered, or refused.
    let rerun = replicator.run().unwrap();
    tally.runs += 1;
    assert_eq!((rerun.objects_copied, rerun.counts.replicated), (0, 0), "seed {seed}: {:#?}", rerun.blocks);
    replicator.shutdown().unwrap();
    tally.merges += compactor.merges();
    tally.cleanups += compactor.cleaned();
    tally.covered += rerun.counts.covered;
    tally.overlaps_refused += rerun.blocks.iter().filter(overlap).count() as u64;
}

#[test]
fn a_compactor_at_work_never_sees_an_overlap_or_an_incomplete_block() {
    let rt = runtime();
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seeds = var("BUCKETFLOW_ADVERSARY_SEEDS").unwrap_or(1000);
    // One seed alone, to reproduce a failure: `BUCKETFLOW_ADVERSARY_SEED=N`.
    let range = var("BUCKETFLOW_ADVERSARY_SEED").map_or(0..seeds, |seed| seed..seed + 1);
    let mut tally = Tally::default();
    for seed in range {
        one_seed(&rt, seed, &mut tally);
    }
    eprintln!("over {seeds} seeds: {tally:?}");
    // The adversary did work: the checks above are not vacuous.
    let enough = seeds / 10;
    assert!(tally.merges > enough && tally.covered > enough && tally.cleanups > enough, "{tally:?}");
    assert!(tally.overlaps_refused > 0 && tally.held_back_by_target > 0, "{tally:?}");
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
        mimir: false,
        unreadable: None,
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
