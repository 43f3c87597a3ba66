//! Failures from the stores: transient ones are retried, permanent ones fail their block, and a
//! block that fails anywhere holds back its group (or, when its group is unknown, every group).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bucketflow_dataflows::testkit::block_path;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::ExpectedBlock;
use bucketflow_dataflows::testkit::{FaultRule, FaultyStore, Op, RecordingStore, SafetyChecker, Write};
use bucketflow_dataflows::Outcome;
use bucketflow_dataflows::{EngineConfig, Replicator, RunReport, Strategy};
use bucketflow_dataflows::{LatencyStore, RetryPolicy};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{contents, runtime};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        retries: 25,
        timeout: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        strategy: Strategy::Grouped,
        workers: 2,
        concurrency: 8,
        retry: fast_retries(),
        ..EngineConfig::default()
    }
}

fn replicate(rt: &tokio::runtime::Runtime, source: Arc<dyn ObjectStore>, target: Arc<dyn ObjectStore>) -> RunReport {
    support::replicate(rt, source, target, config())
}

fn bucket(rt: &tokio::runtime::Runtime, groups: usize, per: usize) -> (Vec<SynthBlock>, Arc<InMemory>) {
    let blocks = generate(&SynthSpec { groups, blocks_per_group: per, ..SynthSpec::default() });
    let store = Arc::new(InMemory::new());
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    rt.block_on(write(&dyn_store, &blocks)).unwrap();
    (blocks, store)
}

fn checker(blocks: &[SynthBlock]) -> Arc<SafetyChecker<InMemory>> {
    Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)))
}

#[test]
fn transient_failures_are_retried_and_the_run_completes_safely() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 3, 4);
    let flaky_source = Arc::new(FaultyStore::new(
        source.clone(),
        vec![FaultRule::transient(r"/(chunks/|index)", &[Op::Get], None).with_rate(0.3)],
        7,
    ));
    let target = checker(&blocks);
    let flaky_target = Arc::new(FaultyStore::new(
        target.clone(),
        vec![FaultRule::transient(r"/(chunks/|index)", &[Op::Put, Op::Head], None).with_rate(0.2)],
        8,
    ));
    let report = replicate(&rt, flaky_source.clone(), flaky_target.clone());
    assert!(flaky_source.injected() + flaky_target.injected() > 5, "faults were injected");
    assert_eq!(report.counts.replicated, 12, "{report:#?}");
    assert_eq!(target.violations(), vec![]);
    assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
}

#[test]
fn a_permanent_failure_fails_its_block_at_once_and_holds_back_its_group() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 2, 3);
    let denied = format!("{}/index", blocks[0].dir);
    let faulty = Arc::new(FaultyStore::new(source, vec![FaultRule::permanent(&denied, &[Op::Get])], 1));
    let target = checker(&blocks);
    let report = replicate(&rt, faulty.clone(), target.clone());
    assert_eq!(faulty.injected(), 1, "a permanent failure is not retried");
    let outcomes = report.outcomes();
    assert!(matches!(outcomes[blocks[0].dir.as_str()], Outcome::Failed { error, .. } if error.contains("index")));
    for later in &blocks[1..3] {
        assert_eq!(outcomes[later.dir.as_str()].held_back_behind(), Some(blocks[0].dir.as_str()));
    }
    assert_eq!(report.counts.replicated, 3, "the other group goes on");
    assert_eq!(target.violations(), vec![]);
}

/// A target meta.json that cannot be read could say anything: the block it makes visible could
/// be one that a source block overlaps, or one that covers it, in any group. So, as a Thanos
/// compactor whose meta fetcher fails on one meta.json does nothing that iteration
/// (pkg/block/fetcher.go: any error but not-found or bad JSON makes the view incomplete), every
/// group waits; the block of that folder itself fails.
#[test]
fn a_target_meta_that_cannot_be_read_holds_back_every_group() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 2, 3);
    // The target holds a meta.json of the block that it refuses to let be read.
    let meta = format!("{}/meta.json", blocks[1].dir);
    let stale = InMemory::new();
    rt.block_on(stale.put(&object_store::path::Path::from(meta.as_str()), PutPayload::from_static(b"{}"))).unwrap();
    let target = Arc::new(SafetyChecker::new(stale, blocks.iter().map(ExpectedBlock::from)));
    let faulty = Arc::new(FaultyStore::new(target.clone(), vec![FaultRule::permanent(&meta, &[Op::Get])], 1));
    let report = replicate(&rt, source, faulty);
    let outcomes = report.outcomes();
    assert_eq!(outcomes[blocks[1].dir.as_str()].kind(), "failed");
    for other in blocks.iter().filter(|b| b.dir != blocks[1].dir) {
        let outcome = outcomes[other.dir.as_str()];
        assert!(
            matches!(outcome, Outcome::HeldBack { behind, behind_in_target: true, .. } if behind == &blocks[1].dir),
            "{outcome:?}"
        );
    }
    assert_eq!(report.held_back_by_target, vec![blocks[1].dir.clone()]);
    assert_eq!(report.counts.replicated, 0);
    assert!(target.commits().is_empty());
}

