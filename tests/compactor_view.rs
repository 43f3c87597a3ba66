//! The target compactor's view, kept through a whole run, through the binary against a folder
//! and against S3 (s3s-fs). Each test is one of five ways a run once broke the promises:
//! 1. two overlapping source blocks of a group both made visible in one run;
//! 2. a target block bucketflow could not read (too large, nested deep, refused) left out of the
//!    judgement;
//! 3. a re-check long out of date when its meta.json was written;
//! 4. Mimir's overlapping ingester blocks refused under `--layout tenants`;
//! 5. the newer blocks of a group copied in full after its oldest failed at its commit.

mod support;

use std::path::Path;
use std::time::Duration;

use bucketflow_dataflows::testkit::synth::{blocks, BlockShape, SynthBlock, SynthSpec};
use serde_json::Value;
use support::buckets::{files, write_folder};
use support::place::Place;
use support::process::{drain, wait_at_most, wait_for};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;
const MIB: usize = 1024 * 1024;

fn at(hours: i64) -> i64 {
    T0 + hours * HOUR
}

fn eu1(from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", "eu1")], at(from), at(to), seed)
}

/// Blocks whose one chunk file has `chunk` bytes.
fn sized(shapes: Vec<BlockShape>, chunk: usize, seed: u64) -> Vec<SynthBlock> {
    let spec =
        SynthSpec { max_chunk_files: 1, min_chunk_bytes: chunk, max_chunk_bytes: chunk, seed, ..SynthSpec::default() };
    blocks(shapes, &spec)
}

/// The report's line for `block`.
fn line<'a>(report: &'a Value, block: &SynthBlock) -> &'a Value {
    let blocks = report["blocks"].as_array().unwrap();
    blocks.iter().find(|b| b["block"] == block.dir.as_str()).unwrap_or_else(|| panic!("{} not in {report}", block.dir))
}

fn outcome(report: &Value, block: &SynthBlock) -> String {
    line(report, block)["outcome"].as_str().unwrap().to_string()
}

fn has_meta(dir: &Path, block: &SynthBlock) -> bool {
    dir.join(&block.dir).join("meta.json").is_file()
}

/// Rewrites `block`'s meta.json in the folder bucket `dir` with `edit` applied to its JSON.
fn edit_meta(dir: &Path, block: &SynthBlock, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(&block.dir).join("meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

/// Hole 1: the second of two overlapping source blocks of a group is judged against the first,
/// committed earlier in the same run, and refused, as it is when the first landed in an
/// earlier run; the target then verifies with no overlap.
#[test]
fn overlapping_source_blocks_of_a_group_are_not_both_made_visible_in_one_run() {
    for place in Place::all() {
        let bs = blocks(vec![eu1(0, 2, 1), eu1(1, 3, 2)], &SynthSpec::default());
        write_folder(&place.dir("source"), &bs);
        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1), "{}: {report}", place.name());
        assert_eq!(outcome(&report, &bs[0]), "replicated", "{report}");
        let refused = line(&report, &bs[1]);
        assert_eq!((refused["outcome"].as_str(), refused["cause"].as_str()), (Some("failed"), Some("overlap")));
        assert!(refused["error"].as_str().unwrap().contains(&bs[0].dir), "{refused}");
        assert!(!has_meta(&place.dir("target"), &bs[1]), "{}", place.name());
        let verify = std::process::Command::new(support::process::BIN)
            .args(["verify", "--objstore.config", &place.yaml("target")])
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

        // The same with the first block already in the target: the outcome does not depend on
        // whether it landed in an earlier run.
        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1));
        assert_eq!(outcome(&report, &bs[0]), "already_replicated");
        assert_eq!(line(&report, &bs[1])["cause"], "overlap", "{report}");
    }
}

