//! Replication through real object-store servers on 127.0.0.1 (s3s-fs, moto, azurite), driven
//! through the binary with Thanos objstore YAML, as an operator would run it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{files, fs_yaml, synth_folder};
use support::process::BIN;
use support::servers::{self, s3_yaml, Server};

fn azure_yaml(server: &Server, container: &str) -> String {
    format!(
        "type: AZURE\nconfig:\n  storage_account: {}\n  storage_account_key: {}\n  container: {container}\n  endpoint: {}\n",
        servers::AZURITE_ACCOUNT,
        servers::AZURITE_KEY,
        server.azure_account_url()
    )
}

/// Runs one replication and returns its report and stderr.
fn replicate(from: &str, to: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(BIN)
        .args(["replicate", "--objstore.config", from, "--objstore-to.config", to, "--single-run"])
        .args(["--http-address", "127.0.0.1:0", "--report-file"])
        .arg(report.path())
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replication failed: {stderr}");
    (serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap(), stderr)
}

fn count(report: &serde_json::Value, outcome: &str) -> u64 {
    report["counts"][outcome].as_u64().unwrap()
}

/// A synthetic Thanos bucket in a folder: 3 groups x 3 blocks of small objects.
fn source_folder(root: &Path) -> (PathBuf, usize) {
    source_folder_of(
        root,
        SynthSpec { groups: 3, blocks_per_group: 3, max_chunk_bytes: 256 * 1024, ..SynthSpec::default() },
    )
}

fn source_folder_of(root: &Path, spec: SynthSpec) -> (PathBuf, usize) {
    let dir = root.join("origin");
    let n = synth_folder(&dir, spec);
    (dir, n)
}

/// Two blocks of one group, each with one chunk segment of `mib` MiB (drawn from the range).
fn large_objects(root: &Path, mib: std::ops::RangeInclusive<usize>) -> (PathBuf, usize) {
    let spec = SynthSpec {
        groups: 1,
        blocks_per_group: 2,
        max_chunk_files: 1,
        min_chunk_bytes: *mib.start() << 20,
        max_chunk_bytes: *mib.end() << 20,
        ..SynthSpec::default()
    };
    source_folder_of(root, spec)
}

/// fs -> S3 bucket a -> S3 bucket b -> (azure, when given) -> fs, then byte equality end to end.
fn chain(s3: &Server, azure: Option<&Server>) {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    let back = tmp.path().join("back");
    let (a, b) = (s3_yaml(s3, "source", ""), s3_yaml(s3, "target", "replica"));
    let (report, _) = replicate(&fs_yaml(&origin), &a, &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "filesystem -> S3: {report}");
    let (report, _) = replicate(&a, &b, &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "S3 -> S3: {report}");
    let (report, _) = replicate(&a, &b, &[]);
    assert_eq!(count(&report, "already_replicated"), n as u64, "a re-run on S3 copies nothing: {report}");
    assert_eq!(report["bytes_copied"], 0);

    let last = match azure {
        Some(azure) => {
            let c = azure_yaml(azure, "blocks");
            let (report, _) = replicate(&b, &c, &[]);
            assert_eq!(count(&report, "replicated"), n as u64, "S3 -> Azure: {report}");
            c
        }
        None => b,
    };
    let (report, _) = replicate(&last, &fs_yaml(&back), &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "back to the filesystem: {report}");
    assert_eq!(files(&back), files(&origin), "every object arrives byte for byte");
}

#[test]
fn filesystem_s3_s3_azure_filesystem_on_s3s_fs_and_azurite() {
    let (Some(s3), Some(azure)) = (servers::s3s_fs(&["source", "target"]), servers::azurite(&["blocks"])) else {
        return;
    };
    chain(&s3, Some(&azure));
}

#[test]
fn filesystem_s3_s3_filesystem_on_moto() {
    let Some(s3) = servers::moto(&["source", "target"]) else { return };
    chain(&s3, None);
}

