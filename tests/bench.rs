//! `bucketflow bench` through the binary: every strategy and level runs, the results agree on the
//! workload, the safe strategies commit with no violation, and the output folder holds the table,
//! the JSON and the chart.

mod support;

use std::path::Path;
use std::process::Command;

use support::process::BIN;

fn bench(out: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(BIN)
        .args(["bench", "--groups", "2", "--blocks-per-group", "4", "--max-chunk-bytes", "4096"])
        .arg(format!("--out={}", out.display()))
        .args(extra)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let json = std::fs::read(out.join("results.json")).expect("results.json is written");
    serde_json::from_slice(&json).expect("results.json is a list of runs")
}

#[test]
fn simulated_bench_runs_every_strategy_and_writes_table_json_and_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let runs = bench(&out, &["--latency", "2ms", "--concurrency", "2,8"]);
    let names: Vec<(String, u64)> = runs
        .iter()
        .map(|r| (r["strategy"].as_str().unwrap().to_string(), r["concurrency"].as_u64().unwrap()))
        .collect();
    let expected = [("grouped", 2), ("grouped", 8), ("serial", 1), ("unordered", 2), ("unordered", 8)];
    assert_eq!(names, expected.map(|(s, c)| (s.to_string(), c)).to_vec());
    let bytes = runs[0]["bytes"].as_u64().unwrap();
    assert!(bytes > 0);
    for r in &runs {
        assert_eq!(r["blocks"], 8, "every block is replicated: {r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert_eq!(r["bytes"].as_u64(), Some(bytes), "every run copies the same workload: {r}");
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["lower_bound_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["requests"]["target put"].as_u64().unwrap() > 0, "{r}");
        if r["strategy"] != "unordered" {
            assert_eq!(r["violations"], 0, "a safe strategy broke a promise: {r}");
        }
    }
    assert_eq!(runs[2]["in_flight"], 1, "serial has one object in flight");
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(table.contains("| grouped | 8 | 8 |"), "{table}");
    assert!(table.contains("Requests by bucket and operation"), "{table}");
    let svg = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("grouped") && svg.contains("serial"), "{svg}");
}

#[test]
fn bench_on_real_buckets_fills_an_empty_source_and_writes_each_run_under_its_own_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, target) = (tmp.path().join("source"), tmp.path().join("target"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let yaml = |dir: &Path, name: &str| {
        let file = tmp.path().join(name);
        std::fs::write(&file, format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", dir.display())).unwrap();
        file.display().to_string()
    };
    let (source_yaml, target_yaml) = (yaml(&source, "source.yaml"), yaml(&target, "target.yaml"));
    let runs = bench(
        &tmp.path().join("results"),
        &[
            "--strategies",
            "grouped",
            "--concurrency",
            "4",
            "--source-config",
            &source_yaml,
            "--target-config",
            &target_yaml,
        ],
    );
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["blocks"], 8);
    assert_eq!(runs[0]["violations"], 0);
    assert!(runs[0]["lower_bound_seconds"].is_null(), "no simulated floor for real buckets");
    assert_eq!(std::fs::read_dir(&source).unwrap().count(), 8, "the source got the synthetic bucket");
    let prefixes: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(prefixes.len(), 1, "one prefix for the one run: {prefixes:?}");
    let run_dir = target.join(&prefixes[0]);
    assert_eq!(std::fs::read_dir(&run_dir).unwrap().count(), 8, "the run replicated every block under its prefix");
}
