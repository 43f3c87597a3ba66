//! Server-side copies between two buckets of one S3 server (s3s-fs, moto) and two containers of
//! one azurite account, through the binary:
//! no object's bytes pass through bucketflow, the copies are verified and committed in order,
//! an AccessDenied falls back to streaming, and `--server-side-copy never` streams.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{files, fs_yaml, synth_folder};
use support::process::{kill, spawn, wait_at_most, wait_for, BIN};
use support::servers::{self, s3_yaml, Server};

/// A synthetic Thanos bucket in a folder (3 groups of 3 blocks), written to bucket `source` of
/// `s3`; returns the folder.
fn fill_source(s3: &Server, root: &Path) -> PathBuf {
    let origin = root.join("origin");
    synth_folder(
        &origin,
        SynthSpec { groups: 3, blocks_per_group: 3, max_chunk_bytes: 256 * 1024, ..SynthSpec::default() },
    );
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &fs_yaml(&origin), "--objstore-to.config"])
        .arg(s3_yaml(s3, "source", ""))
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    origin
}

/// The data objects (all but meta.json) of a folder bucket: how many, and their bytes.
fn data_objects(dir: &Path) -> (u64, u64) {
    let data: Vec<u64> =
        files(dir).iter().filter(|(p, _)| !p.ends_with("meta.json")).map(|(_, d)| d.len() as u64).collect();
    (data.len() as u64, data.iter().sum())
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// One run of a sidecar from `from` to `to` with `extra` flags: its metrics after the run, as
/// series name and labels to value, and its log.
fn one_run(from: &str, to: &str, extra: &[&str]) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut args = vec!["replicate", "--objstore.config", from, "--objstore-to.config", to];
    args.extend(["--interval", "1h", "--http-address", "127.0.0.1:0"]);
    args.extend(extra);
    let (mut child, lines) = spawn(&args);
    let mut seen = Vec::new();
    let serving = wait_for(&lines, "serving HTTP", &mut seen);
    let address = serving.split("address=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    wait_for(&lines, "replication run finished", &mut seen);
    let metrics = http_get(&address, "/metrics")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
        .collect();
    kill(&child, "-TERM");
    assert!(wait_at_most(&mut child, std::time::Duration::from_secs(30), "the sidecar").success());
    (metrics, seen)
}

fn metric(metrics: &BTreeMap<String, f64>, series: &str) -> u64 {
    metrics.get(series).copied().unwrap_or(0.0) as u64
}

const SERVER_SIDE: &str = "bucketflow_bytes_copied_total{method=\"server_side\"}";
const STREAM: &str = "bucketflow_bytes_copied_total{method=\"stream\"}";
const SOURCE_GETS: &str = "bucketflow_requests_total{bucket=\"source\",operation=\"get\"}";
const COPIES: &str = "bucketflow_requests_total{bucket=\"target\",operation=\"copy\"}";

/// Asserts that each group's blocks were committed in ascending ULID order (the synthetic
/// blocks of a group have ascending times and ULIDs), from the log's `block replicated` lines;
/// returns how many were.
fn assert_committed_in_order(log: &[String]) -> usize {
    let field = |line: &str, name: &str| {
        line.split(&format!(" {name}=")).nth(1).map(|rest| rest.split_whitespace().next().unwrap().to_string())
    };
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut committed = 0;
    for line in log.iter().filter(|l| l.contains("block replicated")) {
        let (block, group) = (field(line, "block").unwrap(), field(line, "group").unwrap());
        if let Some(before) = last.insert(group.clone(), block.clone()) {
            assert!(before < block, "group {group}: {block} committed after {before}");
        }
        committed += 1;
    }
    committed
}

/// Replicates `source` to `target/replica` of `s3` (after filling the source) and checks what
/// moved how; returns the metrics, the log, the origin folder and the temporary folder.
fn replicate_between_buckets(
    s3: &Server,
    extra: &[&str],
) -> (BTreeMap<String, f64>, Vec<String>, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let origin = fill_source(s3, tmp.path());
    let (metrics, log) = one_run(&s3_yaml(s3, "source", ""), &s3_yaml(s3, "target", "replica"), extra);
    assert_eq!(assert_committed_in_order(&log), 9, "{log:#?}");
    (metrics, log, origin, tmp)
}

/// The target bucket's objects, read back through bucketflow into a folder, equal the origin's.
fn assert_target_equals(s3: &Server, origin: &Path, tmp: &Path) {
    let back = tmp.join("back");
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &s3_yaml(s3, "target", "replica"), "--objstore-to.config"])
        .arg(fs_yaml(&back))
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files(&back), files(origin), "every object arrives byte for byte");
}

