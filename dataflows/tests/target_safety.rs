//! Safe as the target compactor sees it: groups after replica labels are stripped, blocks the
//! target compacted, blocks that would overlap, late blocks, and failures that hold back only
//! what they must.

use std::sync::Arc;

mod support;

use bucketflow_dataflows::testkit::synth::{blocks, write, BlockShape, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::{
    block_path, ExpectedBlock, FaultRule, FaultyStore, Op, RecordingStore, SafetyChecker,
};
use bucketflow_dataflows::{EngineConfig, FailureCause, FilterRule, Layout, Outcome, Replicator, RunReport, Strategy};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{replicate, runtime};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

fn at(hours: i64) -> i64 {
    T0 + hours * HOUR
}

fn store_with(rt: &tokio::runtime::Runtime, blocks: &[SynthBlock]) -> Arc<dyn ObjectStore> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&store, blocks)).unwrap();
    store
}

fn config() -> EngineConfig {
    EngineConfig { workers: 2, concurrency: 8, ..EngineConfig::default() }
}

fn outcome<'a>(report: &'a RunReport, block: &SynthBlock) -> &'a Outcome {
    report.outcomes()[block.dir.as_str()]
}

/// A block of cluster `eu1`, replica `replica`, over `[from, to)` hours.
fn replica(replica: &str, from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", "eu1"), ("replica", replica)], at(from), at(to), seed)
}

#[test]
fn replicas_of_an_ha_pair_are_one_group_once_the_replica_label_is_stripped() {
    let rt = runtime();
    // Replica a's 08:00 block fails; replica b's 10:00 block is newer in the same compactor group.
    let bs = blocks(vec![replica("a", 8, 10, 1), replica("b", 10, 12, 2)], &SynthSpec::default());
    let (a8, b10) = (&bs[0], &bs[1]);
    let faulty = |source: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
        Arc::new(FaultyStore::new(source, vec![FaultRule::permanent(&format!("{}/index", a8.dir), &[Op::Get])], 1))
    };

    // Without the replica label, each replica is a group of its own: b's block goes ahead.
    let report = replicate(&rt, faulty(store_with(&rt, &bs)), Arc::new(InMemory::new()), config());
    assert_eq!(outcome(&report, a8).kind(), "failed");
    assert_eq!(outcome(&report, b10).kind(), "replicated");

    // As the target compactor groups them, b's block waits behind a's, and the report shows the
    // group the compactor sees.
    let config = EngineConfig { replica_labels: vec!["replica".into()], ..config() };
    let report = replicate(&rt, faulty(store_with(&rt, &bs)), Arc::new(InMemory::new()), config);
    assert_eq!(outcome(&report, b10).held_back_behind(), Some(a8.dir.as_str()));
    let groups: std::collections::BTreeSet<_> = report.blocks.iter().map(|b| b.group.clone()).collect();
    assert_eq!(groups.len(), 1, "one group: {groups:?}");
}

#[test]
fn replica_pairs_commit_in_the_compactor_groups_order() {
    let rt = runtime();
    let shapes = (0..6).map(|i| replica(if i % 2 == 0 { "a" } else { "b" }, 2 * i, 2 * i + 2, i as u64)).collect();
    let bs = blocks(shapes, &SynthSpec::default());
    // The checker knows the one group both replicas form in the target compactor.
    let expected = bs.iter().map(|b| ExpectedBlock { group: "eu1".into(), ..ExpectedBlock::from(b) });
    let checker = Arc::new(SafetyChecker::new(InMemory::new(), expected));
    let config = EngineConfig { replica_labels: vec!["replica".into()], ..config() };
    let report = replicate(&rt, store_with(&rt, &bs), checker.clone(), config);
    assert_eq!(report.counts.replicated, 6);
    assert_eq!(checker.violations(), vec![]);
}