#[test]
fn an_unreadable_source_meta_holds_back_every_group() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 2, 2);
    let meta = format!("{}/meta.json", blocks[3].dir);
    let faulty = Arc::new(FaultyStore::new(source.clone(), vec![FaultRule::permanent(&meta, &[Op::Get])], 1));
    let target = checker(&blocks);
    let report = replicate(&rt, faulty, target.clone());
    let outcomes = report.outcomes();
    assert!(
        matches!(outcomes[blocks[3].dir.as_str()], Outcome::Failed { error, .. } if error.contains("group is unknown"))
    );
    for b in &blocks[..3] {
        assert_eq!(outcomes[b.dir.as_str()].held_back_behind(), Some(blocks[3].dir.as_str()), "{report:#?}");
    }
    assert!(target.commits().is_empty());
    // With the fault gone, the next run replicates everything, in order.
    let report = replicate(&rt, source, target.clone());
    assert_eq!(report.counts.replicated, 4, "{report:#?}");
    assert_eq!(target.violations(), vec![]);
}

#[test]
fn empty_meta_and_empty_deletion_mark_are_partial_not_failures() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 1, 2);
    rt.block_on(source.put(&block_path(&blocks[0].dir, "meta.json"), PutPayload::from_static(b""))).unwrap();
    rt.block_on(source.put(&block_path(&blocks[1].dir, "deletion-mark.json"), PutPayload::from_static(b""))).unwrap();
    let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut config = config();
    config.filter.ignore_marked_for_deletion = true;
    let mut replicator = Replicator::start(source, target, config, rt.handle().clone()).unwrap();
    let report = replicator.run().unwrap();
    let outcomes = report.outcomes();
    assert_eq!(outcomes[blocks[0].dir.as_str()].kind(), "skipped", "{report:#?}");
    assert_eq!(outcomes[blocks[1].dir.as_str()].kind(), "replicated", "an empty mark is no mark");
    assert!(!report.is_failure());
}

#[test]
fn reads_cut_short_are_noticed_and_retried() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 2, 3);
    let short =
        Arc::new(FaultyStore::new(source.clone(), vec![FaultRule::truncated_reads(r"/(chunks/|index)", Some(6))], 3));
    let target = checker(&blocks);
    let report = replicate(&rt, short.clone(), target.clone());
    assert_eq!(short.injected(), 6, "every truncation happened");
    assert_eq!(report.counts.replicated, 6, "{report:#?}");
    assert_eq!(target.violations(), vec![]);
    assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)), "no short object was kept");
}

#[test]
fn an_object_deleted_between_its_copy_and_the_commit_is_copied_again_first() {
    let rt = runtime();
    // Blocks of up to 4 objects besides meta.json are re-checked by HEADs, larger ones by
    // listings: objects vanish from blocks of the one kind, then of the other.
    for max_chunk_files in [3, 12] {
        let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 3, max_chunk_files, ..SynthSpec::default() });
        let source = Arc::new(InMemory::new());
        let dyn_source: Arc<dyn ObjectStore> = source.clone();
        rt.block_on(write(&dyn_source, &blocks)).unwrap();
        let target = checker(&blocks);
        // As a target compactor's cleanup of a block without meta.json would: objects vanish
        // right after they were written.
        let objects = |b: &&SynthBlock| b.objects.len() - 1;
        let kind: Vec<&str> =
            blocks.iter().filter(|b| (objects(b) <= 4) == (max_chunk_files == 3)).map(|b| b.dir.as_str()).collect();
        assert!(kind.len() >= 2, "{max_chunk_files}: too few blocks of the kind");
        let rule = FaultRule::vanish_after_put(&format!("({})/(chunks/|index)", kind.join("|")), Some(5));
        let vanishing = Arc::new(FaultyStore::new(target.clone(), vec![rule], 4));
        let report = replicate(&rt, source.clone(), vanishing.clone());
        assert_eq!(vanishing.injected(), 5);
        assert_eq!(report.counts.replicated, 6, "{report:#?}");
        assert_eq!(target.violations(), vec![], "no meta.json was written while an object was gone");
        assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
    }
}

