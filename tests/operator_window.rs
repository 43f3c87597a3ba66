//! What operators look at, checked with their own tools: a real Prometheus scraping a sidecar
//! answers every query of Thanos's bucket-replicate dashboard and alerts and of bucketflow's own
//! dashboard and alerts; promtool's unit tests of bucketflow's alerting rules pass; headless
//! Chromium renders the status page.
//!
//! The sidecar replicates a bucket whose oldest block of one group is broken, so that failures
//! and held-back blocks have series and a place on the page.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::process::kill;
use support::servers::{installed_tool, prometheus};
use support::sidecar::{bucket_with_a_broken_block, http_get, sidecar_after_one_run};

/// The folder of the deployment examples: the alerting rules, their tests, the dashboard.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy")
}

/// The job name the Thanos mixin selects by default (`job=~"thanos-bucket-replicate.*"`).
const JOB: &str = "thanos-bucket-replicate";

/// Thanos's two bucket-replicate alerts, as its mixin renders them with the default selector
/// and `job` as the dimension.
fn thanos_alerts() -> String {
    let selector = format!("job=~\"{JOB}.*\"");
    format!(
        r#"groups:
  - name: thanos-bucket-replicate
    rules:
      - alert: ThanosBucketReplicateErrorRate
        expr: |
          (
            sum by (job) (rate(thanos_replicate_replication_runs_total{{result="error", {selector}}}[5m]))
          / on (job) group_left
            sum by (job) (rate(thanos_replicate_replication_runs_total{{{selector}}}[5m]))
          ) * 100 >= 10
        for: 5m
      - alert: ThanosBucketReplicateRunLatency
        expr: |
          (
            histogram_quantile(0.99, sum by (job) (rate(thanos_replicate_replication_run_duration_seconds_bucket{{{selector}}}[5m]))) > 20
          and
            sum by (job) (rate(thanos_replicate_replication_run_duration_seconds_bucket{{{selector}}}[5m])) > 0
          )
        for: 5m
"#
    )
}

/// Every query of Thanos's bucket-replicate dashboard (thanos-io/thanos
/// `mixin/dashboards/bucket-replicate.libsonnet`, through its grafana builder), with
/// `$namespace` and `$interval` filled in, and the inner expressions of its two alerts.
fn thanos_dashboard_queries() -> Vec<String> {
    let sel = format!("namespace=\"test\",job=~\"{JOB}.*\"");
    let runs = "thanos_replicate_replication_runs_total";
    let mut queries = vec![
        // Runs: the error share, the errors, the duration quantiles.
        format!(
            "sum by (job) (rate({runs}{{result=\"error\", {sel}}}[30s])) / sum by (job) (rate({runs}{{{sel}}}[30s]))"
        ),
        format!("sum(rate({runs}{{result=\"error\", {sel}}}[30s])) by (result)"),
    ];
    for quantile in ["0.50", "0.90", "0.99"] {
        queries.push(format!(
            "histogram_quantile({quantile}, sum by (job, le) (rate(thanos_replicate_replication_run_duration_seconds_bucket{{result=\"success\", {sel}}}[30s]))) * 1"
        ));
    }
    // Replication: the metrics panel.
    for series in [
        "thanos_replicate_origin_iterations_total",
        "thanos_replicate_origin_meta_loads_total",
        "thanos_replicate_origin_partial_meta_reads_total",
        "thanos_replicate_blocks_already_replicated_total",
        "thanos_replicate_blocks_replicated_total",
        "thanos_replicate_objects_replicated_total",
    ] {
        queries.push(format!("sum(rate({series}{{{sel}}}[30s]))"));
    }
    // The job template and the meta fetcher's gauge the dashboard reads.
    queries.push(format!("up{{{sel}}}"));
    queries.push(format!("blocks_meta_synced{{state=\"loaded\", {sel}}}"));
    queries.push(format!("blocks_meta_synced{{state=\"failed\", {sel}}}"));
    // The alerts, short of their thresholds.
    queries.push(format!(
        "sum by (job) (rate({runs}{{result=\"error\", {sel}}}[5m])) / on (job) group_left sum by (job) (rate({runs}{{{sel}}}[5m]))"
    ));
    queries.push(format!("sum by (job) (rate(thanos_replicate_replication_run_duration_seconds_bucket{{{sel}}}[5m]))"));
    queries
}

/// Asks Prometheus at `port` for an instant query: the result vector, or the error text.
fn query(port: u16, promql: &str) -> Result<Vec<serde_json::Value>, String> {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (status, body) = http_get(&format!("127.0.0.1:{port}"), &format!("/api/v1/query?query={encoded}"));
    let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("{status}: {answer}"));
    }
    Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Waits until `promql` has a series in Prometheus at `port` (a minute at most).