/// The target's compactor merged `parts` into one block, and deleted them.
fn compacted(parts: &[&SynthBlock], seed: u64) -> BlockShape {
    let (from, to) = (parts.first().unwrap().min_time, parts.last().unwrap().max_time);
    BlockShape::new(&[("cluster", "eu1")], from, to, seed).compacted_from(parts, 2)
}

fn eu1(from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", "eu1")], at(from), at(to), seed)
}

#[test]
fn blocks_the_target_compacted_are_not_copied_again() {
    let rt = runtime();
    let source_blocks = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2), eu1(4, 6, 3)], &SynthSpec::default());
    let merged = blocks(
        vec![compacted(&[&source_blocks[0], &source_blocks[1]], 9)],
        &SynthSpec { seed: 9, ..SynthSpec::default() },
    );
    let target = Arc::new(RecordingStore::new(store_with(&rt, &merged)));
    let report = replicate(&rt, store_with(&rt, &source_blocks), target.clone(), config());
    for covered in &source_blocks[..2] {
        assert_eq!(outcome(&report, covered), &Outcome::Covered { by: merged[0].dir.clone() });
    }
    assert_eq!(outcome(&report, &source_blocks[2]).kind(), "replicated");
    assert_eq!(report.counts.covered, 2);
    let written: Vec<String> = target.writes().iter().map(|w| format!("{w:?}")).collect();
    for covered in &source_blocks[..2] {
        assert!(!written.iter().any(|w| w.contains(&covered.dir)), "{} was written: {written:?}", covered.dir);
    }
    // A re-run is as quiet.
    let report = replicate(&rt, store_with(&rt, &source_blocks), target.clone(), config());
    assert_eq!((report.counts.covered, report.counts.already_replicated, report.counts.replicated), (2, 1, 0));
}

