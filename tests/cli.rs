//! The binary's own surface: bad input gets a clear error naming it, and the run modes.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::process::BIN;

const BLOCK: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bucket folder with one valid block.
fn bucket(dir: &Path) {
    let block = dir.join(BLOCK);
    std::fs::create_dir_all(block.join("chunks")).unwrap();
    std::fs::write(block.join("chunks/000001"), b"chunk").unwrap();
    std::fs::write(block.join("index"), b"index").unwrap();
    let meta = format!(
        r#"{{"ulid":"{BLOCK}","minTime":0,"maxTime":10,"version":1,"compaction":{{"level":1}},"thanos":{{"labels":{{"a":"b"}},"downsample":{{"resolution":0}}}}}}"#
    );
    std::fs::write(block.join("meta.json"), meta).unwrap();
}

fn urls(tmp: &Path) -> (String, String) {
    bucket(&tmp.join("src"));
    (format!("file://{}", tmp.join("src").display()), format!("file://{}", tmp.join("dst").display()))
}

#[test]
fn bad_flags_are_named_and_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to) = urls(tmp.path());
    let base = ["replicate", "--from", &from, "--to", &to, "--single-run", "--http-address", "127.0.0.1:0"];
    let cases: &[(&[&str], &str)] = &[
        (&["--matcher", "{a=~\"(\"}"], "a=~"),
        (&["--matcher", "a"], "invalid matcher \"a\""),
        (&["--resolution", "5x"], "5x"),
        (&["--min-time", "yesterday"], "yesterday"),
        (&["--max-time", "-2q"], "-2q"),
        (&["--interval=-1m"], "-1m"),
        (&["--strategy", "fastest"], "fastest"),
        (&["--id", "not-a-ulid"], "not-a-ulid"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--compaction-min", "3", "--compaction-max", "2"], "--compaction-min 3"),
        (&["--log.format", "xml"], "xml"),
        (&["--part-size", "1024"], "--part-size"),
        (&["--retry-timeout", "forever"], "forever"),
        (&["--processes", "2", "--process", "2"], "process 2 is out of range"),
        (&["--processes", "2", "--hostfile", "/nonexistent/hosts"], "reading hostfile /nonexistent/hosts"),
        (&["--processes", "0"], "--processes"),
        (&["--bwlimit", "fast"], "invalid rate \"fast\""),
        (&["--bwlimit", "10M:slow"], "invalid rate \"slow\""),
        (&["--tenant-mapping", "a=b"], "need --layout tenants"),
        (&["--layout", "tenants", "--tenant-mapping", "a"], "--tenant-mapping \"a\": expected SRC=DST"),
        (&["--layout", "tenants", "--tenant-mapping", "a=x", "--tenant-mapping", "b=x"], "maps two tenants onto \"x\""),
        (&["--layout", "mimir"], "mimir"),
    ];
    for (extra, needle) in cases {
        let out = run(&[&base[..], extra].concat());
        let err = stderr(&out);
        assert!(!out.status.success(), "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: the error should name {needle:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
    assert!(!tmp.path().join("dst").join(BLOCK).exists(), "nothing was replicated by a bad invocation");
}

#[test]
fn bad_bucket_configs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, to) = urls(tmp.path());
    let cases: &[(&str, &str)] = &[
        ("type: S3\nconfig:\n  bucket: b\n  endpointt: 127.0.0.1:1\n", "unknown field `endpointt`"),
        ("type: GCS\nconfig:\n  service_account: x\n", "`bucket` is required"),
        ("type: FILESYSTEM\nconfig:\n  directory: /x\nsurprise: true\n", "unknown field `surprise`"),
        ("type: FILESYSTEM\nconfig: [unclosed\n", "invalid objstore YAML"),
        ("type: FILESYSTEM\nconfig:\n  directory: /nonexistent/bucketflow-test\n", "does not exist"),
    ];
    for (i, (yaml, needle)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("bucket{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let file = file.to_str().unwrap();
        let out = run(&[
            "replicate",
            "--objstore.config-file",
            file,
            "--to",
            &to,
            "--single-run",
            "--http-address",
            "127.0.0.1:0",
        ]);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains(needle) && err.contains(file), "{yaml:?}: should name {needle:?} and the file: {err}");
    }
    let out = run(&["replicate", "--to", &to, "--single-run"]);
    assert!(stderr(&out).contains("--objstore.config-file, --objstore.config or --from"), "{}", stderr(&out));
}