/// A target that refuses HEADs (a credential that may write and list but not read) has its
/// blocks re-checked by listings instead: every block replicated, none failed for it. With one
/// re-check slot too, where the turn to listings must not wait for a slot its own HEADs hold.
#[test]
fn a_target_that_refuses_heads_is_re_checked_by_listings() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 2, 3);
    assert!(blocks.iter().all(|b| b.objects.len() <= 5), "every block would be re-checked by HEADs");
    for concurrency in [8, 1] {
        let target = checker(&blocks);
        let rule = FaultRule::permanent(r"/(chunks/|index)", &[Op::Head]);
        let refusing = Arc::new(FaultyStore::new(target.clone(), vec![rule], 4));
        // A re-check stuck waiting for a slot would hang the run: stopping it after a while ends
        // the waits (as interrupted), and the count of blocks replicated fails.
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            stop.cancel();
        });
        let stoppable = EngineConfig { concurrency, cancel, ..config() };
        let report = support::replicate(&rt, source.clone(), refusing.clone(), stoppable);
        assert!(refusing.injected() >= 1, "{concurrency}: a HEAD was refused");
        assert_eq!(report.counts.replicated, 6, "{concurrency}: {report:#?}");
        assert_eq!(target.violations(), vec![]);
        assert_eq!(rt.block_on(contents(&*target)), rt.block_on(contents(&*source)));
    }
}

/// A random fault schedule: which faults, where, how often.
#[derive(Debug, Clone)]
struct Schedule {
    groups: usize,
    per: usize,
    seed: u64,
    source_errors: f64,
    target_errors: f64,
    truncations: usize,
    vanishings: usize,
    denied_block: Option<usize>,
}

fn schedule() -> impl proptest::strategy::Strategy<Value = Schedule> {
    use proptest::prelude::*;
    (1usize..4, 1usize..5, any::<u64>(), 0.0..0.3f64, 0.0..0.3f64, 0usize..6, 0usize..6, any::<Option<usize>>())
        .prop_map(|(groups, per, seed, source_errors, target_errors, truncations, vanishings, denied)| Schedule {
            groups,
            per,
            seed,
            source_errors,
            target_errors,
            truncations,
            vanishings,
            denied_block: denied.map(|d| d % (groups * per)),
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

    /// Whatever the faults, promises 1 to 4 hold after the run, and a re-run without faults
    /// leaves the target holding exactly the source's blocks.
    #[test]
    fn promises_hold_under_random_fault_schedules(s in schedule()) {
        let rt = runtime();
        let spec = SynthSpec { groups: s.groups, blocks_per_group: s.per, seed: s.seed, max_chunk_bytes: 4096, ..SynthSpec::default() };
        let blocks = generate(&spec);
        let source = Arc::new(InMemory::new());
        let dyn_source: Arc<dyn ObjectStore> = source.clone();
        rt.block_on(write(&dyn_source, &blocks)).unwrap();
        let before = rt.block_on(contents(&*source));

        let mut source_rules = vec![
            FaultRule::transient(r"/(chunks/|index)", &[Op::Get], None).with_rate(s.source_errors),
            FaultRule::truncated_reads(r"/(chunks/|index)", Some(s.truncations)),
        ];
        if let Some(i) = s.denied_block {
            source_rules.push(FaultRule::permanent(&format!("^{}/index$", blocks[i].dir), &[Op::Get]));
        }
        let faulty_source = Arc::new(FaultyStore::new(source.clone(), source_rules, s.seed));
        let target = checker(&blocks);
        let target_rules = vec![
            FaultRule::transient(r"/(chunks/|index|meta\.json)", &[Op::Put, Op::Head], None).with_rate(s.target_errors),
            FaultRule::vanish_after_put(r"/(chunks/|index)", Some(s.vanishings)),
        ];
        let faulty_target = Arc::new(FaultyStore::new(target.clone(), target_rules, s.seed ^ 1));
        let report = replicate(&rt, faulty_source, faulty_target);

        // Promises 1 and 2: every meta.json was written complete and in its group's order.
        proptest::prop_assert_eq!(target.violations(), vec![]);
        let after = rt.block_on(contents(&*target));
        for b in &blocks {
            if let Some(meta) = after.get(&format!("{}/meta.json", b.dir)) {
                // Promise 3: byte for byte.
                proptest::prop_assert_eq!(meta, b.meta_json());
                for (rel, data) in &b.objects {
                    proptest::prop_assert_eq!(after.get(&format!("{}/{rel}", b.dir)), Some(data));
                }
            }
        }
        proptest::prop_assert_eq!(rt.block_on(contents(&*source)), before.clone(), "the source is never written");
        if s.denied_block.is_none() {
            proptest::prop_assert_eq!(report.counts.replicated as usize, blocks.len(), "{:#?}", report);
        }

        // Promise 4: a re-run without faults finishes the rest, copies nothing finished again,
        // and leaves the target equal to the source.
        let rerun = replicate(&rt, source.clone(), target.clone());
        proptest::prop_assert_eq!(rerun.counts.already_replicated, report.counts.replicated);
        proptest::prop_assert_eq!(rerun.counts.replicated + rerun.counts.already_replicated, blocks.len() as u64);
        proptest::prop_assert_eq!(rt.block_on(contents(&*target)), before);
        proptest::prop_assert_eq!(target.violations(), vec![]);
    }
}

#[test]
fn a_meta_json_write_that_fails_holds_back_the_blocks_checked_ahead_of_it() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 1, 6);
    let target = checker(&blocks);
    // The second block's meta.json cannot be written; the blocks after it were re-checked while
    // it was being written, and must not be written themselves.
    let meta = format!("{}/meta.json", blocks[1].dir);
    let faulty = Arc::new(FaultyStore::new(target.clone(), vec![FaultRule::permanent(&meta, &[Op::Put])], 1));
    let report = replicate(&rt, source, faulty);
    let outcomes = report.outcomes();
    assert_eq!(outcomes[blocks[0].dir.as_str()].kind(), "replicated");
    assert_eq!(outcomes[blocks[1].dir.as_str()].kind(), "failed");
    for later in &blocks[2..] {
        assert_eq!(outcomes[later.dir.as_str()].held_back_behind(), Some(blocks[1].dir.as_str()));
    }
    assert_eq!(target.commits(), vec![blocks[0].dir.clone()]);
    assert_eq!(target.violations(), vec![]);
}