fn copies_server_side(s3: &Server) {
    let (metrics, log, origin, tmp) = replicate_between_buckets(s3, &[]);
    let (objects, bytes) = data_objects(&origin);
    assert!(log.iter().any(|l| l.contains("objects are copied server-side")), "{log:#?}");
    assert_eq!(metric(&metrics, SERVER_SIDE), bytes, "{metrics:#?}");
    assert_eq!(metric(&metrics, STREAM), 0, "{metrics:#?}");
    assert_eq!(metric(&metrics, COPIES), objects, "one copy request an object: {metrics:#?}");
    // The source is read for its 9 meta.json files only: no object body passes through.
    assert_eq!(metric(&metrics, SOURCE_GETS), 9, "{metrics:#?}");
    assert_target_equals(s3, &origin, tmp.path());
}

#[test]
fn two_buckets_of_s3s_fs_copy_server_side() {
    let Some(s3) = servers::s3s_fs(&["source", "target"]) else { return };
    copies_server_side(&s3);
}

#[test]
fn two_buckets_of_moto_copy_server_side() {
    let Some(s3) = servers::moto(&["source", "target"]) else { return };
    copies_server_side(&s3);
}

/// Objects above 1 MiB copied in 5 MiB parts (UploadPartCopy), as objects above 5 GiB are.
fn copies_large_objects_in_parts(s3: &Server) {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let spec = SynthSpec {
        groups: 1,
        blocks_per_group: 2,
        max_chunk_files: 2,
        min_chunk_bytes: 11 << 20,
        max_chunk_bytes: 12 << 20,
        ..SynthSpec::default()
    };
    synth_folder(&origin, spec);
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", &fs_yaml(&origin), "--objstore-to.config"])
        .arg(s3_yaml(s3, "source", ""))
        .args(["--single-run", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (from, to) = (s3_yaml(s3, "source", ""), s3_yaml(s3, "target", "replica"));
    let (metrics, log) = one_run(&from, &to, &["--debug.multipart-copy-above", "1048576"]);
    assert_eq!(assert_committed_in_order(&log), 2, "{log:#?}");
    let (_, bytes) = data_objects(&origin);
    assert_eq!(metric(&metrics, SERVER_SIDE), bytes, "{metrics:#?}");
    assert_eq!(metric(&metrics, STREAM), 0, "{metrics:#?}");
    // A multipart upload's ETag ends in its number of parts: 11 to 12 MiB make three of 5 MiB.
    let store = s3.s3_store("target");
    let chunk = files(&origin).into_keys().find(|p| p.to_str().unwrap().contains("chunks/")).unwrap();
    let path = object_store::path::Path::from(format!("replica/{}", chunk.to_str().unwrap()));
    let head = object_store::ObjectStoreExt::head(&store, &path);
    let e_tag = tokio::runtime::Runtime::new().unwrap().block_on(head).unwrap().e_tag.unwrap();
    assert!(e_tag.trim_matches('"').ends_with("-3"), "{e_tag}");
    assert_target_equals(s3, &origin, tmp.path());
}

#[test]
fn large_objects_copy_in_parts_on_s3s_fs() {
    let Some(s3) = servers::s3s_fs(&["source", "target"]) else { return };
    copies_large_objects_in_parts(&s3);
}

#[test]
fn large_objects_copy_in_parts_on_moto() {
    let Some(s3) = servers::moto(&["source", "target"]) else { return };
    copies_large_objects_in_parts(&s3);
}

#[test]
fn never_streams_every_object() {
    let Some(s3) = servers::s3s_fs(&["source", "target"]) else { return };
    let (metrics, log, origin, tmp) = replicate_between_buckets(&s3, &["--server-side-copy", "never"]);
    let (objects, bytes) = data_objects(&origin);
    assert!(!log.iter().any(|l| l.contains("copied server-side")), "{log:#?}");
    assert_eq!(metric(&metrics, SERVER_SIDE), 0, "{metrics:#?}");
    assert_eq!(metric(&metrics, STREAM), bytes, "{metrics:#?}");
    assert_eq!(metric(&metrics, COPIES), 0, "{metrics:#?}");
    assert_eq!(metric(&metrics, SOURCE_GETS), 9 + objects, "{metrics:#?}");
    assert_target_equals(&s3, &origin, tmp.path());
}

#[test]
fn access_denied_to_a_copy_streams_the_rest_of_the_run_with_one_warning() {
    let Some(s3) = servers::s3s_fs(&["source", "target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = fill_source(&s3, tmp.path());
    let (objects, bytes) = data_objects(&origin);
    // The buckets as bucketflow sees them, through a proxy that denies every copy.
    let proxy = DenyCopies::start(s3.port());
    let (host, proxy_host) = (s3.endpoint.trim_start_matches("http://"), proxy.endpoint.trim_start_matches("http://"));
    let through = |bucket: &str, prefix: &str| {
        let yaml = s3_yaml(&s3, bucket, prefix);
        assert!(yaml.contains(&format!("endpoint: {host}\n")), "{yaml}");
        yaml.replace(host, proxy_host)
    };
    // Two objects in flight at most: the copies asked for before the first refusal came back.
    let (metrics, log) = one_run(&through("source", ""), &through("target", "replica"), &["--concurrency", "2"]);
    assert_eq!(assert_committed_in_order(&log), 9, "{log:#?}");
    let warnings = log.iter().filter(|l| l.contains("the provider refused a server-side copy")).count();
    assert!(proxy.denied.load(Ordering::SeqCst) >= 1, "{metrics:#?}");
    assert_eq!(warnings, 1, "{log:#?}");
    assert_eq!(metric(&metrics, SERVER_SIDE), 0, "{metrics:#?}");
    assert_eq!(metric(&metrics, STREAM), bytes, "{metrics:#?}");
    assert_eq!(metric(&metrics, SOURCE_GETS), 9 + objects, "every object streamed: {metrics:#?}");
    let copies = metric(&metrics, COPIES);
    assert!((1..=2).contains(&copies), "only the copies in flight at the refusal were tried: {copies}");
    assert_target_equals(&s3, &origin, tmp.path());
}

/// An HTTP proxy on 127.0.0.1 in front of an S3 server that answers every copy (a PUT with
/// `x-amz-copy-source`) with 403 AccessDenied, as S3 does when the target's credentials cannot
/// read the source, and passes every other request through unchanged, one a connection.
struct DenyCopies {
    endpoint: String,
    denied: Arc<AtomicUsize>,
}

impl DenyCopies {
    fn start(upstream: u16) -> DenyCopies {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let denied = Arc::new(AtomicUsize::new(0));
        let counter = denied.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = Self::serve(client, upstream, &counter);
                });
            }
        });
        DenyCopies { endpoint, denied }
    }

    fn serve(mut client: TcpStream, upstream: u16, denied: &AtomicUsize) -> std::io::Result<()> {
        let mut reader = BufReader::new(client.try_clone()?);
        let mut head = Vec::new();
        let mut length = 0usize;
        let mut copy = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            copy |= lower.starts_with("x-amz-copy-source:");
            if line == "\r\n" {
                // The upstream closes the connection after its answer, which ends this one.
                head.extend_from_slice(b"connection: close\r\n\r\n");
                break;
            }
            if !lower.starts_with("connection:") {
                head.extend_from_slice(line.as_bytes());
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        if copy && head.starts_with(b"PUT ") {
            denied.fetch_add(1, Ordering::SeqCst);
            let answer = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            return write!(
                client,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
        let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
        server.write_all(&head)?;
        server.write_all(&body)?;
        std::io::copy(&mut server, &mut client)?;
        Ok(())
    }
}

fn azure_yaml(server: &Server, container: &str, prefix: &str) -> String {
    format!(
        "type: AZURE\nconfig:\n  storage_account: {}\n  storage_account_key: {}\n  container: {container}\n  endpoint: {}\nprefix: {prefix}\n",
        servers::AZURITE_ACCOUNT,
        servers::AZURITE_KEY,
        server.azure_account_url()
    )
}

#[test]
fn two_containers_of_one_azurite_account_copy_server_side() {
    let Some(azure) = servers::azurite(&["source", "target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    synth_folder(
        &origin,
        SynthSpec { groups: 3, blocks_per_group: 3, max_chunk_bytes: 256 * 1024, ..SynthSpec::default() },
    );
    let single = |from: &str, to: &str| {
        let out = Command::new(BIN)
            .args(["replicate", "--objstore.config", from, "--objstore-to.config", to])
            .args(["--single-run", "--http-address", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    single(&fs_yaml(&origin), &azure_yaml(&azure, "source", ""));
    let (from, to) = (azure_yaml(&azure, "source", ""), azure_yaml(&azure, "target", "replica"));
    let (metrics, log) = one_run(&from, &to, &[]);
    assert_eq!(assert_committed_in_order(&log), 9, "{log:#?}");
    let (objects, bytes) = data_objects(&origin);
    assert!(log.iter().any(|l| l.contains("AzureCopy(")), "{log:#?}");
    assert_eq!(metric(&metrics, SERVER_SIDE), bytes, "{metrics:#?}");
    assert_eq!(metric(&metrics, STREAM), 0, "{metrics:#?}");
    assert_eq!(metric(&metrics, COPIES), objects, "{metrics:#?}");
    assert_eq!(metric(&metrics, SOURCE_GETS), 9, "only the meta.json files are read: {metrics:#?}");
    let back = tmp.path().join("back");
    single(&to, &fs_yaml(&back));
    assert_eq!(files(&back), files(&origin), "every object arrives byte for byte");
    // `never` streams between the same two containers.
    let again = azure_yaml(&azure, "target", "again");
    let (metrics, _) = one_run(&from, &again, &["--server-side-copy", "never"]);
    assert_eq!((metric(&metrics, SERVER_SIDE), metric(&metrics, STREAM)), (0, bytes), "{metrics:#?}");
}