#[test]
fn inline_yaml_and_dry_run_plan_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    bucket(&tmp.path().join("src"));
    let src = format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", tmp.path().join("src").display());
    let dst = format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", tmp.path().join("dst").display());
    let out = run(&[
        "replicate",
        "--objstore.config",
        &src,
        "--objstore-to.config",
        &dst,
        "--dry-run",
        "--http-address",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(BLOCK) && table.contains("replicate") && table.contains("1 to replicate"), "{table}");
    assert!(!tmp.path().join("dst").join(BLOCK).exists(), "a dry run writes nothing");
}

#[test]
fn unordered_warns_and_json_logs_are_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to) = urls(tmp.path());
    let out = run(&[
        "replicate",
        "--from",
        &from,
        "--to",
        &to,
        "--single-run",
        "--http-address",
        "127.0.0.1:0",
        "--strategy",
        "unordered",
        "--log.format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{err}");
    assert!(err.contains("benchmarks only"), "{err}");
    assert!(tmp.path().join("dst").join(BLOCK).join("meta.json").exists());
}

#[test]
fn continuous_mode_runs_every_interval_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to) = urls(tmp.path());
    let child = Command::new(BIN)
        .args(["replicate", "--from", &from, "--to", &to, "--interval", "200ms", "--http-address", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Two runs finish well within the deadline at a 200ms interval.
    let meta = tmp.path().join("dst").join(BLOCK).join("meta.json");
    while !meta.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let runs = err.matches("replication run finished").count();
    assert!(runs >= 2, "several runs: {err}");
    assert!(err.contains("already_replicated=1"), "later runs find the block replicated: {err}");
    assert!(out.status.success(), "{err}");
}

/// Every flag of `thanos tools bucket replicate`, given as Thanos documents them with their
/// defaults, runs unchanged; a tracing configuration (bucketflow exports no traces) and a web
/// configuration it cannot honour are refused by name, never ignored.
#[test]
fn thanos_replicate_command_lines_run_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    bucket(&tmp.path().join("src"));
    let yaml = |name: &str| {
        let path = tmp.path().join(format!("{name}.yaml"));
        let dir = serde_json::to_string(tmp.path().join(name).to_str().unwrap()).unwrap();
        std::fs::write(&path, format!("type: FILESYSTEM\nconfig:\n  directory: {dir}\n")).unwrap();
        path.display().to_string()
    };
    let (from, to) = (yaml("src"), yaml("dst"));
    let thanos = [
        "tools-style-placeholder",
        "--http-address=127.0.0.1:0",
        "--http-grace-period=2m",
        "--log.level=info",
        "--log.format=logfmt",
        "--tracing.config=",
        "--enable-auto-gomemlimit",
        "--auto-gomemlimit.ratio=0.9",
        &format!("--objstore.config-file={from}"),
        &format!("--objstore-to.config-file={to}"),
        "--resolution=0s",
        "--resolution=5m",
        "--resolution=1h",
        "--compaction=1",
        "--compaction=2",
        "--compaction=3",
        "--compaction=4",
        "--matcher=a=\"b\"",
        "--single-run",
        "--min-time=0000-01-01T00:00:00Z",
        "--max-time=9999-12-31T23:59:59Z",
    ]
    .map(String::from);
    let mut args: Vec<&str> = thanos.iter().map(String::as_str).collect();
    args[0] = "replicate";
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tmp.path().join("dst").join(BLOCK).join("meta.json").exists());

    let tracing = tmp.path().join("tracing.yaml");
    std::fs::write(&tracing, "type: JAEGER\nconfig:\n  service_name: replicate\n").unwrap();
    let web = tmp.path().join("web.yaml");
    std::fs::write(&web, "basic_auth_users:\n  admin: $2y$10$abc\n").unwrap();
    for (flag, needle) in [
        (format!("--tracing.config-file={}", tracing.display()), "--tracing.config-file: bucketflow exports no traces"),
        (format!("--http.config={}", web.display()), "basic_auth_users: admin: not a bcrypt hash"),
        ("--tracing.config=type: OTLP".to_string(), "--tracing.config: bucketflow exports no traces"),
    ] {
        let mut refused: Vec<&str> = args.iter().copied().filter(|a| *a != "--tracing.config=").collect();
        refused.push(&flag);
        let out = run(&refused);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(stderr(&out).contains(needle), "{flag}: {}", stderr(&out));
    }
    // An empty web configuration is nothing to honour.
    std::fs::write(&web, "# nothing\n").unwrap();
    let mut empty = args.clone();
    let flag = format!("--http.config={}", web.display());
    empty.push(&flag);
    assert!(run(&empty).status.success());
}
