//! Thanos's replication scheme tests, driven through the real binary.
//!
//! This is a port of `TestReplicationSchemeAll` from Thanos'
//! `pkg/replicate/scheme_test.go`. Thanos runs the scheme against two
//! in-memory buckets. Here the origin bucket is a local folder (objstore
//! `FILESYSTEM` config) and we run `bucketflow replicate --single-run`. Every
//! case is a plain function that takes a [`Fixture`], and
//! [`for_each_target!`] turns it into two `#[test]`s, one per target kind
//! ([`TargetKind`]):
//!
//! * `filesystem::<case>`: the target is another local folder;
//! * `s3::<case>`: the target is a bucket on an s3s-fs server on 127.0.0.1,
//!   one server per test (objstore `S3` config). Without s3s-fs installed
//!   these return early, unless CI or `BUCKETFLOW_REQUIRE_SERVERS` is set
//!   (see `tests/support/servers.rs`).
//!
//! Both variants read the target back as the same "relative path -> bytes"
//! map (the S3 one through object_store's S3 client, never from s3s-fs' files),
//! so the assertions are shared.
//!
//! Thanos builds its filter in the test loop with
//! `NewBlockFilter(selector{test-labelname="test-labelvalue"}, [raw], [1], blockIDs)`.
//! Only the `Regression` case differs: it uses an empty selector. We pass the
//! same filter on the command line ([`THANOS_TEST_FILTER`]). The label name
//! here is `test_labelname`. Thanos' unit test builds its matcher with
//! `labels.NewMatcher`, which takes the hyphen. Thanos' `--matcher` flag
//! parses with alertmanager's `labels.ParseMatchers`, and that only accepts
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`, so the hyphenated name could not be written on
//! the command line. A few extra tests
//! check the CLI defaults and the `--id` semantics of
//! `pkg/replicate/scheme.go` (`BlockFilter.Filter`) and
//! `cmd/thanos/tools_bucket.go`.
//!
//! As in Thanos, the main assertions look at what ends up in the target
//! bucket. On top of that we check that the source bucket is unchanged and
//! that the JSON report agrees (outcomes and counts, never reason wording).

mod support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};
use support::servers;

// Fixed, valid ULIDs (Crockford base32, 26 characters, first char <= '7').
const BLOCK_A: &str = "01HQ3V5N6W7X8Y9Z0A1B2C3D4E";
const BLOCK_B: &str = "01HQ3V5N6W7X8Y9Z0A1B2C3D4F";
const BLOCK_C: &str = "01HQ3V5N6W7X8Y9Z0A1B2C3D4G";
const BLOCK_D: &str = "01HQ3V5N6W7X8Y9Z0A1B2C3D4H";
const BLOCK_E: &str = "01HQ3V5N6W7X8Y9Z0A1B2C3D4J";
/// The block ID used by Thanos' `Regression` case.
const REGRESSION_BLOCK: &str = "01DQYXMK8G108CEBQ79Y84DYVY";

const RES_RAW: i64 = 0;
const RES_5M: i64 = 300_000;
const RES_1H: i64 = 3_600_000;

/// The filter that Thanos' test loop uses for every case: the selector
/// `test_labelname="test-labelvalue"`, raw resolution only, compaction level 1 only.
const THANOS_TEST_FILTER: &[&str] =
    &["--matcher", r#"test_labelname="test-labelvalue""#, "--resolution", "0s", "--compaction", "1"];

/// How long one replication run may take before we call it hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// A TSDB block to put into a bucket. `meta.json` is built from these fields.
#[derive(Clone, Debug)]
struct Block {
    id: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    resolution: i64,
    level: u32,
    min_time: i64,
    max_time: i64,
    version: u32,
    chunks: Vec<u8>,
    index: Vec<u8>,
    /// Also write a `thanos.files` section with the real object sizes.
    list_files: bool,
}

impl Block {
    /// The equivalent of Thanos' `testMeta(ulid)`: the external label
    /// `test_labelname="test-labelvalue"`, raw resolution, compaction level 1
    /// and TSDB meta version 1. Unlike Thanos (empty objects) each object has
    /// its own content, so byte comparisons actually check something.
    fn new(id: &'static str) -> Self {
        assert_eq!(id.len(), 26, "ULID {id} must be 26 characters");
        Block {
            id,
            labels: vec![("test_labelname", "test-labelvalue")],
            resolution: RES_RAW,
            level: 1,
            min_time: 0,
            max_time: 1000,
            version: 1,
            chunks: format!("chunk data of {id}").into_bytes(),
            index: format!("index data of {id}").into_bytes(),
            list_files: false,
        }
    }

    fn labels(mut self, labels: &[(&'static str, &'static str)]) -> Self {
        self.labels = labels.to_vec();
        self
    }

    fn resolution(mut self, resolution: i64) -> Self {
        self.resolution = resolution;
        self
    }

    fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    fn time_range(mut self, min_time: i64, max_time: i64) -> Self {
        self.min_time = min_time;
        self.max_time = max_time;
        self
    }

    fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    fn list_files(mut self) -> Self {
        self.list_files = true;
        self
    }

    fn meta_json(&self) -> String {
        let labels: serde_json::Map<String, Value> =
            self.labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
        let mut thanos = json!({
            "labels": labels,
            "downsample": { "resolution": self.resolution },
            "source": "test",
        });
        if self.list_files {
            thanos["files"] = json!([
                { "rel_path": "chunks/000001", "size_bytes": self.chunks.len() },
                { "rel_path": "index", "size_bytes": self.index.len() },
                { "rel_path": "meta.json" },
            ]);
        }
        let meta = json!({
            "ulid": self.id,
            "minTime": self.min_time,
            "maxTime": self.max_time,
            "stats": { "numSamples": 1, "numSeries": 1, "numChunks": 1 },
            "compaction": { "level": self.level, "sources": [self.id] },
            "version": self.version,
            "thanos": thanos,
        });
        serde_json::to_string_pretty(&meta).unwrap()
    }

    /// Writes `meta.json`, `index` and `chunks/000001` under `<root>/<ulid>/`.
    fn write_to(&self, root: &Path) {
        put(root, &format!("{}/chunks/000001", self.id), &self.chunks);
        put(root, &format!("{}/index", self.id), &self.index);
        put(root, &format!("{}/meta.json", self.id), self.meta_json().as_bytes());
    }
}

/// The body of a `deletion-mark.json`. Thanos' test uses Go's zero time, which
/// is negative as a Unix time. We use a real time in the past instead. With the
/// delay of 0 that the replicate fetcher uses, the mark counts either way.
fn deletion_mark(id: &str) -> String {
    json!({
        "id": id,
        "deletion_time": 1_700_000_000i64,
        "version": 1,
        "details": "tests deletion mark",
    })
    .to_string()
}

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
}

/// Every file under `root`, keyed by its `/`-separated path relative to `root`.
/// Directories are not objects, so they are not listed.
fn list_objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn keys(objects: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
    objects.keys().map(String::as_str).collect()
}

fn is_marker(key: &str) -> bool {
    key.ends_with("/deletion-mark.json") || key.ends_with("/no-compact-mark.json")
}

/// Where the target bucket lives. The origin is always a local folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetKind {
    /// Another local folder (objstore `FILESYSTEM`).
    Filesystem,
    /// A bucket on an s3s-fs server on 127.0.0.1 (objstore `S3`).
    S3,
}

/// The bucket name on the per-test s3s-fs server.
const S3_BUCKET: &str = "thanos-target";

/// The target bucket, read and written the way its kind allows: files in a
/// folder, or objects through the S3 API.
enum Target {
    Filesystem(PathBuf),
    S3(Box<S3Target>),
}

/// A bucket on a private s3s-fs server, with an object_store client for it.
/// Fields drop in order: the client and its runtime before the server.
struct S3Target {
    store: AmazonS3,
    rt: tokio::runtime::Runtime,
    server: servers::Server,
}

impl Target {
    /// The target of `kind`; `None` when it is S3 and s3s-fs is not installed
    /// (and servers are not required).
    fn new(kind: TargetKind, dir: &Path) -> Option<Self> {
        match kind {
            TargetKind::Filesystem => {
                fs::create_dir_all(dir).unwrap();
                Some(Target::Filesystem(dir.to_path_buf()))
            }
            TargetKind::S3 => {
                let server = servers::s3s_fs(&[S3_BUCKET])?;
                let store = server.s3_store(S3_BUCKET);
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                Some(Target::S3(Box::new(S3Target { store, rt, server })))
            }
        }
    }

    /// The objstore YAML that points bucketflow at this target.
    fn objstore_yaml(&self) -> String {
        match self {
            Target::Filesystem(dir) => objstore_yaml(dir),
            Target::S3(s3) => {
                let server = &s3.server;
                let host = server.endpoint.strip_prefix("http://").expect("s3s-fs endpoint is http://");
                format!(
                    "type: S3\nconfig:\n  bucket: {S3_BUCKET}\n  endpoint: {host}\n  region: {}\n  access_key: {}\n  secret_key: {}\n  insecure: true\n",
                    server.region, server.access_key, server.secret_key
                )
            }
        }
    }

    fn put(&self, rel: &str, bytes: &[u8]) {
        match self {
            Target::Filesystem(dir) => put(dir, rel, bytes),
            Target::S3(s3) => {
                let payload = PutPayload::from(bytes.to_vec());
                s3.rt
                    .block_on(s3.store.put(&ObjectPath::from(rel), payload))
                    .unwrap_or_else(|e| panic!("putting {rel} into the S3 target: {e}"));
            }
        }
    }

    /// Every object, keyed by its `/`-separated path in the bucket.
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        match self {
            Target::Filesystem(dir) => list_objects(dir),
            Target::S3(s3) => s3.rt.block_on(async {
                let mut out = BTreeMap::new();
                for meta in s3.list().await {
                    let key = meta.location.to_string();
                    let got = s3.store.get(&meta.location).await;
                    let bytes = match got {
                        Ok(got) => got.bytes().await,
                        Err(e) => Err(e),
                    };
                    let bytes = bytes.unwrap_or_else(|e| panic!("reading {key} from the S3 target: {e}"));
                    out.insert(key, bytes.to_vec());
                }
                out
            }),
        }
    }

    /// The last-modified time of every object, to tell whether a run rewrote
    /// any. s3s-fs lists `LastModified` to the millisecond.
    fn mtimes(&self) -> BTreeMap<String, SystemTime> {
        match self {
            Target::Filesystem(dir) => list_objects(dir)
                .into_keys()
                .map(|k| {
                    let m = fs::metadata(dir.join(&k)).unwrap().modified().unwrap();
                    (k, m)
                })
                .collect(),
            Target::S3(s3) => s3
                .rt
                .block_on(s3.list())
                .into_iter()
                .map(|meta| (meta.location.to_string(), SystemTime::from(meta.last_modified)))
                .collect(),
        }
    }

    /// What the S3 server logged (warnings and errors), for failure messages.
    fn server_logs(&self) -> Option<String> {
        match self {
            Target::Filesystem(_) => None,
            Target::S3(s3) => Some(s3.server.logs()),
        }
    }
}

impl S3Target {
    /// Lists the whole bucket, one "directory" level at a time (the same
    /// ListObjectsV2 calls as a recursive listing, without needing a stream
    /// combinator crate in the tests).
    async fn list(&self) -> Vec<ObjectMeta> {
        let mut out = Vec::new();
        let mut pending: Vec<Option<ObjectPath>> = vec![None];
        while let Some(prefix) = pending.pop() {
            let level = self
                .store
                .list_with_delimiter(prefix.as_ref())
                .await
                .unwrap_or_else(|e| panic!("listing the S3 target under {prefix:?}: {e}"));
            pending.extend(level.common_prefixes.into_iter().map(Some));
            out.extend(level.objects);
        }
        out
    }
}

/// A source bucket, a target bucket and their objstore configs. The origin
/// and every config, log and report live in one temporary directory, as does
/// the target when it is a folder.
struct Fixture {
    tmp: tempfile::TempDir,
    src: PathBuf,
    target: Target,
    src_config: PathBuf,
    dst_config: PathBuf,
    runs: Cell<u32>,
}

impl Fixture {
    /// `None` when the target kind is not available here (S3 without s3s-fs).
    fn new(kind: TargetKind) -> Option<Self> {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("origin");
        fs::create_dir_all(&src).unwrap();
        let target = Target::new(kind, &tmp.path().join("target"))?;
        let src_config = tmp.path().join("origin.yaml");
        let dst_config = tmp.path().join("target.yaml");
        fs::write(&src_config, objstore_yaml(&src)).unwrap();
        fs::write(&dst_config, target.objstore_yaml()).unwrap();
        Some(Fixture { tmp, src, target, src_config, dst_config, runs: Cell::new(0) })
    }

    fn add_block(&self, block: &Block) {
        block.write_to(&self.src);
    }

    fn put_src(&self, rel: &str, bytes: &[u8]) {
        put(&self.src, rel, bytes);
    }

    /// Puts an object into the target bucket before a run (a folder write or
    /// an S3 PUT).
    fn put_dst(&self, rel: &str, bytes: &[u8]) {
        self.target.put(rel, bytes);
    }

    fn source(&self) -> BTreeMap<String, Vec<u8>> {
        list_objects(&self.src)
    }

    fn target(&self) -> BTreeMap<String, Vec<u8>> {
        self.target.objects()
    }

    fn target_mtimes(&self) -> BTreeMap<String, SystemTime> {
        self.target.mtimes()
    }

    /// Runs `bucketflow replicate --single-run` from the origin to the target
    /// bucket with extra `args`. Also checks that the run left the origin
    /// bucket unchanged.
    fn replicate(&self, args: &[&str]) -> Run {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let report_path = self.tmp.path().join(format!("report-{n}.json"));
        let stdout_path = self.tmp.path().join(format!("stdout-{n}.log"));
        let stderr_path = self.tmp.path().join(format!("stderr-{n}.log"));

        let before = self.source();

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucketflow"));
        cmd.arg("replicate")
            .arg("--objstore.config-file")
            .arg(&self.src_config)
            .arg("--objstore-to.config-file")
            .arg(&self.dst_config)
            .arg("--single-run")
            .args(["--http-address", "127.0.0.1:0"])
            .arg("--report-file")
            .arg(&report_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap());
        let command_line = format!("{cmd:?}");

        let mut child = cmd.spawn().expect("spawn bucketflow");
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "bucketflow did not finish within {RUN_TIMEOUT:?}: {command_line}\nstderr:\n{}{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default(),
                    self.server_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };

        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        let report = match fs::read(&report_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "report {} is not JSON ({e}): {}\nstderr:\n{stderr}",
                    report_path.display(),
                    String::from_utf8_lossy(&bytes)
                )
            }),
            Err(e) => panic!(
                "no report written to {} ({e}); exit status {status}\ncommand: {command_line}\nstdout:\n{stdout}\nstderr:\n{stderr}{}",
                report_path.display(),
                self.server_logs()
            ),
        };

        let after = self.source();
        assert_eq!(keys(&before), keys(&after), "the origin bucket's object list changed during replication");
        assert!(before == after, "the origin bucket's content changed during replication");

        let stderr = stderr + &self.server_logs();
        Run { code: status.code(), report, stderr, command_line }
    }

    /// The S3 server's log as a suffix for failure messages; empty for a
    /// folder target.
    fn server_logs(&self) -> String {
        self.target.server_logs().map_or_else(String::new, |logs| format!("\ns3s-fs log:\n{logs}"))
    }

    /// Asserts that the target bucket holds exactly the objects of `blocks`,
    /// byte for byte as in the origin bucket, without any markers.
    fn assert_target_has_exactly(&self, blocks: &[&str]) {
        let expected: BTreeMap<String, Vec<u8>> = self
            .source()
            .into_iter()
            .filter(|(k, _)| blocks.iter().any(|b| k.starts_with(&format!("{b}/"))))
            .filter(|(k, _)| !is_marker(k))
            .collect();
        let got = self.target();
        assert_eq!(keys(&got), keys(&expected), "objects in the target bucket");
        for (key, want) in &expected {
            assert!(
                got[key] == *want,
                "{key} differs: target {:?} vs origin {:?}",
                String::from_utf8_lossy(&got[key]),
                String::from_utf8_lossy(want)
            );
        }
    }

    fn assert_target_empty(&self) {
        let got = self.target();
        assert!(got.is_empty(), "the target bucket should be empty, has {:?}", keys(&got));
    }
}

/// Runs one case against a fresh fixture with a target of `kind`, or does
/// nothing when that kind is not available (see [`Fixture::new`]).
fn run_case(kind: TargetKind, case: fn(&Fixture)) {
    let Some(fx) = Fixture::new(kind) else { return };
    case(&fx);
}

/// Generates `filesystem::<case>` and `s3::<case>` `#[test]`s for each listed
/// case function. A case function left out of the list is dead code, which
/// the compiler warns about.
macro_rules! for_each_target {
    ($($case:ident),* $(,)?) => {
        for_each_target!(@variant filesystem, Filesystem, $($case),*);
        for_each_target!(@variant s3, S3, $($case),*);
    };
    (@variant $module:ident, $kind:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    super::run_case(super::TargetKind::$kind, super::$case);
                }
            )*
        }
    };
}

