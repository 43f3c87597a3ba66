//! Safe as the target compactor sees it, through the binary, against a folder and against S3
//! (s3s-fs): HA pairs ordered as one group with `--deduplication.replica-label`, blocks the
//! target compacted left alone, an overlapping block refused by name, a gap-filling block
//! committed late, an unparsable meta.json holding back its group, `--exclude-block`, and Mimir
//! and Cortex tenant buckets.

mod support;

use std::path::Path;
use std::process::Command;

use bucketflow_dataflows::testkit::synth::{blocks, BlockShape, SynthBlock, SynthSpec};
use serde_json::Value;
use support::buckets::{files, write_folder};
use support::place::Place;
use support::process::BIN;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

fn at(hours: i64) -> i64 {
    T0 + hours * HOUR
}

fn eu1(from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", "eu1")], at(from), at(to), seed)
}

/// The report's line for `block`.
fn line<'a>(report: &'a Value, block: &SynthBlock) -> &'a Value {
    let blocks = report["blocks"].as_array().unwrap();
    blocks.iter().find(|b| b["block"] == block.dir.as_str()).unwrap_or_else(|| panic!("{} not in {report}", block.dir))
}

fn outcome(report: &Value, block: &SynthBlock) -> String {
    line(report, block)["outcome"].as_str().unwrap().to_string()
}

/// Makes `block`'s source copy defective: its meta.json lists an index of another size.
fn break_index(dir: &Path, block: &SynthBlock) {
    std::fs::write(dir.join(&block.dir).join("index"), b"shorter than listed").unwrap();
}

#[test]
fn ha_replicas_are_ordered_as_the_compactor_groups_them() {
    for place in Place::all() {
        let replica = |r: &str, from: i64, seed: u64| {
            BlockShape::new(&[("cluster", "eu1"), ("replica", r)], at(from), at(from + 2), seed)
        };
        let bs = blocks(vec![replica("a", 8, 1), replica("b", 10, 2)], &SynthSpec::default());
        write_folder(&place.dir("source"), &bs);
        break_index(&place.dir("source"), &bs[0]);
        let (code, report) = place.replicate(&["--deduplication.replica-label", "replica", "--dry-run"]);
        assert_eq!(code, Some(1), "{report}");
        assert_eq!(line(&report, &bs[0])["group"], line(&report, &bs[1])["group"], "one group in the plan too");

        let (code, report) = place.replicate(&["--deduplication.replica-label", "replica"]);
        assert_eq!(code, Some(1), "{}: {report}", place.name());
        assert_eq!(outcome(&report, &bs[0]), "failed");
        assert_eq!(line(&report, &bs[1])["behind"], bs[0].dir.as_str(), "{}: {report}", place.name());
        assert!(files(&place.dir("target")).keys().all(|p| !p.ends_with("meta.json")), "nothing visible");

        // Without the flag each replica is a group of its own, as bucketflow saw it before.
        let (_, report) = place.replicate(&[]);
        assert_eq!(outcome(&report, &bs[1]), "replicated", "{}: {report}", place.name());
    }
}

#[test]
fn compacted_overlapping_and_late_blocks_in_the_target() {
    for place in Place::all() {
        let parts = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        let shape = eu1(0, 4, 9).compacted_from(&[&parts[0], &parts[1]], 2);
        let merged = blocks(vec![shape], &SynthSpec { seed: 9, ..SynthSpec::default() });
        // The source still has both parts; it also has a backfilled block inside the compacted
        // range, one that fills a gap before the target's newest block, and the newest itself.
        let more =
            blocks(vec![eu1(1, 3, 5), eu1(4, 6, 6), eu1(6, 8, 7)], &SynthSpec { seed: 5, ..SynthSpec::default() });
        let (backfilled, gap, newest) = (&more[0], &more[1], &more[2]);
        write_folder(&place.dir("source"), &[parts.clone(), more.clone()].concat());
        write_folder(&place.dir("target"), &[merged.clone(), vec![newest.clone()]].concat());

        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1), "the overlap is a failure: {report}");
        for part in &parts {
            assert_eq!(outcome(&report, part), "covered", "{}: {report}", place.name());
            assert_eq!(line(&report, part)["by"], merged[0].dir.as_str());
            assert!(!place.dir("target").join(&part.dir).exists(), "nothing written for a covered block");
        }
        let overlap = line(&report, backfilled);
        assert_eq!((overlap["outcome"].as_str(), overlap["cause"].as_str()), (Some("failed"), Some("overlap")));
        assert!(overlap["error"].as_str().unwrap().contains(&merged[0].dir), "{overlap}");
        assert!(!place.dir("target").join(&backfilled.dir).join("meta.json").exists());
        assert_eq!(outcome(&report, gap), "replicated", "an overlap holds nothing back: {report}");
        assert_eq!(line(&report, gap)["late_behind"], newest.dir.as_str());
        assert_eq!(report["counts"]["late"], 1);
        assert_eq!(outcome(&report, newest), "already_replicated");

        // A compactor that compacts vertically merges the overlap: then it is replicated.
        let (code, report) = place.replicate(&["--target.vertical-compaction"]);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(outcome(&report, backfilled), "replicated");
    }
}

#[test]
fn an_unparsable_meta_holds_back_its_group_until_excluded() {
    for place in Place::all() {
        let other = BlockShape::new(&[("cluster", "us1")], at(0), at(2), 3);
        let bs = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2), other], &SynthSpec::default());
        write_folder(&place.dir("source"), &bs);
        let broken = format!(r#"{{"ulid":"{}","version":1,"thanos":{{"labels":{{"cluster":"eu1"}}}}}}"#, bs[0].dir);
        std::fs::write(place.dir("source").join(&bs[0].dir).join("meta.json"), broken).unwrap();
        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1));
        assert!(line(&report, &bs[0])["error"].as_str().unwrap().contains("minTime"), "{report}");
        assert_eq!(line(&report, &bs[1])["behind"], bs[0].dir.as_str(), "{}: {report}", place.name());
        assert_eq!(outcome(&report, &bs[2]), "replicated");

        let (code, report) = place.replicate(&["--exclude-block", &bs[0].dir]);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(line(&report, &bs[0])["reason"], "excluded by --exclude-block");
        assert_eq!(outcome(&report, &bs[1]), "replicated");
    }
}

#[test]
fn mimir_and_cortex_tenant_buckets() {
    for place in Place::all() {
        let shapes = vec![
            BlockShape::new(&[], at(0), at(2), 1).in_tenant("mimir"),
            BlockShape::new(&[("__compactor_shard_id__", "1_of_2")], at(2), at(4), 2).in_tenant("mimir"),
            BlockShape::new(&[("__org_id__", "cortex"), ("__ingester_id__", "ingester-1")], at(0), at(2), 3)
                .in_tenant("cortex"),
        ];
        let bs = blocks(shapes, &SynthSpec::default());
        write_folder(&place.dir("source"), &bs);
        let (code, report) = place.replicate(&["--layout", "tenants"]);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["counts"]["replicated"], 3, "{}: {report}", place.name());
        assert_eq!(line(&report, &bs[0])["group"], line(&report, &bs[1])["group"], "no shard label in the group");
        assert!(line(&report, &bs[2])["group"].as_str().unwrap().starts_with("cortex/"));
    }
}

#[test]
fn a_bad_replica_label_is_named() {
    let out = Command::new(BIN)
        .args(["replicate", "--from", "memory://", "--to", "memory://", "--single-run"])
        .args(["--deduplication.replica-label", "not a label"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--deduplication.replica-label \"not a label\""), "{stderr}");
}
