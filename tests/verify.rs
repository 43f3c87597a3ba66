//! `bucketflow verify` through the binary: after a replication the target verifies clean; a
//! broken bucket exits 1 and the output names each broken block and what is wrong.

mod support;

use std::process::{Command, Output};

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{fs_yaml, synth_folder};

const BIN: &str = env!("CARGO_BIN_EXE_bucketflow");

fn verify(args: &[&str]) -> Output {
    Command::new(BIN).arg("verify").args(args).output().unwrap()
}

#[test]
fn a_replicated_target_verifies_clean_and_a_broken_one_fails_naming_its_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let n = synth_folder(&src, SynthSpec { groups: 2, blocks_per_group: 3, ..SynthSpec::default() });
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &fs_yaml(&src), "--objstore-to.config", &fs_yaml(&dst)])
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let url = format!("file://{}", dst.display());
    let out = verify(&["--url", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{n} complete, 0 incomplete")), "{stdout}");

    // Break one block (a chunk of the same size with other bytes) and leave a partial upload.
    let mut dirs: Vec<_> = std::fs::read_dir(&dst).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let chunk = dirs[0].join("chunks/000001");
    let len = std::fs::metadata(&chunk).unwrap().len() as usize;
    std::fs::write(&chunk, vec![0u8; len]).unwrap();
    std::fs::remove_file(dirs[1].join("meta.json")).unwrap();
    let report = tmp.path().join("audit.json");
    let yaml = fs_yaml(&dst);
    let out = verify(&["--objstore.config", &yaml, "--report-file", report.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a visible incomplete block fails verify: {stdout}");
    let broken = dirs[0].file_name().unwrap().to_str().unwrap();
    let line = stdout.lines().find(|l| l.contains(broken)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("INCOMPLETE") && line.contains("chunks/000001: SHA256"), "{line}");
    assert!(stdout.contains("partial uploads (no meta.json)"), "{stdout}");
    assert!(stdout.contains(dirs[1].file_name().unwrap().to_str().unwrap()), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["counts"]["incomplete"], 1, "{json}");
    assert_eq!(json["counts"]["partial"], 1, "{json}");

    // Sizes only: the same-size chunk passes, so the bucket verifies (the partial upload is no
    // visible block).
    let out = verify(&["--url", &url, "--skip-hashes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn verify_needs_one_bucket_and_names_a_bad_one() {
    let out = verify(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--objstore.config-file"));
    let out = verify(&["--url", "file:///nonexistent/bucketflow-verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/bucketflow-verify") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_tenants_bucket_is_audited_tenant_by_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    for (tenant, seed) in [("team-a", 1), ("team-b", 2)] {
        synth_folder(&bucket.join(tenant), SynthSpec { groups: 1, blocks_per_group: 2, seed, ..SynthSpec::default() });
    }
    let mut blocks: Vec<_> = std::fs::read_dir(bucket.join("team-b")).unwrap().map(|e| e.unwrap().path()).collect();
    blocks.sort();
    std::fs::remove_file(blocks[0].join("index")).unwrap();
    let url = format!("file://{}", bucket.display());
    let out = verify(&["--url", &url, "--layout", "tenants"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("group team-a/0@") && stdout.contains("group team-b/0@"), "{stdout}");
    assert!(stdout.contains("3 complete, 1 incomplete"), "{stdout}");
    let broken = blocks[0].file_name().unwrap().to_str().unwrap();
    assert!(stdout.lines().any(|l| l.contains(broken) && l.contains("INCOMPLETE")), "{stdout}");
}