fn objstore_yaml(dir: &Path) -> String {
    // A JSON string is also a valid YAML scalar, so it handles any odd characters in the path.
    let dir = serde_json::to_string(dir.to_str().expect("UTF-8 temp path")).unwrap();
    format!("type: FILESYSTEM\nconfig:\n  directory: {dir}\n")
}

/// The result of one `bucketflow replicate` run.
struct Run {
    code: Option<i32>,
    report: Value,
    stderr: String,
    command_line: String,
}

impl Run {
    fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status of {}\nreport: {:#}\nstderr:\n{}",
            self.command_line,
            self.report,
            self.stderr
        );
        self
    }

    fn count(&self, name: &str) -> u64 {
        self.report["counts"][name].as_u64().unwrap_or_else(|| panic!("report has no counts.{name}: {:#}", self.report))
    }

    fn total(&self, name: &str) -> u64 {
        self.report[name].as_u64().unwrap_or_else(|| panic!("report has no {name}: {:#}", self.report))
    }

    fn blocks(&self) -> &[Value] {
        self.report["blocks"].as_array().unwrap_or_else(|| panic!("report has no blocks array: {:#}", self.report))
    }

    fn entry(&self, id: &str) -> &Value {
        let mut found = self.blocks().iter().filter(|b| b["block"] == id);
        let entry = found.next().unwrap_or_else(|| panic!("report has no entry for block {id}: {:#}", self.report));
        assert!(found.next().is_none(), "report lists block {id} twice: {:#}", self.report);
        entry
    }

    fn outcome(&self, id: &str) -> &str {
        self.entry(id)["outcome"].as_str().unwrap_or_else(|| panic!("block {id} has no outcome: {:#}", self.report))
    }

    fn assert_outcome(&self, id: &str, outcome: &str) -> &Self {
        assert_eq!(self.outcome(id), outcome, "outcome of {id} in report {:#}", self.report);
        self
    }

    /// Checks the `counts` section. Counts not given must be zero.
    fn assert_counts(&self, expected: &[(&str, u64)]) -> &Self {
        for name in ["replicated", "already_replicated", "filtered", "skipped", "failed", "held_back", "planned"] {
            let want = expected.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
            assert_eq!(self.count(name), want, "counts.{name} in report {:#}", self.report);
        }
        self
    }

    /// Checks the entry of a block that this run copied.
    fn assert_replicated(&self, block: &Block) -> &Self {
        self.assert_outcome(block.id, "replicated");
        let entry = self.entry(block.id);
        assert_eq!(entry["min_time"], block.min_time, "min_time of {}", block.id);
        assert_eq!(entry["max_time"], block.max_time, "max_time of {}", block.id);
        assert!(entry["group"].is_string(), "group of {}: {entry}", block.id);
        self
    }
}