/// Hole 2: target blocks that bucketflow once could not read are judged as Thanos reads them (a
/// 4.3 MB meta.json, one nested 100 levels deep), and one it cannot read at all (beyond the size
/// bound) holds back every group, named in the report, rather than being left out.
#[test]
fn target_blocks_are_judged_as_thanos_reads_them_or_hold_back() {
    for place in Place::all() {
        let parts = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2), eu1(4, 6, 3)], &SynthSpec::default());
        let compacted = eu1(0, 10, 9).compacted_from(&[&parts[0], &parts[1], &parts[2]], 2);
        let target = blocks(vec![compacted], &SynthSpec { seed: 9, ..SynthSpec::default() });
        // A block the target never compacted, inside the compacted range, and one of another group.
        let more = blocks(
            vec![eu1(6, 8, 5), BlockShape::new(&[("cluster", "us1")], at(0), at(2), 6)],
            &SynthSpec { seed: 5, ..SynthSpec::default() },
        );
        let (inside, other) = (&more[0], &more[1]);
        write_folder(&place.dir("source"), &more);
        write_folder(&place.dir("target"), &target);
        let huge = "x".repeat(4_300_000);
        edit_meta(&place.dir("target"), &target[0], |meta| {
            meta["thanos"]["extensions"] = serde_json::json!({"pad": huge})
        });
        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1), "{}: {report}", place.name());
        assert_eq!(line(&report, inside)["cause"], "overlap", "a 4.3 MB meta.json is read: {report}");
        assert_eq!(outcome(&report, other), "replicated");

        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        edit_meta(&place.dir("target"), &target[0], |meta| {
            meta["thanos"]["extensions"] = serde_json::from_str(&deep).unwrap();
        });
        let (_, report) = place.replicate(&[]);
        assert_eq!(line(&report, inside)["cause"], "overlap", "a meta.json nested 100 deep is read: {report}");

        // Beyond the bound (a sparse file of 65 MiB): unknown, so every group waits.
        let meta =
            std::fs::File::options().write(true).open(place.dir("target").join(&target[0].dir).join("meta.json"));
        meta.unwrap().set_len(65 * MIB as u64).unwrap();
        std::fs::remove_dir_all(place.dir("target").join(&other.dir)).unwrap();
        let (code, report) = place.replicate(&[]);
        assert_eq!(code, Some(1), "{report}");
        for block in [inside, other] {
            assert_eq!(line(&report, block)["behind"], target[0].dir.as_str(), "{}: {report}", place.name());
            assert_eq!(line(&report, block)["behind_in_target"], true);
            assert!(!has_meta(&place.dir("target"), block));
        }
        assert_eq!(report["held_back_by_target"], serde_json::json!([target[0].dir]));
    }
}

/// Hole 3: a block whose turn comes long after its re-check is re-checked again before its
/// meta.json is written. Every request takes a second (`--debug.latency`), so the newer block,
/// in the target already but for its meta.json, is re-checked while the older one's meta.json
/// write is under way; its index is deleted in between, as a compactor's partial-upload cleanup
/// would, and must be copied again before its meta.json is written.
#[test]
fn a_re_check_is_fresh_when_the_meta_json_that_relies_on_it_is_written() {
    for place in Place::all() {
        // Without hashes in its meta.json, what the target holds of the newer block is checked by
        // size alone, so its commit follows the older block's at once.
        let spec = SynthSpec { max_chunk_files: 1, max_chunk_bytes: 1024, with_hashes: false, ..SynthSpec::default() };
        let bs = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &spec);
        let (old, new) = (&bs[0], &bs[1]);
        write_folder(&place.dir("source"), &bs);
        write_folder(&place.dir("target"), std::slice::from_ref(new));
        std::fs::remove_file(place.dir("target").join(&new.dir).join("meta.json")).unwrap();
        let args = ["--debug.latency", "1s", "--server-side-copy", "never", "--recheck.max-age", "200ms"];
        let (mut child, lines) = place.spawn_replicate(&[&args[..], &["--log.level", "debug"]].concat());
        let mut seen = Vec::new();
        while !wait_for(&lines, "re-checked; waiting for the block before it", &mut seen).contains(&new.dir) {}
        std::fs::remove_file(place.dir("target").join(&new.dir).join("index")).unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(60), "the run");
        drain(&lines, &mut seen);
        let report = place.take_report(&seen.join("\n"));
        assert_eq!(status.code(), Some(0), "{}: {report}", place.name());
        assert_eq!((outcome(&report, old), outcome(&report, new)), ("replicated".into(), "replicated".into()));
        let (source, target) = (files(&place.dir("source")), files(&place.dir("target")));
        let index = Path::new(&new.dir).join("index");
        assert!(target.get(&index) == source.get(&index), "{}: the index was copied again first", place.name());
    }
}

