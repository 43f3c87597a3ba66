//! `--mirror` through the binary, against a folder and against S3 (s3s-fs): each run is a new
//! process with no `--cache-dir`, so that what the mirror knows across runs is only what it keeps
//! in the target (its ledger).

mod support;

use std::path::Path;
use std::time::Duration;

use bucketflow_dataflows::testkit::synth::{blocks, BlockShape, SynthBlock, SynthSpec};
use serde_json::Value;
use support::buckets::write_folder;
use support::place::Place;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

fn eu1(from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", "eu1")], T0 + from * HOUR, T0 + to * HOUR, seed)
}

/// The mirror's actions in `report`, as (block, step, reason) sorted.
fn actions(report: &Value) -> Vec<(String, String, String)> {
    let mut actions: Vec<_> = report["mirror"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let text = |key: &str| a[key].as_str().unwrap_or_default().to_string();
            (text("block"), text("step"), text("reason"))
        })
        .collect();
    actions.sort();
    actions
}

fn action(block: &SynthBlock, step: &str, reason: &str) -> (String, String, String) {
    (block.dir.clone(), step.to_string(), reason.to_string())
}

/// Whether no object of `block` is left in the folder bucket `dir` (s3s-fs leaves empty folders).
fn gone(dir: &Path, block: &SynthBlock) -> bool {
    support::buckets::files(&dir.join(&block.dir)).is_empty()
}

fn has(dir: &Path, block: &SynthBlock, file: &str) -> bool {
    dir.join(&block.dir).join(file).is_file()
}

/// Writes a Thanos deletion mark into `block`'s folder in the folder bucket `dir`.
fn mark_for_deletion(dir: &Path, block: &SynthBlock) {
    let mark = serde_json::json!({"id": block.dir, "deletion_time": chrono::Utc::now().timestamp(), "version": 1});
    std::fs::write(dir.join(&block.dir).join("deletion-mark.json"), mark.to_string()).unwrap();
}

fn run(place: &Place, extra: &[&str]) -> Value {
    let (code, report) = place.replicate(extra);
    assert_eq!(code, Some(0), "{}: {report}", place.name());
    report
}

/// The source compacts A and B into C and marks them: the mirror copies C, marks A and B as
/// covered by C in the same run (C holds their data, so the guard, at 0, lets them go), and
/// deletes them once their marks are older than the delete delay; C stays, whole.
#[test]
fn a_mirror_follows_the_source_compactor() {
    for place in Place::all() {
        let source = place.dir("source");
        let target = place.dir("target");
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "0"];
        let first = run(&place, &mirror);
        assert_eq!(actions(&first), [], "{first}");
        let c = blocks(vec![eu1(0, 4, 3).compacted_from(&[&ab[0], &ab[1]], 2)], &SynthSpec::default());
        write_folder(&source, &c);
        for block in &ab {
            mark_for_deletion(&source, block);
        }
        let second = run(&place, &mirror);
        let covered = "covered";
        assert_eq!(actions(&second), [action(&ab[0], "marked", covered), action(&ab[1], "marked", covered)]);
        assert!(second["mirror"][0]["by"] == c[0].dir.as_str(), "{second}");
        for block in &ab {
            assert!(has(&target, block, "deletion-mark.json") && has(&target, block, "meta.json"), "{}", place.name());
        }
        let third = run(&place, &mirror);
        assert_eq!(actions(&third), [action(&ab[0], "deleted", ""), action(&ab[1], "deleted", "")], "{third}");
        for block in &ab {
            assert!(gone(&target, block), "{}: {} still in the target", place.name(), block.dir);
        }
        assert!(has(&target, &c[0], "meta.json"));
        assert_verifies(&place);
        // The source still holds A and B, marked: they are never copied again.
        let fourth = run(&place, &mirror);
        assert_eq!(actions(&fourth), []);
        for block in &ab {
            assert!(gone(&target, block), "{}: {} copied again", place.name(), block.dir);
        }
    }
}