/// Checks `objects_copied` and `bytes_copied` for a run that copied exactly the
/// given blocks in full. Thanos' `objectsReplicated` metric counts only the
/// chunk and index objects, not meta.json. The report may follow Thanos or
/// count meta.json too, so both are accepted, as long as bytes and objects
/// agree.
fn assert_copied_totals(run: &Run, blocks: &[&Block]) {
    let data_objects: u64 = blocks.len() as u64 * 2;
    let data_bytes: u64 = blocks.iter().map(|b| (b.chunks.len() + b.index.len()) as u64).sum();
    let meta_bytes: u64 = blocks.iter().map(|b| b.meta_json().len() as u64).sum();
    let objects = run.total("objects_copied");
    let bytes = run.total("bytes_copied");
    let ok = (objects == data_objects && bytes == data_bytes)
        || (objects == data_objects + blocks.len() as u64 && bytes == data_bytes + meta_bytes);
    assert!(
        ok,
        "objects_copied={objects}, bytes_copied={bytes}; expected {data_objects} objects / \
         {data_bytes} bytes (data only) or {} objects / {} bytes (with meta.json)\nreport: {:#}",
        data_objects + blocks.len() as u64,
        data_bytes + meta_bytes,
        run.report
    );
}

fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

// ---------------------------------------------------------------------------
// The tests: each case below as `filesystem::<case>` and `s3::<case>`
// ---------------------------------------------------------------------------