fn wait_for_series(port: u16, promql: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(port, promql).map_or(true, |r| r.is_empty()) {
        assert!(Instant::now() < deadline, "no series for {promql}: up is {:?}", query(port, "up"));
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn promtool_unit_tests_of_the_alerting_rules_pass() {
    let Some(promtool) = installed_tool("promtool", &["--version"]) else { return };
    for args in [["check", "rules", "bucketflow-alerts.yml"], ["test", "rules", "bucketflow-alerts.test.yml"]] {
        let out = Command::new(&promtool).args(args).current_dir(deploy()).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_real_prometheus_answers_every_query_of_both_dashboards_and_all_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, repair) = bucket_with_a_broken_block(&tmp.path().join("src"));
    // A run every second, so that counters move between scrapes.
    let (mut child, _lines, address) = sidecar_after_one_run(tmp.path(), &["--interval", "1s"]);
    let thanos_rules = tmp.path().join("thanos-alerts.yml");
    std::fs::write(&thanos_rules, thanos_alerts()).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n  - {}\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{address}']\n        labels:\n          namespace: test\n",
        thanos_rules.display(),
        deploy().join("bucketflow-alerts.yml").display(),
    );
    let Some(server) = prometheus(&config) else {
        kill(&child, "-TERM");
        child.wait().unwrap();
        return;
    };
    let port = server.port();

    // While the block is broken, runs fail, the group is held back run after run, and the
    // failure has its series.
    wait_for_series(port, "bucketflow_group_held_back_runs >= 2");
    let failures = query(port, "bucketflow_block_failures_total{reason=\"source\"}").unwrap();
    assert!(!failures.is_empty(), "a failure by cause");
    let held = query(port, "bucketflow_group_held_back_runs").unwrap();
    assert_eq!(held.len(), 1, "one group held back: {held:?}");
    // Then the block is put right: runs succeed (rate() needs two samples in its window, of a
    // sidecar that has run in between), and the held-back group's series goes.
    repair();
    wait_for_series(
        port,
        &format!("increase(thanos_replicate_replication_runs_total{{result=\"success\", job=\"{JOB}\"}}[30s]) > 0"),
    );
    wait_for_series(port, "absent(bucketflow_group_held_back_runs)");

    for promql in thanos_dashboard_queries() {
        let result = query(port, &promql).unwrap_or_else(|e| panic!("{promql}: {e}"));
        assert!(!result.is_empty(), "no series for the Thanos dashboard's {promql}");
    }

    // bucketflow's own dashboard: every query is valid, and every one has a series here but the
    // held-back panels (this bucket's metas are all readable, and its group is repaired).
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join("bucketflow-dashboard.json")).unwrap()).unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "30s").replace("$job", JOB);
            let result = query(port, &expr).unwrap_or_else(|e| panic!("{}: {expr}: {e}", panel["title"]));
            if !expr.contains("bucketflow_every_group_held_back_by")
                && !expr.contains("bucketflow_held_back_by_target_block")
                && !expr.contains("bucketflow_group_held_back_runs")
                // This sidecar is no mirror: no block is marked, so no reason has a series.
                && !expr.contains("bucketflow_mirror_blocks_marked_total")
            {
                assert!(!result.is_empty(), "no series for panel {}: {expr}", panel["title"]);
            }
            queries += 1;
        }
    }
    assert!(queries >= 15, "the dashboard has its queries ({queries})");

    // Every alerting rule, Thanos's and bucketflow's, evaluates without error.
    let (_, rules) = http_get(&format!("127.0.0.1:{port}"), "/api/v1/rules");
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let rules: Vec<&serde_json::Value> =
        rules["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    assert_eq!(rules.len(), 11, "Thanos's two alerts and bucketflow's nine: {rules:#?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http_get(&format!("127.0.0.1:{port}"), "/api/v1/rules");
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        let health: Vec<(String, String)> = answer["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["health"].as_str().unwrap().to_string()))
            .collect();
        if health.iter().all(|(_, h)| h == "ok") {
            break;
        }
        assert!(
            Instant::now() < deadline && health.iter().all(|(_, h)| h != "err"),
            "a rule fails to evaluate: {answer:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    kill(&child, "-TERM");
    child.wait().unwrap();
}

#[test]
fn headless_chromium_renders_the_held_back_block_and_the_block_it_waits_for() {
    let Some(chromium) = installed_tool("chromium", &["--headless", "--no-sandbox", "--version"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (broken, held, _) = bucket_with_a_broken_block(&tmp.path().join("src"));
    let (mut child, _lines, address) = sidecar_after_one_run(tmp.path(), &[]);
    let (_, json) = http_get(&address, "/api/v1/status");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();

    let dom = support::browser::dom(&chromium, &format!("http://{address}/"));
    assert!(dom.contains("</html>"), "{dom}");
    for group in status["groups"].as_array().unwrap() {
        let name = group["group"].as_str().unwrap();
        assert!(dom.contains(&format!("group {name}")), "the page names group {name}:\n{dom}");
    }
    assert!(dom.contains(&broken), "the page names the failed block {broken}");
    for block in &held {
        assert!(dom.contains(block.as_str()), "the page names the held-back block {block}");
    }
    assert!(dom.contains(&format!("behind {broken}")), "the page says what the held-back blocks wait for");
    kill(&child, "-TERM");
    child.wait().unwrap();
}