/// The source compacts A and B into C and marks them, but C is a level the selection leaves out
/// (5, above the default --compaction-max 4, as the vertical compaction of an HA pair's level-4
/// blocks makes): the target never gets C, so A and B are not marked (deferred), though the
/// guard would let them go.
#[test]
fn blocks_whose_data_went_into_a_block_the_run_leaves_out_are_kept() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "2"];
        run(&place, &mirror);
        let c = blocks(vec![eu1(0, 4, 3).compacted_from(&[&ab[0], &ab[1]], 5)], &SynthSpec::default());
        write_folder(&source, &c);
        for block in &ab {
            mark_for_deletion(&source, block);
        }
        for _ in 0..2 {
            let report = run(&place, &mirror);
            let deferred = [action(&ab[0], "deferred", "source_marked"), action(&ab[1], "deferred", "source_marked")];
            assert_eq!(actions(&report), deferred, "{report}");
        }
        for block in &ab {
            assert!(has(&target, block, "meta.json") && !has(&target, block, "deletion-mark.json"), "{}", place.name());
        }
        // Once the selection takes C, the target holds it, and A and B go as covered.
        let report = run(&place, &[&mirror[..], &["--compaction-max", "5"]].concat());
        let covered = [action(&ab[0], "marked", "covered"), action(&ab[1], "marked", "covered")];
        assert_eq!(actions(&report), covered, "{report}");
    }
}

/// The source's retention marks A: the mirror marks it (one block, within the guard's 1) and
/// deletes it after the delay; B is left alone, and so is X, a block the source never had (put
/// into the target by someone else): the mirror cannot show it came from the source.
#[test]
fn a_mirror_follows_the_source_retention() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        let x = blocks(vec![eu1(8, 10, 9)], &SynthSpec::default());
        write_folder(&target, &x);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "1"];
        run(&place, &mirror);
        mark_for_deletion(&source, &ab[0]);
        let marked = run(&place, &mirror);
        assert_eq!(actions(&marked), [action(&ab[0], "marked", "source_marked")], "{marked}");
        let deleted = run(&place, &mirror);
        assert_eq!(actions(&deleted), [action(&ab[0], "deleted", "")], "{deleted}");
        assert!(gone(&target, &ab[0]) && has(&target, &ab[1], "meta.json"), "{}", place.name());
        assert!(has(&target, &x[0], "meta.json") && !has(&target, &x[0], "deletion-mark.json"), "{}", place.name());
    }
}

/// A block gone from the source without a mark is marked only once it has been gone for the
/// delete delay (told across processes by the ledger), and deleted only the delay after that.
#[test]
fn a_block_gone_from_the_source_is_deleted_only_after_the_delay() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        let mirror = ["--mirror", "--delete-delay", "3s", "--mirror.max-deletions", "1"];
        run(&place, &mirror);
        std::fs::remove_dir_all(source.join(&ab[0].dir)).unwrap();
        assert_eq!(actions(&run(&place, &mirror)), [], "gone just now");
        assert_eq!(actions(&run(&place, &mirror)), [], "gone for less than the delay");
        std::thread::sleep(Duration::from_millis(3_200));
        let marked = run(&place, &mirror);
        let reason = actions(&marked);
        assert_eq!(reason, [action(&ab[0], "marked", "gone")], "{marked}");
        assert_eq!(actions(&run(&place, &mirror)), [], "marked for less than the delay");
        assert!(has(&target, &ab[0], "meta.json"));
        std::thread::sleep(Duration::from_millis(3_200));
        assert_eq!(actions(&run(&place, &mirror)), [action(&ab[0], "deleted", "")]);
        assert!(gone(&target, &ab[0]) && has(&target, &ab[1], "meta.json"), "{}", place.name());
    }
}