for_each_target! {
    // Ports of TestReplicationSchemeAll.
    empty_origin,
    no_meta,
    partial_meta,
    full_block,
    full_block_with_thanos_files_section,
    marked_for_deletion_ignored,
    marked_for_deletion_replicated_without_flag,
    marked_for_deletion_partial_mark_is_ignored,
    marked_for_deletion_in_the_future_is_still_replicated,
    previous_partial_upload,
    previous_partial_upload_without_meta,
    only_raw,
    multiple_candidates,
    label_selector,
    non_zero_compaction,
    meta_bytes_regression,
    block_ids,
    // Filter semantics from scheme.go and the CLI defaults.
    block_ids_override_other_filters,
    cli_defaults,
    compaction_min_max_range,
    non_block_entries_are_ignored,
    // Re-runs and per-block failures.
    rerun_copies_nothing,
    unsupported_meta_version_fails_only_that_block,
}

// ---------------------------------------------------------------------------
// Ports of TestReplicationSchemeAll
// ---------------------------------------------------------------------------

/// Thanos `EmptyOrigin`: nothing to do, and nothing goes wrong.
fn empty_origin(fx: &Fixture) {
    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_counts(&[]);
    assert!(run.blocks().is_empty(), "report lists blocks: {:#}", run.report);
    assert_eq!(run.total("objects_copied"), 0);
    assert_eq!(run.total("bytes_copied"), 0);
    fx.assert_target_empty();
}