/// Hole 4: Mimir's ingesters upload the same 2-hour range of a tenant once each (replication
/// factor 3), and its compactor merges them: under `--layout tenants` an overlap is normal,
/// whether the first block landed in an earlier run or in the same one.
#[test]
fn mimir_ingester_blocks_of_one_range_are_all_replicated() {
    for place in Place::all() {
        let shapes = (0..3).map(|i| BlockShape::new(&[], at(0), at(2), i).in_tenant("team-a")).collect();
        let bs = blocks(shapes, &SynthSpec::default());
        write_folder(&place.dir("source"), &bs);
        write_folder(&place.dir("target"), &bs[..1]);
        let (code, report) = place.replicate(&["--layout", "tenants"]);
        assert_eq!(code, Some(0), "{}: {report}", place.name());
        assert_eq!(outcome(&report, &bs[0]), "already_replicated");
        assert_eq!(report["counts"]["replicated"], 2, "{report}");

        std::fs::remove_dir_all(place.dir("target")).unwrap();
        std::fs::create_dir_all(place.dir("target")).unwrap();
        let (code, report) = place.replicate(&["--layout", "tenants"]);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["counts"]["replicated"], 3, "{}: {report}", place.name());
    }
}

/// Hole 5: the oldest block of a group fails at its commit (a folder stands where its meta.json
/// goes); the newer blocks of its group are held back before their copies are made, not after,
/// and what was copied of them is in the report.
#[test]
fn a_failure_at_the_commit_holds_back_the_copies_of_newer_blocks() {
    for place in Place::all() {
        let bs = sized((0..5).map(|i| eu1(2 * i, 2 * i + 2, i as u64)).collect(), 2 * MIB, 3);
        write_folder(&place.dir("source"), &bs);
        std::fs::create_dir_all(place.dir("target").join(&bs[0].dir).join("meta.json")).unwrap();
        let (code, report) = place.replicate(&[
            "--concurrency",
            "1",
            "--retries",
            "0",
            "--bwlimit",
            "1MiB/s",
            "--server-side-copy",
            "never",
        ]);
        assert_eq!(code, Some(1), "{report}");
        assert_eq!(outcome(&report, &bs[0]), "failed", "{}: {report}", place.name());
        for later in &bs[1..] {
            assert_eq!(line(&report, later)["behind"], bs[0].dir.as_str(), "{report}");
        }
        let target = files(&place.dir("target"));
        let copied = |blocks: &[SynthBlock]| -> usize {
            let of_them = |p: &Path| blocks.iter().any(|b| p.starts_with(&b.dir));
            target.iter().filter(|(p, _)| of_them(p)).map(|(_, data)| data.len()).sum()
        };
        // At most the two chunks whose copies were under way while the oldest block's re-check
        // waited for the one copy slot (re-checks keep to --concurrency) and then failed; the
        // four newer blocks' 8 MiB without the hold.
        let later = copied(&bs[1..]);
        assert!(later <= 4 * MIB + 64 * 1024, "{}: {later} bytes of held-back blocks copied", place.name());
        assert_eq!(report["bytes_copied"], copied(&bs) as u64, "every byte copied is in the report: {report}");
    }
}
