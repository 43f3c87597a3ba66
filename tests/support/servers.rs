//! Real object-store servers on 127.0.0.1 for integration tests, started and stopped by the test
//! itself: s3s-fs and moto (S3), azurite (Azure Blob), fake-gcs-server (GCS).
//!
//! Reached through `mod support;` as `support::servers`. Install the tools with
//! `.ci/install-test-servers.sh`. A missing tool makes the constructor print
//! `skipping: <tool> not installed` and return `None`, unless [`require_servers`] is true (under CI,
//! or with `BUCKETFLOW_REQUIRE_SERVERS` set), where it panics instead.
//!
//! Every server listens on 127.0.0.1 only, on a free port, with its data in a temporary directory
//! that goes away with the [`Server`]; dropping the [`Server`] kills and reaps the process.
//! Std only: container creation on azurite signs its request with the SHA-256 / HMAC below.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

/// A running server. For S3 servers `access_key`/`secret_key` are the credentials to sign with and
/// `region` the region to sign for. For azurite `access_key` is the account name
/// ([`AZURITE_ACCOUNT`]), `secret_key` the account key ([`AZURITE_KEY`]) and `region` is empty;
/// the account's blob URL is `{endpoint}/devstoreaccount1` (see [`Server::azure_account_url`]).
pub struct Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    tool: &'static str,
    child: Child,
    /// Data directory (the S3 root for s3s-fs; azurite's `--location`), inside `dir`.
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    /// An object_store client of `bucket` on this S3 server, to look at or prepare a bucket
    /// beside bucketflow (path-style requests, plain HTTP).
    pub fn s3_store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_bucket_name(bucket)
            .build()
            .expect("an S3 client of a test server")
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The server's data directory. For s3s-fs each bucket is a directory under it and each object a
    /// file under that (its metadata lives in hidden files at the top level, not in the bucket).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Azure account URL, for `MicrosoftAzureBuilder::with_endpoint`.
    pub fn azure_account_url(&self) -> String {
        format!("{}/{}", self.endpoint, AZURITE_ACCOUNT)
    }

    /// What the server printed so far (stdout then stderr).
    pub fn logs(&self) -> String {
        read_logs(self.dir.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tool", &self.tool)
            .field("endpoint", &self.endpoint)
            .field("pid", &self.child.id())
            .finish()
    }
}

/// True when servers must be there: env `CI` or `BUCKETFLOW_REQUIRE_SERVERS` is set (to anything
/// but an empty string, `0` or `false`).
pub fn require_servers() -> bool {
    ["CI", "BUCKETFLOW_REQUIRE_SERVERS"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0" && v != "false"))
}

/// s3s-fs (S3 over a directory) with each of `buckets` created as a directory under its root.
/// Credentials are checked (SigV4); any region is accepted, `region` is `us-east-1`.
/// Bucket names must be valid S3 names (3-63 chars, lowercase, digits, `-`, `.`).
pub fn s3s_fs(buckets: &[&str]) -> Option<Server> {
    let exe = tool("s3s-fs", &["--version"])?;
    let (access_key, secret_key) = ("bucketflow-test", "bucketflow-test-secret");
    let mut server = start("s3s-fs", |dir, port| {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).unwrap();
        }
        let mut cmd = Command::new(&exe);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(&root)
            // Errors and warnings only; a developer's RUST_LOG is meant for bucketflow.
            .env("RUST_LOG", "warn");
        (cmd, root)
    });
    server.access_key = access_key.into();
    server.secret_key = secret_key.into();
    server.region = "us-east-1".into();
    Some(server)
}

/// Thanos objstore YAML for `bucket` of an S3 server, under `prefix`.
pub fn s3_yaml(server: &Server, bucket: &str, prefix: &str) -> String {
    let host = server.endpoint.trim_start_matches("http://");
    format!(
        "type: S3\nconfig:\n  bucket: {bucket}\n  endpoint: {host}\n  region: {}\n  access_key: {}\n  secret_key: {}\n  insecure: true\nprefix: {prefix}\n",
        server.region, server.access_key, server.secret_key
    )
}