/// Thanos `NoMeta`: a block dir without meta.json is a partial upload. It is
/// skipped, not copied, and the run does not fail.
fn no_meta(fx: &Fixture) {
    fx.put_src(&format!("{BLOCK_A}/chunks/000001"), b"chunk data");

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_outcome(BLOCK_A, "skipped").assert_counts(&[("skipped", 1)]);
    fx.assert_target_empty();
}

/// Thanos `PartialMeta`: a truncated meta.json (`{`) counts as partial/corrupted
/// meta. It is skipped, not copied, and the run does not fail.
fn partial_meta(fx: &Fixture) {
    fx.put_src(&format!("{BLOCK_A}/meta.json"), b"{");

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_outcome(BLOCK_A, "skipped").assert_counts(&[("skipped", 1)]);
    fx.assert_target_empty();
}

/// Thanos `FullBlock`: one block of three objects is copied.
fn full_block(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    assert_copied_totals(&run, &[&a]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// `FullBlock` with a `thanos.files` section whose sizes match the objects.
fn full_block_with_thanos_files_section(fx: &Fixture) {
    let a = Block::new(BLOCK_A).list_files();
    fx.add_block(&a);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos `MarkedForDeletion` (`ignoreMarkedForDeletion: true`). With
/// `--ignore-marked-for-deletion` the fetcher adds an IgnoreDeletionMarkFilter
/// with delay 0, so a block whose deletion time has passed is dropped and the
/// target stays empty.
fn marked_for_deletion_ignored(fx: &Fixture) {
    fx.add_block(&Block::new(BLOCK_A));
    fx.put_src(&format!("{BLOCK_A}/deletion-mark.json"), deletion_mark(BLOCK_A).as_bytes());

    let run = fx.replicate(&with(THANOS_TEST_FILTER, &["--ignore-marked-for-deletion"]));
    run.assert_exit(0);
    // Dropped before selection. Thanos drops it in the fetcher, which is
    // neither a copy nor an error. Both non-copy outcomes are accepted.
    let outcome = run.outcome(BLOCK_A);
    assert!(
        outcome == "filtered" || outcome == "skipped",
        "marked block should be filtered, got {outcome}: {:#}",
        run.report
    );
    assert_eq!(run.count("replicated"), 0);
    assert_eq!(run.count("failed"), 0);
    fx.assert_target_empty();
}

/// Without `--ignore-marked-for-deletion`, Thanos does not add the deletion-mark
/// filter. The block is replicated like any other, but only its meta.json,
/// index and chunks. The marker itself is never copied.
fn marked_for_deletion_replicated_without_flag(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    fx.put_src(&format!("{BLOCK_A}/deletion-mark.json"), deletion_mark(BLOCK_A).as_bytes());

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
    assert!(!fx.target().contains_key(&format!("{BLOCK_A}/deletion-mark.json")));
}

/// Thanos' IgnoreDeletionMarkFilter ignores a deletion-mark.json that does not
/// parse (`ErrorUnmarshalMarker`: "found partial deletion-mark.json", then
/// `continue`). The block stays selected and is replicated, even with
/// `--ignore-marked-for-deletion`.
fn marked_for_deletion_partial_mark_is_ignored(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    fx.put_src(&format!("{BLOCK_A}/deletion-mark.json"), b"{");

    let run = fx.replicate(&with(THANOS_TEST_FILTER, &["--ignore-marked-for-deletion"]));
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos' IgnoreDeletionMarkFilter drops a block only when
/// `time.Since(deletion_time) > delay`, and replicate uses a delay of 0. A mark
/// whose deletion time is still in the future (clock skew, for example) does
/// not drop the block yet.
fn marked_for_deletion_in_the_future_is_still_replicated(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    let mark = json!({ "id": BLOCK_A, "deletion_time": 32_503_680_000i64, "version": 1 }); // year 3000
    fx.put_src(&format!("{BLOCK_A}/deletion-mark.json"), mark.to_string().as_bytes());

    let run = fx.replicate(&with(THANOS_TEST_FILTER, &["--ignore-marked-for-deletion"]));
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos `PreviousPartialUpload`: the target already has the chunks and the
/// index, and a meta.json cut short by 10 bytes. The block is finished, and
/// every origin object ends up byte-equal in the target.
fn previous_partial_upload(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    let meta = a.meta_json();
    fx.put_dst(&format!("{BLOCK_A}/meta.json"), &meta.as_bytes()[..meta.len() - 10]);
    fx.put_dst(&format!("{BLOCK_A}/chunks/000001"), &a.chunks);
    fx.put_dst(&format!("{BLOCK_A}/index"), &a.index);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// A variant of `PreviousPartialUpload`: the earlier upload stopped after the
/// chunks (no index, no meta.json).
fn previous_partial_upload_without_meta(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    fx.put_dst(&format!("{BLOCK_A}/chunks/000001"), &a.chunks);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos `OnlyUploadsRaw`: with `--resolution 0s` only, a 5m-downsampled block
/// is filtered out.
fn only_raw(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    let b = Block::new(BLOCK_B).resolution(RES_5M);
    fx.add_block(&a);
    fx.add_block(&b);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0)
        .assert_replicated(&a)
        .assert_outcome(BLOCK_B, "filtered")
        .assert_counts(&[("replicated", 1), ("filtered", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos `UploadMultipleCandidatesWhenPresent`: two matching blocks, six
/// objects.
fn multiple_candidates(fx: &Fixture) {
    let a = Block::new(BLOCK_A).time_range(0, 1000);
    let b = Block::new(BLOCK_B).time_range(1000, 2000);
    fx.add_block(&a);
    fx.add_block(&b);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_replicated(&b).assert_counts(&[("replicated", 2)]);
    assert_copied_totals(&run, &[&a, &b]);
    fx.assert_target_has_exactly(&[BLOCK_A, BLOCK_B]);
    assert_eq!(fx.target().len(), 6);
}

/// Thanos `LabelSelector`: a block whose external label value does not match
/// `--matcher` is filtered out.
fn label_selector(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    let b = Block::new(BLOCK_B).labels(&[("test_labelname", "non-selected-value")]);
    fx.add_block(&a);
    fx.add_block(&b);

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0)
        .assert_replicated(&a)
        .assert_outcome(BLOCK_B, "filtered")
        .assert_counts(&[("replicated", 1), ("filtered", 1)]);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// Thanos `NonZeroCompaction`: with `--compaction 1`, a level-2 block is
/// filtered out.
fn non_zero_compaction(fx: &Fixture) {
    fx.add_block(&Block::new(BLOCK_A).level(2));

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_outcome(BLOCK_A, "filtered").assert_counts(&[("filtered", 1)]);
    fx.assert_target_empty();
}

/// Thanos `Regression`: meta.json is copied byte for byte, not parsed and
/// re-encoded. Besides Thanos' odd indentation and missing trailing newline,
/// this version adds unknown fields, a number that re-encoding would change
/// (`2.50`), a `\u` escape and a tab, so any round trip through a struct
/// shows up. The selector is empty, as in Thanos.
fn meta_bytes_regression(fx: &Fixture) {
    let meta = "{
        \"ulid\": \"01DQYXMK8G108CEBQ79Y84DYVY\",
        \"minTime\": 1571911200000,
        \"maxTime\": 1571918400000,
        \"stats\": {
                \"numSamples\": 90793,
                \"numSeries\": 3703,
                \"numChunks\": 3746
        },
        \"compaction\": {
                \"level\": 1,
                \"sources\": [
                        \"01DQYXMK8G108CEBQ79Y84DYVY\"
                ]
        },
        \"version\": 1,
\t\"someFutureField\": {\"nested\": [1, 2.50, null], \"text\": \"caf\\u00e9\"},
        \"thanos\": {
                \"labels\": {
                        \"receive\": \"true\",
                        \"replica\": \"thanos-receive-default-0\"
                },
                \"downsample\": {
                        \"resolution\": 0
                },
                \"source\": \"receive\",
                \"unknownThanosField\": true
        }
}";
    // Sanity check of the fixture itself: valid JSON with the expected ULID.
    let parsed: Value = serde_json::from_str(meta).unwrap();
    assert_eq!(parsed["ulid"], REGRESSION_BLOCK);

    fx.put_src(&format!("{REGRESSION_BLOCK}/meta.json"), meta.as_bytes());
    fx.put_src(&format!("{REGRESSION_BLOCK}/chunks/000001"), b"regression chunks");
    fx.put_src(&format!("{REGRESSION_BLOCK}/index"), b"regression index");

    let run = fx.replicate(&["--resolution", "0s", "--compaction", "1"]);
    run.assert_exit(0).assert_outcome(REGRESSION_BLOCK, "replicated").assert_counts(&[("replicated", 1)]);
    fx.assert_target_has_exactly(&[REGRESSION_BLOCK]);
    assert_eq!(fx.target().len(), 3);
    let got = &fx.target()[&format!("{REGRESSION_BLOCK}/meta.json")];
    assert!(got == meta.as_bytes(), "meta.json was rewritten:\n{}", String::from_utf8_lossy(got));
}

/// Thanos `BlockIDs`: with `--id`, only the listed block is replicated, even
/// though the other one matches the filter too.
fn block_ids(fx: &Fixture) {
    let a = Block::new(BLOCK_A).time_range(0, 1000);
    let b = Block::new(BLOCK_B).time_range(1000, 2000);
    fx.add_block(&a);
    fx.add_block(&b);

    let run = fx.replicate(&with(THANOS_TEST_FILTER, &["--id", BLOCK_A]));
    run.assert_exit(0).assert_replicated(&a);
    assert_eq!(run.count("replicated"), 1, "report: {:#}", run.report);
    assert_eq!(run.count("failed"), 0);
    // The unlisted block is not copied. If it is in the report at all, it is
    // filtered.
    if let Some(entry) = run.blocks().iter().find(|e| e["block"] == BLOCK_B) {
        assert_eq!(entry["outcome"], "filtered", "report: {:#}", run.report);
    }
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

// ---------------------------------------------------------------------------
// Beyond the Thanos test: filter semantics from scheme.go and the CLI defaults
// ---------------------------------------------------------------------------

/// In `BlockFilter.Filter`, a matching `--id` returns true before the label
/// selector, resolution and compaction checks. Only the empty-labels check
/// comes first. The CLI help says the same: "IDs will be used to match blocks
/// and other matchers will be ignored".
fn block_ids_override_other_filters(fx: &Fixture) {
    // Fails the selector, the resolution and the compaction filter, but is listed.
    let a = Block::new(BLOCK_A).labels(&[("test_labelname", "non-selected-value")]).resolution(RES_5M).level(3);
    // Passes every filter, but is not listed.
    let b = Block::new(BLOCK_B);
    // Listed, but has no external labels: still filtered.
    let c = Block::new(BLOCK_C).labels(&[]).time_range(5000, 6000);
    fx.add_block(&a);
    fx.add_block(&b);
    fx.add_block(&c);

    let run = fx.replicate(&with(THANOS_TEST_FILTER, &["--id", BLOCK_A, "--id", BLOCK_C]));
    run.assert_exit(0).assert_replicated(&a).assert_outcome(BLOCK_C, "filtered");
    assert_eq!(run.count("replicated"), 1, "report: {:#}", run.report);
    assert_eq!(run.count("failed"), 0);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

/// CLI defaults (`cmd/thanos/tools_bucket.go`): resolutions 0s, 5m and 1h,
/// compaction levels 1 to 4, no matcher. Blocks without external labels are
/// always filtered out.
fn cli_defaults(fx: &Fixture) {
    let raw = Block::new(BLOCK_A).time_range(0, 1000);
    let five_min = Block::new(BLOCK_B).resolution(RES_5M).level(2);
    let one_hour = Block::new(BLOCK_C).resolution(RES_1H).level(4);
    let level5 = Block::new(BLOCK_D).level(5).time_range(1000, 2000);
    let unlabelled = Block::new(BLOCK_E).labels(&[]);
    for b in [&raw, &five_min, &one_hour, &level5, &unlabelled] {
        fx.add_block(b);
    }

    let run = fx.replicate(&[]);
    run.assert_exit(0)
        .assert_replicated(&raw)
        .assert_replicated(&five_min)
        .assert_replicated(&one_hour)
        .assert_outcome(BLOCK_D, "filtered")
        .assert_outcome(BLOCK_E, "filtered")
        .assert_counts(&[("replicated", 3), ("filtered", 2)]);
    fx.assert_target_has_exactly(&[BLOCK_A, BLOCK_B, BLOCK_C]);
}

/// `--compaction-min` and `--compaction-max` select a range of levels when no
/// `--compaction` is given.
fn compaction_min_max_range(fx: &Fixture) {
    let blocks = [
        Block::new(BLOCK_A).level(1).time_range(0, 1000),
        Block::new(BLOCK_B).level(2).time_range(1000, 2000),
        Block::new(BLOCK_C).level(3).time_range(2000, 3000),
        Block::new(BLOCK_D).level(4).time_range(3000, 4000),
    ];
    for b in &blocks {
        fx.add_block(b);
    }

    let run = fx.replicate(&["--compaction-min", "2", "--compaction-max", "3"]);
    run.assert_exit(0)
        .assert_outcome(BLOCK_A, "filtered")
        .assert_replicated(&blocks[1])
        .assert_replicated(&blocks[2])
        .assert_outcome(BLOCK_D, "filtered")
        .assert_counts(&[("replicated", 2), ("filtered", 2)]);
    fx.assert_target_has_exactly(&[BLOCK_B, BLOCK_C]);
}

/// Top-level entries that are not ULIDs are not blocks. They are never copied
/// and do not appear in the report.
fn non_block_entries_are_ignored(fx: &Fixture) {
    let a = Block::new(BLOCK_A);
    fx.add_block(&a);
    fx.put_src("debug/metas/foo.json", b"{}");
    fx.put_src("not-a-ulid/meta.json", Block::new(BLOCK_B).meta_json().as_bytes());
    fx.put_src("README", b"hello");

    let run = fx.replicate(THANOS_TEST_FILTER);
    run.assert_exit(0).assert_replicated(&a).assert_counts(&[("replicated", 1)]);
    assert_eq!(run.blocks().len(), 1, "report: {:#}", run.report);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}

// ---------------------------------------------------------------------------
// Re-runs and per-block failures
// ---------------------------------------------------------------------------

/// Running the same replication again copies nothing. Thanos compares the
/// origin and target meta.json bytes and counts the block as already
/// replicated.
fn rerun_copies_nothing(fx: &Fixture) {
    let a = Block::new(BLOCK_A).time_range(0, 1000);
    let b = Block::new(BLOCK_B).time_range(1000, 2000);
    fx.add_block(&a);
    fx.add_block(&b);

    let first = fx.replicate(THANOS_TEST_FILTER);
    first.assert_exit(0).assert_counts(&[("replicated", 2)]);
    fx.assert_target_has_exactly(&[BLOCK_A, BLOCK_B]);
    let target_before = fx.target();
    let mtimes_before = fx.target_mtimes();

    let second = fx.replicate(THANOS_TEST_FILTER);
    second
        .assert_exit(0)
        .assert_outcome(BLOCK_A, "already_replicated")
        .assert_outcome(BLOCK_B, "already_replicated")
        .assert_counts(&[("already_replicated", 2)]);
    assert_eq!(second.total("objects_copied"), 0, "report: {:#}", second.report);
    assert_eq!(second.total("bytes_copied"), 0, "report: {:#}", second.report);
    assert!(fx.target() == target_before, "the target changed on the second run");
    assert_eq!(fx.target_mtimes(), mtimes_before, "target objects were rewritten on the second run");
}

/// A meta.json with `version: 2` is an error for that block only. Thanos'
/// fetcher reports it as "unexpected meta file ... version", a meta error, not
/// a partial block. The run exits 1, but the other blocks still get
/// replicated. The healthy block is in a different compaction group and
/// earlier in time, so the failure cannot hold it back.
fn unsupported_meta_version_fails_only_that_block(fx: &Fixture) {
    let good = Block::new(BLOCK_A).time_range(0, 1000);
    let bad = Block::new(BLOCK_B).labels(&[("test_labelname", "other-group")]).time_range(2000, 3000).version(2);
    fx.add_block(&good);
    fx.add_block(&bad);

    let run = fx.replicate(&[]);
    run.assert_exit(1)
        .assert_replicated(&good)
        .assert_outcome(BLOCK_B, "failed")
        .assert_counts(&[("replicated", 1), ("failed", 1)]);
    assert!(run.entry(BLOCK_B)["error"].is_string(), "failed block should carry an error: {:#}", run.report);
    fx.assert_target_has_exactly(&[BLOCK_A]);
}
