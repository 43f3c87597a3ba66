//! `audit` on good and broken buckets: each kind of damage is found and named, and nothing else.

use std::sync::Arc;

use bucketflow_dataflows::testkit::block_path;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::{audit, AuditConfig, BlockStatus, TimeNote};
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn bucket(rt: &tokio::runtime::Runtime) -> (Vec<SynthBlock>, Arc<dyn ObjectStore>) {
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 5, ..SynthSpec::default() });
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&store, &blocks)).unwrap();
    (blocks, store)
}

fn status<'a>(report: &'a bucketflow_dataflows::AuditReport, dir: &str) -> &'a BlockStatus {
    &report.blocks.iter().find(|b| b.block == dir).unwrap_or_else(|| panic!("{dir} not reported")).status
}

#[test]
fn a_good_bucket_is_complete_in_time_order_with_no_gap() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (blocks, store) = bucket(&rt);
    let report = rt.block_on(audit(&*store, &AuditConfig::default())).unwrap();
    assert!(!report.has_broken_blocks(), "{report:#?}");
    assert_eq!(report.counts.complete, blocks.len());
    assert_eq!((report.counts.gaps, report.counts.overlaps, report.counts.partial), (0, 0, 0));
    for pair in report.blocks.windows(2).filter(|p| p[0].group == p[1].group) {
        assert!(pair[0].min_time < pair[1].min_time, "each group in time order: {pair:#?}");
    }
}

#[test]
fn every_kind_of_damage_is_found_and_named() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (blocks, store) = bucket(&rt);
    let group0: Vec<&SynthBlock> = blocks.iter().filter(|b| b.group == blocks[0].group).collect();
    let put = |dir: &str, rel: &str, data: Bytes| {
        rt.block_on(store.put(&block_path(dir, rel), PutPayload::from(data))).unwrap();
    };
    // A missing index, a chunk of the right size but other bytes, a corrupt meta.json, an
    // upload without meta.json, and a block gone from the middle of group 1 (a gap before the
    // last block).
    let (missing, swapped, corrupt, partial) = (group0[0], group0[1], group0[2], group0[3]);
    let (gone, after_gap) = (&blocks[blocks.len() - 2], blocks.last().unwrap());
    rt.block_on(store.delete(&block_path(&missing.dir, "index"))).unwrap();
    let chunk = &swapped.objects["chunks/000001"];
    put(&swapped.dir, "chunks/000001", Bytes::from(vec![b'x'; chunk.len()]));
    put(&corrupt.dir, "meta.json", Bytes::from_static(b"{\"ulid\": "));
    rt.block_on(store.delete(&block_path(&partial.dir, "meta.json"))).unwrap();
    for rel in gone.objects.keys() {
        rt.block_on(store.delete(&block_path(&gone.dir, rel))).unwrap();
    }

    let config = AuditConfig { now_millis: partial.min_time + 3_600_000, ..AuditConfig::default() };
    let report = rt.block_on(audit(&*store, &config)).unwrap();
    assert!(report.has_broken_blocks());
    match status(&report, &missing.dir) {
        BlockStatus::Incomplete { problems } => assert!(problems[0].contains("lists index"), "{problems:?}"),
        other => panic!("missing index: {other:?}"),
    }
    match status(&report, &swapped.dir) {
        BlockStatus::Incomplete { problems } => {
            assert!(problems[0].contains("chunks/000001: SHA256"), "{problems:?}")
        }
        other => panic!("swapped chunk: {other:?}"),
    }
    match status(&report, &corrupt.dir) {
        BlockStatus::UnreadableMeta { error } => assert!(error.contains(&corrupt.dir), "{error}"),
        other => panic!("corrupt meta: {other:?}"),
    }
    assert_eq!(report.partial.len(), 1);
    assert_eq!(report.partial[0].block, partial.dir);
    assert!(report.partial[0].objects > 0 && report.partial[0].bytes > 0);
    let gap = report.blocks.iter().find(|b| b.block == after_gap.dir).unwrap();
    assert!(matches!(&gap.time_note, Some(TimeNote::Gap { .. })), "a hole in group 1: {gap:#?}");
    assert_eq!(report.counts.incomplete, 2);
    assert_eq!(report.counts.unreadable_meta, 1);
    assert_eq!(report.counts.complete, blocks.len() - 5, "{report:#?}");
    // Without hashes the swapped chunk (same size) is not noticed; the missing index still is.
    let sizes_only = AuditConfig { check_hashes: false, ..config };
    let report = rt.block_on(audit(&*store, &sizes_only)).unwrap();
    assert_eq!(status(&report, &swapped.dir), &BlockStatus::Complete);
    assert_eq!(report.counts.incomplete, 1);
}

#[test]
fn overlapping_blocks_are_marked() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blocks = generate(&SynthSpec { groups: 1, blocks_per_group: 2, ..SynthSpec::default() });
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&store, &blocks)).unwrap();
    // A third block of the same group covering both: as a compactor's output before cleanup.
    let mut wide = blocks[1].clone();
    let meta: serde_json::Value = serde_json::from_slice(wide.meta_json()).unwrap();
    let ulid = ulid::Ulid::from_parts(1_700_000_000_000 + 1, 7).to_string();
    let mut meta = meta;
    meta["ulid"] = ulid.clone().into();
    meta["minTime"] = blocks[0].min_time.into();
    meta["maxTime"] = blocks[1].max_time.into();
    wide.objects.insert("meta.json".into(), Bytes::from(serde_json::to_vec(&meta).unwrap()));
    wide.dir = ulid.clone();
    rt.block_on(write(&store, &[wide])).unwrap();
    let report = rt.block_on(audit(&*store, &AuditConfig::default())).unwrap();
    assert_eq!(report.counts.overlaps, 2, "{report:#?}");
    assert!(!report.has_broken_blocks(), "overlaps are noted, not failures");
}
