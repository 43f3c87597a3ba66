//! The operator controls through the binary, on folders: a tenants bucket renamed and selected,
//! markers copied, and move mode's deletion marks in the source.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{files, synth_folder};

const BIN: &str = env!("CARGO_BIN_EXE_bucketflow");

/// One single run from folder `src` to folder `dst`.
fn run(src: &Path, dst: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["replicate", "--from", &format!("file://{}", src.display())])
        .args(["--to", &format!("file://{}", dst.display()), "--single-run", "--http-address", "127.0.0.1:0"])
        .args(extra)
        .output()
        .unwrap()
}

/// A run that must succeed; its report.
fn replicate(src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    let report = dst.with_extension("report.json");
    let out = run(src, dst, &[&["--report-file", report.to_str().unwrap()], extra].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap()
}

#[test]
fn a_tenants_bucket_is_selected_and_renamed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    for (tenant, seed) in [("anonymous", 1), ("team-b", 2), ("team-c", 3)] {
        synth_folder(&src.join(tenant), SynthSpec { groups: 2, blocks_per_group: 2, seed, ..SynthSpec::default() });
    }
    std::fs::write(src.join("anonymous/bucket-index.json.gz"), b"index of blocks").unwrap();
    let report = replicate(
        &src,
        &dst,
        &["--layout", "tenants", "--enabled-tenants", "anonymous,team-b", "--tenant-mapping", "anonymous=team-a"],
    );
    assert_eq!(report["counts"]["replicated"], 8, "{report}");
    let mut tenants: Vec<_> =
        std::fs::read_dir(&dst).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    tenants.sort();
    assert_eq!(tenants, ["team-a", "team-b"]);
    let mut expected = files(&src.join("anonymous"));
    expected.retain(|p, _| !p.ends_with("bucket-index.json.gz"));
    assert_eq!(files(&dst.join("team-a")), expected, "blocks only, byte for byte, under the new name");
}

#[test]
fn markers_and_move_mode_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    synth_folder(&src, SynthSpec { groups: 1, blocks_per_group: 3, ..SynthSpec::default() });
    let mut blocks: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    blocks.sort();
    std::fs::write(blocks[0].join("no-compact-mark.json"), b"{\"version\":1}").unwrap();
    let before = files(&src);

    let report = replicate(&src, &dst, &["--copy-markers"]);
    assert_eq!(report["counts"]["replicated"], 3);
    let name = blocks[0].file_name().unwrap();
    assert!(dst.join(name).join("no-compact-mark.json").exists());
    assert_eq!(files(&src), before, "the source is untouched without move mode");

    let report = replicate(&src, &dst, &["--copy-markers", "--mark-source-for-deletion"]);
    assert_eq!(report["counts"]["already_replicated"], 3, "{report}");
    assert_eq!(report["counts"]["marked_in_source"], 3, "{report}");
    for block in &blocks {
        let mark: serde_json::Value =
            serde_json::from_slice(&std::fs::read(block.join("deletion-mark.json")).unwrap()).unwrap();
        assert_eq!(mark["id"], block.file_name().unwrap().to_str().unwrap());
    }
    let mut after = files(&src);
    after.retain(|p, _| !p.ends_with("deletion-mark.json"));
    assert_eq!(after, before, "deletion marks are the only writes to the source");
    assert!(!dst.join(name).join("deletion-mark.json").exists(), "and they are never copied");
    // Nor later, without move mode: the target's copy is the one that stays.
    let report = replicate(&src, &dst, &["--copy-markers"]);
    assert_eq!(report["counts"]["already_replicated"], 3, "{report}");
    for block in &blocks {
        assert!(!dst.join(block.file_name().unwrap()).join("deletion-mark.json").exists(), "{report}");
    }
}

#[test]
fn move_mode_refuses_a_target_that_shares_the_source_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    synth_folder(&src, SynthSpec { groups: 1, blocks_per_group: 2, ..SynthSpec::default() });
    let before = files(&src);
    for to in [src.clone(), src.join("copy")] {
        let out = run(&src, &to, &["--mark-source-for-deletion"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: {stderr}", to.display());
        assert!(stderr.contains("marking would delete the only copy"), "{stderr}");
    }
    let _ = std::fs::remove_dir(src.join("copy"));
    assert_eq!(files(&src), before, "nothing was marked or copied");
}