/// moto's S3 mock (`moto_server`) with each of `buckets` created in `us-east-1`. It accepts any
/// credentials, but object requests must be signed (unsigned ones get 403); bucket creation is
/// not, so it is done here with a plain `PUT /<bucket>`.
pub fn moto(buckets: &[&str]) -> Option<Server> {
    let exe = tool("moto_server", &["--help"])?;
    let mut server = start("moto_server", |dir, port| {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new(&exe);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]).current_dir(&data).env("PYTHONUNBUFFERED", "1");
        (cmd, data)
    });
    for bucket in buckets {
        let (status, body) = http(server.port(), "PUT", &format!("/{bucket}"), &[], "")
            .unwrap_or_else(|e| panic!("moto: creating bucket {bucket}: {e}"));
        if status != 200 {
            panic!("moto: creating bucket {bucket}: HTTP {status}: {body}");
        }
    }
    server.access_key = "testing".into();
    server.secret_key = "testing".into();
    server.region = "us-east-1".into();
    Some(server)
}

/// azurite's Blob service (`azurite-blob`) with each of `containers` created in account
/// `devstoreaccount1` (signed with the dev key). Telemetry is disabled. Container names must be
/// valid Azure names (3-63 chars, lowercase, digits, `-`).
pub fn azurite(containers: &[&str]) -> Option<Server> {
    let exe = tool("azurite-blob", &["--version"])?;
    let mut server = start("azurite-blob", |dir, port| {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new(&exe);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--disableProductStyleUrl", "--loose", "--silent"])
            .current_dir(&data);
        (cmd, data)
    });
    for container in containers {
        create_azure_container(server.port(), container);
    }
    server.access_key = AZURITE_ACCOUNT.into();
    server.secret_key = AZURITE_KEY.into();
    server.region = String::new();
    Some(server)
}

/// A real Prometheus (Debian's package) on 127.0.0.1 with `config` as its configuration; rule
/// files it names must be absolute paths.
/// fake-gcs-server (the GCS emulator), serving the buckets that `seed` writes as folders under
/// the directory it is given (each folder a bucket, each file an object; read once, at start),
/// in memory, over plain HTTP. Its XML API serves object_store's reads (GET, ranged GET, HEAD,
/// listings) and deletes; it refuses object_store's writes (`400 invalid uploadType`).
pub fn fake_gcs(seed: impl Fn(&Path)) -> Option<Server> {
    let exe = tool("fake-gcs-server", &["-help"])?;
    Some(start("fake-gcs-server", |dir, port| {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        seed(&data);
        let public = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(&exe);
        cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string()])
            // Requests must name this host exactly, as object_store's do with its base URL.
            .args(["-public-host", &public, "-external-url", &format!("http://{public}")])
            .args(["-backend", "memory", "-log-level", "warn", "-data"])
            .arg(&data);
        (cmd, data)
    }))
}

pub fn prometheus(config: &str) -> Option<Server> {
    let exe = tool("prometheus", &["--version"])?;
    Some(start("prometheus", |dir, port| {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let data = dir.join("data");
        let mut cmd = Command::new(&exe);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        (cmd, data)
    }))
}

// ---------------------------------------------------------------------------------------------
// Tools and processes

/// `name`'s path when it is installed and `name probe...` exits 0; see [`tool`].
pub fn installed_tool(name: &'static str, probe: &[&str]) -> Option<PathBuf> {
    tool(name, probe)
}