#[test]
fn the_blocks_held_back_behind_a_failure_are_not_copied() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 1, 20);
    // The oldest block cannot be read. A read of a later block would be a copy for nothing: it is
    // refused too, so that the count of refusals shows how many were tried.
    let later = blocks[1..].iter().map(|b| b.dir.as_str()).collect::<Vec<_>>().join("|");
    let rules = vec![
        FaultRule::permanent(&format!("{}/index", blocks[0].dir), &[Op::Get]),
        FaultRule::permanent(&format!("({later})/(chunks|index)"), &[Op::Get]),
    ];
    let later_objects: usize = blocks[1..].iter().map(|b| b.objects.len() - 1).sum();
    let faulty = Arc::new(FaultyStore::new(source, rules, 1));
    // One object at a time, oldest first, as `serial` copies on one worker.
    let config = EngineConfig { strategy: Strategy::Serial, workers: 1, ..config() };
    let report = support::replicate(&rt, faulty.clone(), checker(&blocks), config);
    assert_eq!(report.outcomes()[blocks[0].dir.as_str()].kind(), "failed");
    assert_eq!(report.counts.held_back, 19);
    // Copies start as blocks become known, so a few may start before the failure is; none after.
    let tried = faulty.injected() - 1;
    assert!(tried * 4 < later_objects, "{tried} of {later_objects} objects of held-back blocks were read");
}

/// A failure at the commit (here the oldest block's meta.json cannot be written) holds back the
/// newer blocks of its group before their copies are made, as a failed copy does; and what was
/// copied of the blocks held back is counted in the report.
#[test]
fn a_failure_at_the_commit_stops_the_copies_of_the_newer_blocks() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt, 1, 20);
    // Each source request takes a while, so that copying the newer blocks would take far longer
    // than the oldest block's commit.
    let slow: Arc<dyn ObjectStore> = Arc::new(LatencyStore::new(source, Duration::from_millis(20)));
    let recording = Arc::new(RecordingStore::new(InMemory::new()));
    let rules = vec![FaultRule::permanent(&format!("{}/meta.json", blocks[0].dir), &[Op::Put])];
    let target = Arc::new(FaultyStore::new(recording.clone(), rules, 1));
    let config = EngineConfig { strategy: Strategy::Serial, workers: 1, ..config() };
    let report = support::replicate(&rt, slow, target, config);
    assert_eq!(report.outcomes()[blocks[0].dir.as_str()].kind(), "failed", "{report:#?}");
    assert_eq!(report.counts.held_back, 19);
    let later: Vec<&str> = blocks[1..].iter().map(|b| b.dir.as_str()).collect();
    let later_objects: usize = blocks[1..].iter().map(|b| b.objects.len() - 1).sum();
    let written: Vec<String> = recording
        .writes()
        .into_iter()
        .filter_map(|w| match w {
            Write::Put(path) => Some(path),
            _ => None,
        })
        .collect();
    let copied_later = written.iter().filter(|p| later.iter().any(|dir| p.starts_with(dir))).count();
    assert!(
        copied_later * 4 < later_objects,
        "{copied_later} of {later_objects} objects of held-back blocks were copied"
    );
    // Every object written is in the report, the held-back blocks' too.
    let written_bytes: u64 = rt.block_on(contents(&*recording)).values().map(|b| b.len() as u64).sum();
    assert_eq!(report.bytes_copied, written_bytes, "{report:#?}");
}