/// Half the source's blocks gone at once, beyond the guard: nothing is marked, the run fails
/// naming the count, and a dry run lists what a run would mark.
#[test]
fn the_guard_refuses_a_mass_deletion() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let bs = blocks((0..4).map(|i| eu1(2 * i, 2 * i + 2, i as u64 + 1)).collect(), &SynthSpec::default());
        write_folder(&source, &bs);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "25%"];
        run(&place, &mirror);
        for block in &bs[..2] {
            std::fs::remove_dir_all(source.join(&block.dir)).unwrap();
        }
        let dry = run(&place, &["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "2", "--dry-run"]);
        let would = [action(&bs[0], "would_mark", "gone"), action(&bs[1], "would_mark", "gone")];
        assert_eq!(actions(&dry), would, "{dry}");
        let ledger = target.join("bucketflow-mirror");
        let notes = support::buckets::files(&ledger);
        assert!(notes.keys().all(|p| !p.starts_with("gone")), "{}: a dry run wrote {notes:?}", place.name());
        let (code, refused) = place.replicate(&mirror);
        assert_eq!(code, Some(1), "{refused}");
        let errors = refused["errors"].to_string();
        assert!(errors.contains("2 blocks") && errors.contains("--mirror.max-deletions 25%"), "{errors}");
        assert_eq!(actions(&refused), [action(&bs[0], "refused", "gone"), action(&bs[1], "refused", "gone")]);
        for block in &bs {
            assert!(!has(&target, block, "deletion-mark.json"), "{}: {} marked", place.name(), block.dir);
        }
    }
}

/// `--mirror` with move mode is refused before anything is read or written.
#[test]
fn a_mirror_with_move_mode_is_refused() {
    let place = Place::Folder(tempfile::tempdir().unwrap());
    let bs = blocks(vec![eu1(0, 2, 1)], &SynthSpec::default());
    write_folder(&place.dir("source"), &bs);
    let out = std::process::Command::new(support::process::BIN)
        .args(["replicate", "--single-run", "--http-address", "127.0.0.1:0", "--mirror", "--mark-source-for-deletion"])
        .args(["--objstore.config", &place.yaml("source"), "--objstore-to.config", &place.yaml("target")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--mirror") && stderr.contains("move mode"), "{stderr}");
    assert!(!place.dir("target").join(&bs[0].dir).exists());
}

/// `--mirror` with a tenants layout is refused: Mimir's and Cortex's store gateways read the
/// bucket index their compactor writes, so a target without a compactor is no Mimir target.
#[test]
fn a_mirror_of_a_tenants_bucket_is_refused() {
    let place = Place::Folder(tempfile::tempdir().unwrap());
    std::fs::create_dir_all(place.dir("source")).unwrap();
    let out = std::process::Command::new(support::process::BIN)
        .args(["replicate", "--single-run", "--http-address", "127.0.0.1:0", "--mirror", "--layout", "tenants"])
        .args(["--objstore.config", &place.yaml("source"), "--objstore-to.config", &place.yaml("target")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--mirror") && stderr.contains("Thanos layout"), "{stderr}");
}

/// A deletion stopped halfway (its meta.json and some objects gone, its mark left) is no
/// visible block to a reader, and the next run finishes it.
#[test]
fn a_deletion_stopped_halfway_is_finished_by_the_next_run() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "1"];
        run(&place, &mirror);
        mark_for_deletion(&source, &ab[0]);
        run(&place, &mirror);
        // What Thanos's order leaves when it stops after meta.json and the index.
        std::fs::remove_file(target.join(&ab[0].dir).join("meta.json")).unwrap();
        std::fs::remove_file(target.join(&ab[0].dir).join("index")).unwrap();
        assert_verifies(&place);
        let finished = run(&place, &mirror);
        assert_eq!(actions(&finished), [action(&ab[0], "deleted", "")], "{finished}");
        assert!(gone(&target, &ab[0]), "{}", place.name());
    }
}

/// A deletion killed (SIGKILL) right after its meta.json went, with most of its 800 objects
/// still there: no reader sees a visible incomplete block, and the next run finishes it.
#[test]
fn a_deletion_killed_midway_is_finished_by_the_next_run() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let spec = SynthSpec { max_chunk_files: 800, min_chunk_bytes: 1, max_chunk_bytes: 1, ..SynthSpec::default() };
        let mut shape = vec![eu1(0, 2, 1), eu1(2, 4, 2)];
        let ab: Vec<SynthBlock> = shape.drain(..).map(|s| blocks(vec![s], &spec).remove(0)).collect();
        write_folder(&source, &ab);
        let mirror = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "1"];
        run(&place, &mirror);
        mark_for_deletion(&source, &ab[0]);
        run(&place, &mirror);
        let (mut child, lines) = place.spawn_replicate(&mirror);
        let mut seen = Vec::new();
        support::process::wait_for(&lines, "meta.json deleted", &mut seen);
        support::process::kill(&child, "-KILL");
        support::process::wait_at_most(&mut child, Duration::from_secs(30), "the killed run");
        let left = support::buckets::files(&target.join(&ab[0].dir)).len();
        assert!(!has(&target, &ab[0], "meta.json"), "{}", place.name());
        eprintln!("{}: {left} objects of the block left after the kill", place.name());
        assert_verifies(&place);
        let _ = std::fs::remove_file(place.dir("report").with_extension("json"));
        let finished = run(&place, &mirror);
        assert_eq!(actions(&finished), [action(&ab[0], "deleted", "")], "{finished}");
        assert!(gone(&target, &ab[0]) && has(&target, &ab[1], "meta.json"), "{}", place.name());
    }
}

