//! Bad blocks in a source bucket, through the binary: each gets an outcome and an error that
//! names it, nothing panics, and the good blocks beside them are replicated.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::process::BIN;

/// ULIDs of the test blocks, one per case.
const GOOD_OLD: &str = "01HF856H80000000000000000A";
const GOOD_NEW: &str = "01HF856H80000000000000000B";
const CORRUPT: &str = "01HF856H80000000000000000C";
const OVERSIZED: &str = "01HF856H80000000000000000D";
const VERSION_2: &str = "01HF856H80000000000000000E";
const ESCAPING: &str = "01HF856H80000000000000000F";
const ENCODED: &str = "01HF856H80000000000000000G";
const NESTED: &str = "01HF856H80000000000000000H";
const NO_LABELS: &str = "01HF856H80000000000000000J";

fn meta(id: &str, labels: Value, min_time: i64, version: u32, files: Value) -> String {
    json!({
        "ulid": id, "minTime": min_time, "maxTime": min_time + 10, "version": version,
        "compaction": {"level": 1, "sources": [id]},
        "thanos": {"labels": labels, "downsample": {"resolution": 0}, "source": "test", "files": files}
    })
    .to_string()
}

/// A block folder with an index, one chunk, `extra` objects and the given meta.json text.
fn block(root: &Path, id: &str, meta_json: &str, extra: &[&str]) {
    let dir = root.join(id);
    std::fs::create_dir_all(dir.join("chunks")).unwrap();
    std::fs::write(dir.join("index"), b"index").unwrap();
    std::fs::write(dir.join("chunks/000001"), b"chunk").unwrap();
    for rel in extra {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
    std::fs::write(dir.join("meta.json"), meta_json).unwrap();
}

#[test]
fn each_bad_block_is_named_and_the_good_ones_replicate() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let labels = |g: &str| json!({"cluster": g});
    block(&src, GOOD_OLD, &meta(GOOD_OLD, labels("good"), 0, 1, json!([])), &[]);
    block(&src, GOOD_NEW, &meta(GOOD_NEW, labels("good"), 100, 1, json!([])), &[]);
    block(&src, CORRUPT, "{\"ulid\": \"01HF", &[]);
    // Past the 64 MiB bound (a 4.3 MB meta.json, which Thanos reads, is read too).
    let padding = " ".repeat(65 * 1024 * 1024);
    block(&src, OVERSIZED, &format!("{}{padding}", meta(OVERSIZED, labels("big"), 0, 1, json!([]))), &[]);
    block(&src, VERSION_2, &meta(VERSION_2, labels("v2"), 0, 2, json!([])), &[]);
    let escaping = json!([{"rel_path": "../01HF856H80000000000000000A/index", "size_bytes": 5}]);
    block(&src, ESCAPING, &meta(ESCAPING, labels("escape"), 0, 1, escaping), &[]);
    let encoded = json!([{"rel_path": "chunks/%2E%2E/%2E%2E/index", "size_bytes": 5}]);
    block(&src, ENCODED, &meta(ENCODED, labels("encoded"), 0, 1, encoded), &[]);
    block(&src, NESTED, &meta(NESTED, labels("nested"), 0, 1, json!([])), &["chunks/deeper/000002"]);
    block(&src, NO_LABELS, &meta(NO_LABELS, json!({}), 0, 1, json!([])), &[]);
    std::fs::create_dir_all(src.join("debug")).unwrap();
    std::fs::write(src.join("debug/notes.txt"), b"not a block").unwrap();

    let report_file = tmp.path().join("report.json");
    let out = Command::new(BIN)
        .args(["replicate", "--from", &format!("file://{}", src.display())])
        .args(["--to", &format!("file://{}", dst.display()), "--single-run", "--http-address", "127.0.0.1:0"])
        .arg(format!("--report-file={}", report_file.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "failed blocks fail the run: {stderr}");

    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let outcomes: BTreeMap<String, &Value> =
        report["blocks"].as_array().unwrap().iter().map(|b| (b["block"].as_str().unwrap().to_string(), b)).collect();
    let expect = |id: &str, outcome: &str, needles: &[&str]| {
        let b = outcomes.get(id).unwrap_or_else(|| panic!("{id} is not in the report: {report:#}"));
        assert_eq!(b["outcome"], outcome, "{id}: {b}");
        let text = b.to_string();
        for needle in needles {
            assert!(text.contains(needle), "{id}: the report should say {needle:?}: {b}");
        }
    };
    expect(GOOD_OLD, "replicated", &[]);
    expect(GOOD_NEW, "replicated", &[]);
    expect(CORRUPT, "skipped", &[CORRUPT, "meta.json"]);
    expect(OVERSIZED, "failed", &["meta.json", "limit", "never reads"]);
    expect(VERSION_2, "failed", &[VERSION_2, "version 2"]);
    expect(ESCAPING, "failed", &[ESCAPING, "../01HF856H80000000000000000A/index"]);
    expect(ENCODED, "failed", &[ENCODED, "chunks/%2E%2E/%2E%2E/index"]);
    expect(NESTED, "failed", &[NESTED, "chunks/deeper/000002"]);
    expect(NO_LABELS, "filtered", &["external labels are empty"]);
    assert!(!outcomes.contains_key("debug"), "a folder that is not a block is no block");
    assert!(stderr.contains("folder=debug"), "the non-block folder is named in the log: {stderr}");

    // Only the good blocks became visible in the target, and the escaping path wrote nothing
    // outside its block.
    let mut visible: Vec<String> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    visible.sort();
    assert_eq!(visible, [GOOD_OLD, GOOD_NEW]);
    assert_eq!(std::fs::read(dst.join(GOOD_OLD).join("index")).unwrap(), b"index");
}
