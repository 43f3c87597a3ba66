//! Cluster mode through real processes on 127.0.0.1: several processes share one replication,
//! leave the target exactly as one process does, and stop cleanly when one of them is lost.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{assert_committed_blocks_complete, files, fs_yaml, objects, synth_folder};
use support::process::{drain, spawn, wait_at_most, wait_for, wait_for_http_address, BIN};
use support::servers;
use support::sidecar::http_get;

/// A hostfile of `n` free ports on 127.0.0.1.
fn hostfile(dir: &Path, n: usize) -> PathBuf {
    // Held together so that the ports differ, then released for the cluster to bind.
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let text: String = listeners.iter().map(|l| format!("{}\n", l.local_addr().unwrap())).collect();
    let path = dir.join(format!("hosts-{}", listeners[0].local_addr().unwrap().port()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The arguments of process `i` of `n`.
fn process_args(from: &str, to: &str, hosts: &Path, n: usize, i: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["replicate", "--objstore.config", from, "--objstore-to.config", to, "--single-run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--http-address", "127.0.0.1:0", "--workers", "2"].map(String::from));
    args.extend([format!("--processes={n}"), format!("--process={i}"), format!("--hostfile={}", hosts.display())]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs a cluster of `n` processes to the end; returns process 0's report and every output.
fn run_cluster(dir: &Path, from: &str, to: &str, n: usize) -> (serde_json::Value, Vec<Output>) {
    let hosts = hostfile(dir, n);
    let report = dir.join(format!("report-{n}.json"));
    let report_flag = format!("--report-file={}", report.display());
    let children: Vec<Child> = (0..n)
        .map(|i| {
            Command::new(BIN)
                .args(process_args(from, to, &hosts, n, i, &[&report_flag]))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "process {i} of {n} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    (serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap(), outputs)
}

fn count(report: &serde_json::Value, outcome: &str) -> u64 {
    report["counts"][outcome].as_u64().unwrap()
}

fn spec() -> SynthSpec {
    SynthSpec { groups: 8, blocks_per_group: 3, ..SynthSpec::default() }
}

#[test]
fn two_and_three_processes_leave_the_target_as_one_process_does() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let n = synth_folder(&src, spec()) as u64;
    let from = fs_yaml(&src);

    let single = tmp.path().join("single");
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &from, "--objstore-to.config", &fs_yaml(&single)])
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = files(&single);
    assert_eq!(expected.keys().filter(|p| p.ends_with("meta.json")).count() as u64, n);

    for processes in [2, 3] {
        let dst = tmp.path().join(format!("cluster-{processes}"));
        let to = fs_yaml(&dst);
        let (report, outputs) = run_cluster(tmp.path(), &from, &to, processes);
        assert_eq!(count(&report, "replicated"), n, "process 0 reports every block of the cluster: {report}");
        assert_eq!(report["blocks"].as_array().unwrap().len() as u64, n, "{report}");
        assert_eq!(files(&dst), expected, "{processes} processes leave the target as one process does");
        // Commits are logged where they happen: each block once in the whole cluster, and the
        // groups spread over more than one process.
        let commits: Vec<u64> = outputs
            .iter()
            .map(|out| String::from_utf8_lossy(&out.stderr).matches("message=\"block replicated\"").count() as u64)
            .collect();
        assert_eq!(commits.iter().sum::<u64>(), n, "commits per process: {commits:?}");
        assert!(commits.iter().filter(|&&c| c > 0).count() > 1, "one process committed everything: {commits:?}");

        let (again, _) = run_cluster(tmp.path(), &from, &to, processes);
        assert_eq!(count(&again, "already_replicated"), n, "a re-run of the cluster copies nothing: {again}");
        assert_eq!(again["bytes_copied"], 0);
    }
}

#[test]
fn two_and_three_processes_replicate_into_s3() {
    let Some(s3) = servers::s3s_fs(&["target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let n = synth_folder(&src, spec()) as u64;
    let host = s3.endpoint.trim_start_matches("http://");
    for processes in [2, 3] {
        let prefix = format!("cluster-{processes}");
        let to = format!(
            "type: S3\nconfig:\n  bucket: target\n  endpoint: {host}\n  region: {}\n  access_key: {}\n  secret_key: {}\n  insecure: true\nprefix: {prefix}\n",
            s3.region, s3.access_key, s3.secret_key
        );
        let (report, _) = run_cluster(tmp.path(), &fs_yaml(&src), &to, processes);
        assert_eq!(count(&report, "replicated"), n, "{processes} processes: {report}");
        // s3s-fs keeps each bucket as a folder: the objects are there byte for byte.
        assert_eq!(files(&s3.data_dir().join("target").join(&prefix)), files(&src), "{processes} processes");
    }
}

#[test]
fn a_lost_process_stops_the_others_and_a_restart_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let n = synth_folder(&src, SynthSpec { groups: 3, blocks_per_group: 6, ..SynthSpec::default() });
    let (from, to) = (fs_yaml(&src), fs_yaml(&dst));
    let hosts = hostfile(tmp.path(), 2);
    let slow = ["--concurrency", "2", "--debug.latency", "40ms"];
    let spawn_process = |i| {
        let args = process_args(&from, &to, &hosts, 2, i, &slow);
        spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (mut leader, leader_lines) = spawn_process(0);
    let (mut peer, _peer_lines) = spawn_process(1);
    let mut seen = Vec::new();
    wait_for(&leader_lines, "block replicated", &mut seen);
    peer.kill().unwrap(); // SIGKILL: the peer gets no chance to say goodbye.
    peer.wait().unwrap();

    let status = wait_at_most(&mut leader, Duration::from_secs(60), "process 0 after losing its peer");
    drain(&leader_lines, &mut seen);
    assert!(!status.success(), "losing a peer fails the run: {seen:#?}");
    assert!(seen.iter().any(|l| l.contains("peer process was lost")), "the error says why: {seen:#?}");

    let source = files(&src);
    let committed = assert_committed_blocks_complete(&source, &files(&dst));
    assert!(committed.len() < n, "the run was cut short: {} of {n} committed", committed.len());

    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &from, "--objstore-to.config", &to])
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(objects(&dst), source, "a restart completes everything");
}

#[test]
fn a_process_with_other_settings_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    synth_folder(&src, SynthSpec { groups: 2, blocks_per_group: 2, ..SynthSpec::default() });
    let (from, to) = (fs_yaml(&src), fs_yaml(&tmp.path().join("dst")));
    let hosts = hostfile(tmp.path(), 2);
    // Two processes, each from its program with its extra arguments: both refuse to run, and each
    // error says why.
    let refused = |programs: [&Path; 2], extra: [&[&str]; 2]| -> Vec<String> {
        let children: Vec<Child> = (0..2)
            .map(|i| {
                Command::new(programs[i])
                    .args(process_args(&from, &to, &hosts, 2, i, extra[i]))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let errors = children
            .into_iter()
            .enumerate()
            .map(|(i, child)| {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                assert_eq!(out.status.code(), Some(1), "process {i}: {stderr}");
                assert!(stderr.contains("settings differ from process 0's"), "process {i}: {stderr}");
                stderr
            })
            .collect();
        assert!(files(&tmp.path().join("dst")).is_empty(), "nothing was replicated");
        errors
    };
    let bin = Path::new(BIN);
    // Process 1 was started with other replica labels and another strategy.
    for stderr in refused([bin, bin], [&[], &["--deduplication.replica-label", "replica", "--strategy", "serial"]]) {
        assert!(stderr.contains(r#"engine.strategy: "grouped" in process 0, "serial" in process 1"#), "{stderr}");
        assert!(stderr.contains("engine.replica_labels"), "{stderr}");
    }

    // And every process must run the same build: here a copy of the binary with one byte more,
    // which runs as it did.
    let other_build = tmp.path().join("bucketflow-other-build");
    let mut bytes = std::fs::read(BIN).unwrap();
    bytes.push(0);
    std::fs::write(&other_build, bytes).unwrap();
    std::fs::set_permissions(&other_build, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for stderr in refused([bin, &other_build], [&[], &[]]) {
        assert!(stderr.contains("build:"), "{stderr}");
    }

    // And --workers must be given, since each machine's default may differ.
    let mut args = process_args(&from, &to, &hosts, 2, 0, &[]);
    let at = args.iter().position(|a| a == "--workers").unwrap();
    args.drain(at..at + 2);
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers must be given in cluster mode"));
}

#[test]
fn process_0s_status_page_shows_every_process_of_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let n = synth_folder(&src, SynthSpec { groups: 4, blocks_per_group: 6, ..SynthSpec::default() });
    let (from, to) = (fs_yaml(&src), fs_yaml(&dst));
    let hosts = hostfile(tmp.path(), 2);
    // Slow enough that the run lasts a few seconds, and a sidecar (no --single-run) so that
    // process 0 keeps serving after it.
    let extra = ["--concurrency", "2", "--debug.latency", "30ms", "--interval", "1h"];
    let spawn_process = |i| {
        let args: Vec<String> =
            process_args(&from, &to, &hosts, 2, i, &extra).into_iter().filter(|a| a != "--single-run").collect();
        spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (mut leader, leader_lines) = spawn_process(0);
    let (mut peer, _peer_lines) = spawn_process(1);
    let mut seen = Vec::new();
    let address = wait_for_http_address(&leader_lines, &mut seen);

    // While the run goes on, both processes report to process 0.
    let status =
        |address: &str| -> serde_json::Value { serde_json::from_str(&http_get(address, "/api/v1/status").1).unwrap() };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let during = loop {
        let now = status(&address);
        let processes = now["processes"].as_array().unwrap();
        if processes.len() == 2 && processes.iter().all(|p| p["blocks_total"].as_u64().unwrap() > 0) {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "never heard of both processes: {now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let sum = |status: &serde_json::Value, field: &str| -> u64 {
        status["processes"].as_array().unwrap().iter().map(|p| p[field].as_u64().unwrap()).sum()
    };
    assert!(sum(&during, "blocks_total") <= n as u64, "{during}");

    wait_for(&leader_lines, "replication run finished", &mut seen);
    // After the run, each process's last word settles every block the cluster selected.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = status(&address);
        if sum(&now, "blocks_done") == n as u64 {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the processes' counts never added up to {n}: {now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sum(&after, "blocks_total"), n as u64, "{after}");
    let page = http_get(&address, "/").1;
    assert!(page.contains("Processes of the cluster"), "{page}");
    assert_eq!(after["groups"].as_array().unwrap().len(), 4, "the last run's groups, from every process: {after}");

    leader.kill().unwrap();
    peer.kill().unwrap();
    leader.wait().unwrap();
    peer.wait().unwrap();
}