/// Without `--mirror`, for a target with a compactor of its own: a deletion mark the source's
/// retention adds to a block already replicated is copied with `--copy-markers` (byte for byte,
/// so the target's compactor deletes it after its own delay), and not without it.
#[test]
fn a_deletion_mark_added_later_is_copied_with_copy_markers() {
    for place in Place::all() {
        let (source, target) = (place.dir("source"), place.dir("target"));
        let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
        write_folder(&source, &ab);
        run(&place, &["--copy-markers"]);
        mark_for_deletion(&source, &ab[0]);
        run(&place, &[]);
        assert!(!has(&target, &ab[0], "deletion-mark.json"), "{}: copied without --copy-markers", place.name());
        run(&place, &["--copy-markers"]);
        let mark = |dir: &Path| std::fs::read(dir.join(&ab[0].dir).join("deletion-mark.json")).unwrap();
        assert_eq!(mark(&target), mark(&source), "{}", place.name());
        assert!(!has(&target, &ab[1], "deletion-mark.json"));
    }
}

fn assert_verifies(place: &Place) {
    let out = std::process::Command::new(support::process::BIN)
        .args(["verify", "--objstore.config", &place.yaml("target")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", place.name(), String::from_utf8_lossy(&out.stderr));
}

/// A mirror as a sidecar: each run's marks and deletions are on the status page and in
/// `/api/v1/status`, and the target's marked block is drawn as marked on the viewer.
#[test]
fn a_mirror_sidecar_shows_its_marks_and_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, target) = (tmp.path().join("src"), tmp.path().join("dst"));
    let ab = blocks(vec![eu1(0, 2, 1), eu1(2, 4, 2)], &SynthSpec::default());
    write_folder(&source, &ab);
    let flags = ["--mirror", "--delete-delay", "0s", "--mirror.max-deletions", "1", "--interval", "1s"];
    let (mut child, _lines, address) = support::sidecar::sidecar_after_one_run(tmp.path(), &flags);
    mark_for_deletion(&source, &ab[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut marked, mut deleted, mut drawn) = (false, false, false);
    while !(marked && deleted && drawn) {
        assert!(std::time::Instant::now() < deadline, "marked {marked}, deleted {deleted}, drawn {drawn}");
        let (_, json) = support::sidecar::http_get(&address, "/api/v1/status");
        let status: Value = serde_json::from_str(&json).unwrap();
        for run in status["runs"].as_array().unwrap() {
            marked |= run["mirror_marked"] == 1;
            deleted |= run["mirror_deleted"] == 1;
        }
        let (_, blocks) = support::sidecar::http_get(&address, "/api/v1/blocks?state=marked");
        drawn |= blocks.contains(&ab[0].dir);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, page) = support::sidecar::http_get(&address, "/");
    assert!(page.contains("mirror (marked, deleted, refused)"), "{page}");
    assert!(gone(&target, &ab[0]) && has(&target, &ab[1], "meta.json"));
    support::process::kill(&child, "-TERM");
    child.wait().unwrap();
}