#[test]
fn a_block_that_would_overlap_is_refused_without_holding_back_its_group() {
    let rt = runtime();
    let parts = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
    let merged = blocks(vec![compacted(&[&parts[0], &parts[1]], 9)], &SynthSpec { seed: 9, ..SynthSpec::default() });
    // A backfilled block inside the compacted range, which the compactor never saw, and a newer one.
    let source_blocks = blocks(vec![eu1(1, 3, 5), eu1(4, 6, 6)], &SynthSpec { seed: 5, ..SynthSpec::default() });
    let (backfilled, newer) = (&source_blocks[0], &source_blocks[1]);

    let target = store_with(&rt, &merged);
    let report = replicate(&rt, store_with(&rt, &source_blocks), target.clone(), config());
    match outcome(&report, backfilled) {
        Outcome::Failed { cause: FailureCause::Overlap, error, .. } => {
            assert!(error.contains(&merged[0].dir), "names the target block: {error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome(&report, newer).kind(), "replicated", "an overlap holds nothing back");
    let meta = rt.block_on(target.head(&block_path(&backfilled.dir, "meta.json")));
    assert!(meta.is_err(), "the overlapping block is not visible");

    // A target compactor that compacts vertically merges it: it is replicated, late.
    let config = EngineConfig { target_vertical_compaction: true, ..config() };
    let report = replicate(&rt, store_with(&rt, &source_blocks), target, config);
    match outcome(&report, backfilled) {
        Outcome::Replicated { late_behind: Some(behind), .. } => assert_eq!(behind, &newer.dir),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_block_older_than_the_targets_newest_is_committed_and_counted_late() {
    let rt = runtime();
    let bs = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
    // An earlier run replicated the newer block while the older one was not readable yet.
    let target = store_with(&rt, &bs[1..]);
    let report = replicate(&rt, store_with(&rt, &bs), target, config());
    let mut late = outcome(&report, &bs[0]).clone();
    if let Outcome::Replicated { lag_millis, .. } = &mut late {
        assert!(lag_millis.take().is_some(), "the listing gives its meta.json's time: its lag is known");
    }
    assert_eq!(
        late,
        Outcome::Replicated {
            objects_copied: bs[0].objects.len() as u64 - 1,
            bytes_copied: bs[0].objects.iter().filter(|(p, _)| *p != "meta.json").map(|(_, d)| d.len() as u64).sum(),
            objects_already_present: 0,
            late_behind: Some(bs[1].dir.clone()),
            lag_millis: None,
        }
    );
    assert_eq!(report.counts.late, 1);
    assert_eq!(outcome(&report, &bs[1]).kind(), "already_replicated");
}

#[test]
fn a_meta_json_that_is_json_but_no_block_meta_holds_back_its_group() {
    let rt = runtime();
    let other = BlockShape::new(&[("cluster", "us1")], at(4), at(6), 3);
    let bs = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2), other], &SynthSpec::default());
    let source = store_with(&rt, &bs);
    // The oldest eu1 block names its labels, but has no time range.
    let broken = format!(r#"{{"ulid":"{}","version":1,"thanos":{{"labels":{{"cluster":"eu1"}}}}}}"#, bs[0].dir);
    rt.block_on(source.put(&block_path(&bs[0].dir, "meta.json"), PutPayload::from(broken))).unwrap();
    let report = replicate(&rt, source, Arc::new(InMemory::new()), config());
    assert_eq!(outcome(&report, &bs[0]).kind(), "failed");
    assert_eq!(outcome(&report, &bs[1]).held_back_behind(), Some(bs[0].dir.as_str()));
    assert_eq!(outcome(&report, &bs[2]).kind(), "replicated", "another group goes on");
    assert!(report.every_queue_held_back_by.is_empty());
}

#[test]
fn an_unreadable_meta_json_holds_back_its_known_group_only_and_an_unknown_one_everything() {
    let rt = runtime();
    let first =
        blocks(vec![eu1(0, 2, 1), BlockShape::new(&[("cluster", "us1")], at(0), at(2), 2)], &SynthSpec::default());
    let later = blocks(
        vec![eu1(2, 4, 3), BlockShape::new(&[("cluster", "us1")], at(2), at(4), 4)],
        &SynthSpec { seed: 3, ..SynthSpec::default() },
    );
    let source = store_with(&rt, &first);
    // The eu1 block is read in the first run, but cannot be copied (its index is refused).
    let refused = FaultRule::permanent(&format!("{}/index", first[0].dir), &[Op::Get]);
    let copies_fail: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(source.clone(), vec![refused], 1));
    let denied = FaultRule::permanent(&format!("{}/meta.json", first[0].dir), &[Op::Get]);
    let faulty = Arc::new(FaultyStore::new(copies_fail, vec![denied], 1));
    faulty.set_enabled(false);
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut replicator = Replicator::start(faulty.clone(), target, config(), rt.handle().clone()).unwrap();
    let report = replicator.run().unwrap();
    assert_eq!((outcome(&report, &first[0]).kind(), report.counts.replicated), ("failed", 1));

    // Then its meta.json becomes unreadable; its group is known from the first run.
    rt.block_on(write(&source, &later)).unwrap();
    faulty.set_enabled(true);
    let report = replicator.run().unwrap();
    assert_eq!(outcome(&report, &later[0]).held_back_behind(), Some(first[0].dir.as_str()));
    assert_eq!(outcome(&report, &later[1]).kind(), "replicated", "another group goes on");
    assert!(report.every_queue_held_back_by.is_empty());
    replicator.shutdown().unwrap();

    // A process that never read it cannot know its group: every group waits, and says why.
    let report = replicate(&rt, faulty, Arc::new(InMemory::new()), config());
    assert_eq!(report.every_queue_held_back_by, vec![first[0].dir.clone()]);
    assert_eq!(report.counts.replicated, 0);
    assert_eq!(report.counts.held_back, 3);
}

#[test]
fn an_excluded_block_holds_nothing_back() {
    let rt = runtime();
    let bs = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
    let source = store_with(&rt, &bs);
    let denied = FaultRule::permanent(&format!("{}/meta.json", bs[0].dir), &[Op::Get]);
    let faulty: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(source, vec![denied], 1));
    let mut config = config();
    config.filter.excluded.insert(bs[0].dir.parse().unwrap());
    let report = replicate(&rt, faulty, Arc::new(InMemory::new()), config);
    let excluded = Outcome::Filtered { reason: "excluded by --exclude-block".into(), rule: FilterRule::Selection };
    assert_eq!(outcome(&report, &bs[0]), &excluded);
    assert_eq!(outcome(&report, &bs[1]).kind(), "replicated");
}

#[test]
fn mimir_and_cortex_tenant_blocks_without_labels_are_replicated_per_tenant() {
    let rt = runtime();
    let ingester =
        |tenant: &str, from: i64, seed: u64| BlockShape::new(&[], at(from), at(from + 2), seed).in_tenant(tenant);
    let shapes = vec![
        // Mimir: ingester blocks carry no labels; the split compactor's carry the shard label.
        ingester("team-a", 0, 1),
        BlockShape::new(&[("__compactor_shard_id__", "1_of_2")], at(2), at(4), 2).in_tenant("team-a"),
        BlockShape::new(&[("__out_of_order__", "true")], at(0), at(2), 3).in_tenant("team-a"),
        // Cortex: ingester blocks carry the tenant and the ingester.
        BlockShape::new(&[("__org_id__", "team-b"), ("__ingester_id__", "ingester-1")], at(0), at(2), 4)
            .in_tenant("team-b"),
    ];
    let bs = blocks(shapes, &SynthSpec::default());
    let layout = Layout::Tenants(Default::default());
    let report = replicate(&rt, store_with(&rt, &bs), Arc::new(InMemory::new()), EngineConfig { layout, ..config() });
    assert_eq!(report.counts.replicated, 4, "{:#?}", report.blocks);
    let group = |b: &SynthBlock| report.blocks.iter().find(|l| l.block == b.dir).unwrap().group.clone().unwrap();
    assert_eq!(group(&bs[0]), group(&bs[1]), "the shard label is not part of Mimir's group");
    assert_ne!(group(&bs[0]), group(&bs[2]), "out-of-order blocks are a group of their own");
    assert!(group(&bs[0]).starts_with("team-a/") && group(&bs[3]).starts_with("team-b/"));
}

/// One block under two tenants (Mimir's tools copy blocks between tenants with their ULIDs) is
/// replicated under both by every strategy: `serial` too, whose one queue holds every tenant.
#[test]
fn one_block_under_two_tenants_is_replicated_under_both_by_every_strategy() {
    let rt = runtime();
    let shape = |tenant: &str| BlockShape::new(&[], at(0), at(2), 1).in_tenant(tenant);
    let bs = blocks(vec![shape("team-a"), shape("team-b")], &SynthSpec::default());
    assert_eq!(bs[0].dir.rsplit('/').next(), bs[1].dir.rsplit('/').next(), "one ULID: {:?}", (&bs[0].dir, &bs[1].dir));
    for strategy in Strategy::ALL {
        let layout = Layout::Tenants(Default::default());
        let config = EngineConfig { layout, strategy, ..config() };
        let report = replicate(&rt, store_with(&rt, &bs), Arc::new(InMemory::new()), config);
        assert_eq!(report.counts.replicated, 2, "{strategy}: {:#?}", report.blocks);
        assert_eq!(report.blocks.len(), 2, "{strategy}: a record for each");
    }
}

#[test]
fn recording_store_sees_writes() {
    // A guard for the tests above that look for writes: the recording store does see them.
    let rt = runtime();
    let bs = blocks(vec![eu1(0, 2, 1)], &SynthSpec::default());
    let target = Arc::new(RecordingStore::new(InMemory::new()));
    replicate(&rt, store_with(&rt, &bs), target.clone(), config());
    let written: Vec<String> = target.writes().iter().map(|w| format!("{w:?}")).collect();
    assert!(written.iter().any(|w| w.contains(&bs[0].dir)), "{written:?}");
}
