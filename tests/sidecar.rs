//! The sidecar surface of a real process: metrics and probes over HTTP, and SIGTERM mid-run.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::buckets::{assert_committed_blocks_complete, files};
use support::process::{drain, kill, spawn, wait_for, BIN};
use support::sidecar::{bucket, bucket_with_a_broken_block, http_get, sidecar_after_one_run};

#[test]
fn metrics_and_probes_over_http_after_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let n = bucket(&tmp.path().join("src"), 2, 3);
    let (mut child, _lines, address) = sidecar_after_one_run(tmp.path(), &[]);

    let (status, body) = http_get(&address, "/-/healthy");
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&address, "/-/ready").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http_get(&address, "/metrics");
    assert_eq!(status, 200);
    let report_objects: u64 =
        files(&tmp.path().join("dst")).keys().filter(|p| !p.ends_with("meta.json")).count() as u64;
    for expected in [
        "thanos_replicate_replication_runs_total{result=\"success\"} 1".to_string(),
        // Both results exist from the start, and the meta fetcher's gauge the Thanos dashboard reads.
        "thanos_replicate_replication_runs_total{result=\"error\"} 0".to_string(),
        format!("blocks_meta_synced{{state=\"loaded\"}} {n}"),
        "blocks_meta_synced{state=\"failed\"} 0".to_string(),
        "thanos_replicate_replication_run_duration_seconds_count{result=\"success\"} 1".to_string(),
        "thanos_replicate_replication_run_duration_seconds_bucket{le=\"86400.0\",result=\"success\"} 1".to_string(),
        format!("thanos_replicate_blocks_replicated_total {n}"),
        "thanos_replicate_blocks_already_replicated_total 0".to_string(),
        format!("thanos_replicate_objects_replicated_total {report_objects}"),
        "bucketflow_blocks_held_back_total 0".to_string(),
        "bucketflow_objects_in_flight 0".to_string(),
        "bucketflow_requests_total{bucket=\"source\",operation=\"get\"}".to_string(),
        "bucketflow_requests_total{bucket=\"target\",operation=\"put\"}".to_string(),
        "bucketflow_request_duration_seconds_count{bucket=\"target\",operation=\"put\"}".to_string(),
        "bucketflow_requests_total{bucket=\"target\",operation=\"list\"}".to_string(),
    ] {
        assert!(metrics.contains(&expected), "missing {expected:?} in:\n{metrics}");
    }
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bucketflow_bytes_copied_total{method=\"stream\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(metrics.contains("bucketflow_bytes_copied_total{method=\"server_side\"} 0"), "{metrics}");
    let on_disk: u64 = files(&tmp.path().join("dst"))
        .iter()
        .filter(|(p, _)| !p.ends_with("meta.json"))
        .map(|(_, d)| d.len() as u64)
        .sum();
    assert_eq!(bytes, on_disk);

    // Between runs a signal is a clean stop.
    kill(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_mid_run_leaves_no_incomplete_block_and_a_second_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let n = bucket(&src, 3, 6);
    let (from, to) = (format!("file://{}", src.display()), format!("file://{}", dst.display()));
    let report = tmp.path().join("report.json");
    let (mut child, lines) = spawn(&[
        "replicate",
        "--from",
        &from,
        "--to",
        &to,
        "--single-run",
        "--http-address",
        "127.0.0.1:0",
        "--concurrency",
        "2",
        "--debug.latency",
        "40ms",
        "--report-file",
        report.to_str().unwrap(),
    ]);
    let mut seen = Vec::new();
    wait_for(&lines, "block replicated", &mut seen);
    kill(&child, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "exit status says it was interrupted");
    drain(&lines, &mut seen);
    assert!(seen.iter().any(|l| l.contains("signal received")), "{seen:#?}");

    // Every block with a meta.json in the target is complete and byte-equal to the source.
    let source = files(&src);
    let committed = assert_committed_blocks_complete(&source, &files(&dst));
    assert!(!committed.is_empty() && committed.len() < n, "interrupted mid-run: {} of {n} committed", committed.len());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(report["blocks"].as_array().unwrap().iter().any(|b| b["cause"] == "interrupted"), "{report}");

    let out = Command::new(BIN)
        .args(["replicate", "--from", &from, "--to", &to, "--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files(&dst), source, "the second run completes everything");
}

#[test]
fn the_status_page_names_each_group_and_what_is_held_back_behind_what() {
    let tmp = tempfile::tempdir().unwrap();
    let (broken, _, _) = bucket_with_a_broken_block(&tmp.path().join("src"));
    let (mut child, _lines, address) = sidecar_after_one_run(tmp.path(), &[]);

    let (status, json) = http_get(&address, "/api/v1/status");
    assert_eq!(status, 200, "{json}");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["runs"][0]["result"], "error", "{status}");
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{status}");
    let held: Vec<&serde_json::Value> =
        groups.iter().flat_map(|g| g["blocks"].as_array().unwrap()).filter(|b| b["outcome"] == "held_back").collect();
    assert_eq!(held.len(), 2, "{status}");
    assert!(held.iter().all(|b| b["detail"] == format!("behind {broken}")), "{status}");

    let (status, page) = http_get(&address, "/");
    assert_eq!(status, 200);
    for group in groups {
        assert!(page.contains(&format!("group {}", group["group"].as_str().unwrap())), "{page}");
    }
    assert!(page.contains(&format!("behind {broken}")), "the page names the block the others wait for");
    assert!(page.contains("<svg") && page.contains("http-equiv=\"refresh\""), "a time line, and it refreshes itself");
    assert!(
        !page.contains("<script") && !page.contains("http://") && !page.contains("https://"),
        "no script, no remote asset"
    );
    kill(&child, "-TERM");
    child.wait().unwrap();
}

/// The replication lag of each block committed, from its meta.json's appearance in the source,
/// and the backlog the run leaves (a broken block fails and holds back two more of its group),
/// on /metrics, /api/v1/status and the page. Then the block is repaired: the backlog empties.
#[test]
fn replication_lag_and_backlog_after_each_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, held, repair) = bucket_with_a_broken_block(&tmp.path().join("src"));
    let (mut child, lines, address) = sidecar_after_one_run(tmp.path(), &["--interval", "2s"]);
    let metric = |metrics: &str, name: &str| -> f64 {
        let line =
            metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (_, metrics) = http_get(&address, "/metrics");
    // The three blocks of the other group committed, each with its lag.
    assert_eq!(metric(&metrics, "bucketflow_replication_lag_seconds_count"), 3.0, "{metrics}");
    assert_eq!(metric(&metrics, "bucketflow_pending_blocks"), 1.0 + held.len() as f64, "{metrics}");
    let pending_bytes = metric(&metrics, "bucketflow_pending_bytes");
    let held_bytes: u64 = held
        .iter()
        .flat_map(|b| files(&tmp.path().join("src").join(b)).into_iter())
        .filter(|(p, _)| !p.ends_with("meta.json"))
        .map(|(_, d)| d.len() as u64)
        .sum();
    // The broken block adds nothing: its plan failed, so what it would copy is unknown.
    assert_eq!(pending_bytes, held_bytes as f64, "{metrics}");
    assert!(metric(&metrics, "bucketflow_oldest_pending_seconds") > 0.0, "{metrics}");
    let (_, json) = http_get(&address, "/api/v1/status");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["runs"][0]["pending_blocks"], 3, "{status}");
    assert!(status["runs"][0]["lag_p99_seconds"].as_f64().is_some(), "{status}");
    assert!(http_get(&address, "/").1.contains("lag p50 / p99"));

    repair();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        wait_for(&lines, "replication run finished", &mut seen);
        let (_, metrics) = http_get(&address, "/metrics");
        if metric(&metrics, "bucketflow_pending_blocks") == 0.0 {
            assert_eq!(metric(&metrics, "bucketflow_pending_bytes"), 0.0);
            assert_eq!(metric(&metrics, "bucketflow_oldest_pending_seconds"), 0.0);
            assert_eq!(metric(&metrics, "bucketflow_replication_lag_seconds_count"), 6.0, "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "the backlog never emptied: {metrics}");
    }
    kill(&child, "-TERM");
    child.wait().unwrap();
}