/// The tool's path if it is installed and runs (`probe` args, e.g. `--version`, exit 0); `None`
/// (after saying so) when it isn't and servers are not required; panics when they are.
fn tool(name: &'static str, probe: &[&str]) -> Option<PathBuf> {
    type Found = Vec<(&'static str, Option<PathBuf>)>;
    static FOUND: OnceLock<Mutex<Found>> = OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let found = match cache.iter().find(|(n, _)| *n == name) {
        Some((_, found)) => found.clone(),
        None => {
            let found = find_executable(name).filter(|exe| {
                Command::new(exe)
                    .args(probe)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            cache.push((name, found.clone()));
            found
        }
    };
    drop(cache);
    match found {
        Some(exe) => Some(exe),
        None if require_servers() => panic!(
            "{name} is not installed (or does not run) and servers are required (CI or \
             BUCKETFLOW_REQUIRE_SERVERS is set): run .ci/install-test-servers.sh"
        ),
        None => {
            eprintln!("skipping: {name} not installed (run .ci/install-test-servers.sh)");
            None
        }
    }
}

/// `name` on PATH, or in cargo's bin directory (where `cargo install` puts s3s-fs).
fn find_executable(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(cargo_home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A port that was free a moment ago (bound on 127.0.0.1:0 and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("binding 127.0.0.1:0").port()
}

/// Starts the process that `command(dir, port)` builds (with stdout/stderr captured in files in a
/// fresh temp dir) and waits until it answers HTTP. If it exits first (say, another process took
/// the port in between), tries again on another port, then panics with what it printed.
fn start(tool: &'static str, mut command: impl FnMut(&Path, u16) -> (Command, PathBuf)) -> Server {
    let mut failures = String::new();
    for attempt in 1..=START_ATTEMPTS {
        let dir = tempfile::Builder::new().prefix(&format!("bucketflow-{tool}-")).tempdir().expect("creating temp dir");
        let port = free_port();
        let (mut cmd, data) = command(dir.path(), port);
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: spawning {}: {e}", describe(&cmd)));
        let mut server = Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: String::new(),
            secret_key: String::new(),
            region: String::new(),
            tool,
            child,
            data,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                failures += &format!(
                    "attempt {attempt}: `{}` exited with {status} before answering:\n{}\n",
                    describe(&cmd),
                    server.logs()
                );
                break;
            }
            // Any HTTP answer will do (S3 servers answer 403 to an unsigned GET /); the process must
            // still be running, lest the answer came from someone else who took the port.
            if http(port, "GET", "/", &[], "").is_ok() && matches!(server.child.try_wait(), Ok(None)) {
                return server;
            }
            if Instant::now() > deadline {
                panic!(
                    "{tool}: `{}` did not answer HTTP on 127.0.0.1:{port} within {READY_TIMEOUT:?}; \
                     its output:\n{}\n{failures}",
                    describe(&cmd),
                    server.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{tool} failed to start:\n{failures}");
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
}

fn read_logs(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("--- stdout ---\n{}--- stderr ---\n{}", read("stdout.log"), read("stderr.log"))
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client (one request per connection)

/// Sends one request to 127.0.0.1:`port` and returns the status code and body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    request += body;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not HTTP: {response:?}")))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// Azure: Create Container with SharedKey auth

fn create_azure_container(port: u16, container: &str) {
    let version = "2021-08-06";
    let date = http_date(SystemTime::now());
    let path = format!("/{AZURITE_ACCOUNT}/{container}");
    // https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key
    // 11 empty standard headers (Content-Length 0 counts as empty), then x-ms-* headers, then the
    // resource: path-style URLs repeat the account.
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}{path}\nrestype:container"
    );
    let key = base64_decode(AZURITE_KEY);
    let signature = base64_encode(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let auth = format!("SharedKey {AZURITE_ACCOUNT}:{signature}");
    let headers = [("x-ms-date", date.as_str()), ("x-ms-version", version), ("Authorization", &auth)];
    let (status, body) = http(port, "PUT", &format!("{path}?restype=container"), &headers, "")
        .unwrap_or_else(|e| panic!("azurite: creating container {container}: {e}"));
    if status != 201 {
        panic!("azurite: creating container {container}: HTTP {status}: {body}");
    }
}

/// RFC 1123 date, e.g. `Wed, 25 Nov 2026 17:55:54 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Days since 1970-01-01 to civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(month - 1) as usize];
    format!("{weekday}, {day:02} {month} {year} {:02}:{:02}:{:02} GMT", rem / 3600, rem % 3600 / 60, rem % 60)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c).expect("invalid base64") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).chain(message.iter().copied()).collect();
    let inner = sha256(&inner);
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).chain(inner).collect();
    sha256(&outer)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(chunk[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Self-checks of the std-only crypto (known answers), for the smoke test to call.
pub fn self_check() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(hex(&sha256(&[b'a'; 1000])), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
    // RFC 4231 test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
    assert_eq!(base64_decode("Zm9vYmE="), b"fooba");
    assert_eq!(base64_encode(&base64_decode(AZURITE_KEY)), AZURITE_KEY);
    assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(1_795_715_754)), "Thu, 26 Nov 2026 17:55:54 GMT");
    assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
}
