//! GCS against a real emulator, fake-gcs-server (`.ci/install-test-servers.sh` installs it):
//! a Thanos bucket on it is replicated to a folder, and audited, with the emulator named the way
//! Google's clients (and so Thanos's) are told of one, `STORAGE_EMULATOR_HOST`, and the bucket
//! given as Thanos's GCS YAML. The emulator serves object_store's reads (listings, GET, ranged
//! GET, HEAD) and deletes, but refuses its writes (`400 invalid uploadType` to a PUT, a copy and
//! every multipart call), so writes to GCS and server-side copies between GCS buckets are tested
//! against the hand-made fake in `src/objstore/gcs_copy.rs` and `src/objstore/tests.rs`.

mod support;

use std::process::{Command, Output};

use bucketflow_dataflows::testkit::synth::{generate, SynthSpec};
use support::buckets::{assert_committed_blocks_complete, files, fs_yaml, write_folder};
use support::process::BIN;
use support::servers::{fake_gcs, Server};

const GCS_YAML: &str = "type: GCS\nconfig:\n  bucket: blocks\n";

fn bucketflow(server: &Server, args: &[&str]) -> Output {
    let host = server.endpoint.trim_start_matches("http://");
    Command::new(BIN).args(args).env("STORAGE_EMULATOR_HOST", host).output().unwrap()
}

#[test]
fn a_bucket_on_the_gcs_emulator_is_replicated_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 3, ..SynthSpec::default() });
    let source = tmp.path().join("source");
    write_folder(&source, &blocks);
    let Some(server) = fake_gcs(|data| write_folder(&data.join("blocks"), &blocks)) else { return };

    let target = tmp.path().join("target");
    let report_file = tmp.path().join("report.json");
    let args = ["replicate", "--objstore.config", GCS_YAML, "--objstore-to.config", &fs_yaml(&target)];
    let args = [&args[..], &["--single-run", "--http-address", "127.0.0.1:0", "--report-file"]].concat();
    let out = bucketflow(&server, &[&args[..], &[report_file.to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["counts"]["replicated"], blocks.len(), "{report}");
    let committed = assert_committed_blocks_complete(&files(&source), &files(&target));
    assert_eq!(committed.len(), blocks.len());

    // The audit reads every object back (the hashes meta.json lists), by ranged GETs.
    let out = bucketflow(&server, &["verify", "--objstore.config", GCS_YAML]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // A visible block that loses its index (a DELETE, which the emulator serves) is found.
    let broken = &blocks[1].dir;
    let status = delete(&server, &format!("/blocks/{broken}%2Findex"));
    assert_eq!(status, 200);
    let out = bucketflow(&server, &["verify", "--objstore.config", GCS_YAML]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(broken.as_str()), "{said}");
}

#[test]
fn writes_are_what_the_emulator_refuses() {
    // Recorded, so that the day an emulator takes object_store's XML writes this test says so.
    let Some(server) = fake_gcs(|data| std::fs::create_dir_all(data.join("blocks")).unwrap()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    write_folder(&source, &generate(&SynthSpec { groups: 1, blocks_per_group: 1, ..SynthSpec::default() }));
    let args = ["replicate", "--objstore.config", &fs_yaml(&source), "--objstore-to.config", GCS_YAML];
    let out = bucketflow(
        &server,
        &[&args[..], &["--single-run", "--http-address", "127.0.0.1:0", "--retries", "0"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid uploadType"), "{stderr}");
}

/// One DELETE over HTTP/1.0; the status.
fn delete(server: &Server, path: &str) -> u16 {
    use std::io::{Read, Write};
    let host = server.endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "DELETE {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}