#[test]
fn one_bucket_under_two_prefixes_copies_server_side() {
    let Some(s3) = servers::s3s_fs(&["shared"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    let (from, to) = (s3_yaml(&s3, "shared", "from"), s3_yaml(&s3, "shared", "to"));
    replicate(&fs_yaml(&origin), &from, &[]);
    let (report, stderr) = replicate(&from, &to, &[]);
    assert!(stderr.contains("copied server-side"), "{stderr}");
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let back = tmp.path().join("back");
    replicate(&to, &fs_yaml(&back), &[]);
    assert_eq!(files(&back), files(&origin));
}

#[test]
fn a_partial_upload_in_an_s3_target_is_resumed() {
    let Some(s3) = servers::s3s_fs(&["source", "target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    // An earlier run that stopped half way: one block's index, truncated, and no meta.json.
    let index = files(&origin).keys().find(|p| p.ends_with("index")).unwrap().clone();
    let store = s3.s3_store("target");
    let path = object_store::path::Path::from(index.to_str().unwrap());
    let put = object_store::ObjectStoreExt::put(&store, &path, object_store::PutPayload::from_static(b"trunc"));
    tokio::runtime::Runtime::new().unwrap().block_on(put).unwrap();
    let target = s3_yaml(&s3, "target", "");
    let (report, _) = replicate(&fs_yaml(&origin), &target, &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let back = tmp.path().join("back");
    replicate(&target, &fs_yaml(&back), &[]);
    assert_eq!(files(&back), files(&origin), "the truncated index was replaced");
}

#[test]
fn objects_larger_than_a_part_go_through_multipart_uploads() {
    let (Some(s3), Some(azure)) = (servers::s3s_fs(&["big"]), servers::azurite(&["big"])) else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Chunk segments of 9 to 13 MiB: two or more 5 MiB parts each.
    let (origin, n) = large_objects(tmp.path(), 9..=13);
    let (s3, az) = (s3_yaml(&s3, "big", ""), azure_yaml(&azure, "big"));
    let part = ["--part-size", "5242880"];
    // Both targets take parts by number, so that a failed part can be sent again alone.
    let by_number = "large objects are uploaded by part number";
    let (report, log) = replicate(&fs_yaml(&origin), &s3, &part);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert!(log.contains(by_number), "{log}");
    let (report, log) = replicate(&s3, &az, &part);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert!(log.contains(by_number), "{log}");
    let back = tmp.path().join("back");
    replicate(&az, &fs_yaml(&back), &part);
    assert_eq!(files(&back), files(&origin));
    // moto as well, whose parts are sent with a CRC64NVME checksum each, listed again in the
    // request that completes the upload.
    let Some(moto) = servers::moto(&["big"]) else { return };
    let moto = s3_yaml(&moto, "big", "");
    let (report, _) = replicate(&s3, &moto, &part);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let back = tmp.path().join("back-from-moto");
    replicate(&moto, &fs_yaml(&back), &part);
    assert_eq!(files(&back), files(&origin));
}

/// An S3 target with `sse_config` SSE-KMS gets every object written with that encryption, as
/// moto records it (its `/moto-api/data.json` shows each object's encryption and key).
#[test]
fn an_sse_kms_target_on_moto_gets_every_object_encrypted() {
    let Some(s3) = servers::moto(&["encrypted"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    let target = s3_yaml(&s3, "encrypted", "").replace(
        "  insecure: true\n",
        "  insecure: true\n  sse_config:\n    type: SSE-KMS\n    kms_key_id: alias/bucketflow-test\n",
    );
    let (report, _) = replicate(&fs_yaml(&origin), &target, &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let data: serde_json::Value = {
        let address = s3.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        use std::io::{Read, Write};
        write!(stream, "GET /moto-api/data.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        // moto may answer in chunks; the JSON document is what lies between the outer braces.
        let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
        serde_json::from_str(json).unwrap()
    };
    let keys: Vec<&serde_json::Value> =
        data["s3"]["FakeKey"].as_array().unwrap().iter().filter(|k| k["bucket_name"] == "encrypted").collect();
    assert_eq!(keys.len(), files(&origin).len(), "every object, meta.json included");
    for key in keys {
        assert_eq!(key["encryption"], "aws:kms", "{key}");
        assert_eq!(key["kms_key_id"], "alias/bucketflow-test", "{key}");
    }
}

/// An S3 bucket with `sse_config` SSE-C (a key file) is written and read back with the
/// customer's key, end to end through the binary. moto takes SSE-C headers without acting on
/// them, so this shows the configuration working both ways, not the encryption itself.
#[test]
fn an_sse_c_bucket_on_moto_is_written_and_read_back_with_the_customer_key() {
    let Some(s3) = servers::moto(&["customer"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    let key = tmp.path().join("sse-c.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let bucket = s3_yaml(&s3, "customer", "").replace(
        "  insecure: true\n",
        &format!("  insecure: true\n  sse_config:\n    type: SSE-C\n    encryption_key: {}\n", key.display()),
    );
    let (report, _) = replicate(&fs_yaml(&origin), &bucket, &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let back = tmp.path().join("back");
    let (report, _) = replicate(&bucket, &fs_yaml(&back), &[]);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert_eq!(files(&back), files(&origin), "read back with the key, byte for byte");
}

/// Over plain HTTP each request body carries a CRC64NVME checksum that the server verifies, in
/// place of the body's SHA256 in the signature. A byte damaged on its way (by a proxy, as a
/// faulty link would) is refused by the server and the object is sent again, so the target holds
/// the source's bytes. Without the checksum, the damaged object would be stored with its right
/// size and pass every check bucketflow makes of a block without SHA256s in its meta.json.
#[test]
fn a_body_damaged_on_its_way_to_a_plain_http_target_is_refused_by_its_checksum_and_sent_again() {
    let Some(s3) = servers::s3s_fs(&["target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = source_folder(tmp.path());
    let proxy = Proxy::to(s3.port(), Fault::DamageFirstBody);
    let direct = s3_yaml(&s3, "target", "");
    let (report, log) = replicate(&fs_yaml(&origin), &proxy.yaml(&s3, &direct), &[]);
    assert_eq!(proxy.hits(), 1, "one body was damaged");
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    let back = tmp.path().join("back");
    replicate(&direct, &fs_yaml(&back), &[]);
    assert!(files(&back) == files(&origin), "the damaged body was kept");
    assert!(log.contains("BadDigest"), "the server refused the damaged body: {log}");
}

/// A server that does not know the checksum algorithm a multipart upload names refuses the upload
/// (MinIO before 2025 does, for CRC64NVME): over plain HTTP, the first refusal turns uploads to
/// signed parts that name none.
#[test]
fn a_server_that_knows_no_crc64nvme_still_takes_large_objects_over_plain_http() {
    let Some(s3) = servers::s3s_fs(&["target"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (origin, n) = large_objects(tmp.path(), 6..=7);
    let proxy = Proxy::to(s3.port(), Fault::RefuseChecksumAlgorithm);
    let direct = s3_yaml(&s3, "target", "");
    // One copy at a time, so that the second large object starts after the first was refused.
    let one_at_a_time = ["--part-size", "5242880", "--concurrency", "1"];
    let (report, log) = replicate(&fs_yaml(&origin), &proxy.yaml(&s3, &direct), &one_at_a_time);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert!(log.contains("large objects are uploaded by part number"), "{log}");
    assert_eq!(proxy.hits(), 1, "the first upload named CRC64NVME, and no upload after its refusal");
    assert!(log.contains("refused a multipart upload that names CRC64NVME"), "{log}");
    let back = tmp.path().join("back");
    replicate(&direct, &fs_yaml(&back), &[]);
    assert_eq!(files(&back), files(&origin));

    // Parts that wait a debugging latency go the same way.
    let refusing = Proxy::to(s3.port(), Fault::RefuseChecksumAlgorithm);
    let slow = s3_yaml(&s3, "target", "slow");
    let latency = [&one_at_a_time[..], &["--debug.latency", "1ms"]].concat();
    let (report, log) = replicate(&fs_yaml(&origin), &refusing.yaml(&s3, &slow), &latency);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert_eq!(refusing.hits(), 1, "{log}");

    // A server that takes the algorithm gets every upload checked.
    let counting = Proxy::to(s3.port(), Fault::CountChecksumAlgorithm);
    let other = s3_yaml(&s3, "target", "checked");
    let (report, log) = replicate(&fs_yaml(&origin), &counting.yaml(&s3, &other), &["--part-size", "5242880"]);
    assert_eq!(count(&report, "replicated"), n as u64, "{report}");
    assert_eq!(counting.hits(), n, "each block's one large object named CRC64NVME");
    assert!(!log.contains("refused a multipart upload"), "{log}");
}

/// What a [`Proxy`] does to the requests it forwards.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// Flips one bit in the first request body of 1 KiB or more sent with a PUT.
    DamageFirstBody,
    /// Answers a request that names a checksum algorithm with a 400 of its own.
    RefuseChecksumAlgorithm,
    /// Counts the requests that name a checksum algorithm, and forwards them.
    CountChecksumAlgorithm,
}

/// A TCP proxy before a server, which forwards requests with its [`Fault`] and every answer as it
/// comes.
struct Proxy {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    fn to(upstream: u16, fault: Fault) -> Proxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = hits.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (to_client, from_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &from_server, &mut &to_client);
                    let _ = to_client.shutdown(Shutdown::Write);
                });
                let count = count.clone();
                std::thread::spawn(move || forward_requests(client, server, fault, &count));
            }
        });
        Proxy { port, hits }
    }

    /// The requests it damaged or refused.
    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `yaml`, a bucket of `server`, reached through this proxy.
    fn yaml(&self, server: &Server, yaml: &str) -> String {
        let proxied = yaml.replace(&format!(":{}\n", server.port()), &format!(":{}\n", self.port));
        assert_ne!(proxied, yaml);
        proxied
    }
}

/// Forwards one connection's requests in turn: each head to its blank line, then as many body
/// bytes as its Content-Length says (object_store sends no chunked bodies). A client waits for an
/// answer before its next request, so an answer of the proxy's own never cuts into another.
fn forward_requests(
    client: std::net::TcpStream,
    mut server: std::net::TcpStream,
    fault: Fault,
    hits: &std::sync::atomic::AtomicUsize,
) {
    use std::io::{BufRead, Read, Write};
    use std::sync::atomic::Ordering;
    let mut client = std::io::BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let before = head.len();
            if client.read_until(b'\n', &mut head).unwrap_or(0) == 0 {
                let _ = server.shutdown(std::net::Shutdown::Write);
                return;
            }
            if &head[before..] == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        match fault {
            Fault::DamageFirstBody => {
                if text.starts_with("put ")
                    && length >= 1024
                    && hits.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
                {
                    body[length / 2] ^= 1;
                }
            }
            Fault::CountChecksumAlgorithm => {
                if text.contains("\r\nx-amz-checksum-algorithm:") {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
            }
            Fault::RefuseChecksumAlgorithm => {
                if text.contains("\r\nx-amz-checksum-algorithm:") {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let error =
                        "<Error><Code>InvalidArgument</Code><Message>Invalid checksum provided.</Message></Error>";
                    let answer = format!("HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{error}", error.len());
                    let mut to_client: &std::net::TcpStream = client.get_ref();
                    if to_client.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        if server.write_all(&head).and_then(|()| server.write_all(&body)).is_err() {
            return;
        }
    }
}
