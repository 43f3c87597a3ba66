//! `--http.config` on a real process: every endpoint over TLS with a certificate of the test's
//! own CA, behind basic auth with a bcrypt user, and with client certificates required.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use bucketflow_dataflows::testkit::synth::SynthSpec;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::buckets::synth_folder;
use support::process::{drain, spawn, wait_at_most, wait_for_http_address};

/// A certificate and its key, both PEM.
struct Pem {
    cert: String,
    key: String,
}

/// The test's CA, a server certificate for 127.0.0.1 and a client certificate, both signed by
/// the CA, and a client certificate the CA never signed.
struct Certificates {
    ca: String,
    server: Pem,
    client: Pem,
    stranger: Pem,
}

fn certificates() -> Certificates {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        Pem { cert: cert.pem(), key: key.serialize_pem() }
    };
    let stranger_key = KeyPair::generate().unwrap();
    let stranger = CertificateParams::new(vec!["client".to_string()]).unwrap().self_signed(&stranger_key).unwrap();
    Certificates {
        ca: ca.pem(),
        server: signed(vec!["127.0.0.1".to_string()]),
        client: signed(vec!["client".to_string()]),
        stranger: Pem { cert: stranger.pem(), key: stranger_key.serialize_pem() },
    }
}

/// One HTTPS GET, trusting `ca`, with a client certificate and basic-auth credentials when
/// given. The status and body, or the TLS or I/O error as text.
fn https_get(
    address: &str,
    path: &str,
    ca: &str,
    client: Option<&Pem>,
    credentials: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(pem) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(pem.cert.as_bytes()).map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(connection, TcpStream::connect(address).map_err(|e| e.to_string())?);
    let authorization = credentials
        .map(|(user, password)| {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {encoded}\r\n")
        })
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // A server that closes without TLS's close_notify still sent a whole response before.
    if let Err(error) = stream.read_to_end(&mut response) {
        if response.is_empty() {
            return Err(error.to_string());
        }
    }
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(response.clone())?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Starts a sidecar from a small synthetic bucket with `web_config` (written next to the
/// certificates, which it names relatively) and returns it and its address once it serves.
fn sidecar(dir: &Path, certs: &Certificates, web_config: &str) -> (std::process::Child, String) {
    synth_folder(&dir.join("src"), SynthSpec { groups: 1, blocks_per_group: 2, ..SynthSpec::default() });
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    for (name, text) in
        [("ca.pem", &certs.ca), ("server.pem", &certs.server.cert), ("server-key.pem", &certs.server.key)]
    {
        std::fs::write(tls.join(name), text).unwrap();
    }
    std::fs::write(tls.join("web.yml"), web_config).unwrap();
    let from = format!("file://{}", dir.join("src").display());
    let to = format!("file://{}", dir.join("dst").display());
    let config = tls.join("web.yml");
    let (child, lines) = spawn(&[
        "replicate",
        "--from",
        &from,
        "--to",
        &to,
        "--interval",
        "1h",
        "--http-address",
        "127.0.0.1:0",
        "--http.config",
        config.to_str().unwrap(),
    ]);
    let mut seen = Vec::new();
    let address = wait_for_http_address(&lines, &mut seen);
    (child, address)
}

#[test]
fn tls_and_basic_auth_guard_every_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certificates();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS12\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  alice: {hash}\n"
    );
    let (mut child, address) = sidecar(tmp.path(), &certs, &web);

    let every_path = [
        "/",
        "/blocks",
        "/blocks/01HF8C28G0N8Z4R7CBP4ACHFGZ",
        "/api/v1/status",
        "/api/v1/groups",
        "/api/v1/blocks",
        "/api/v1/blocks/01HF8C28G0N8Z4R7CBP4ACHFGZ",
        "/metrics",
        "/-/healthy",
        "/-/ready",
    ];
    for path in every_path {
        let (status, body) = https_get(&address, path, &certs.ca, None, None).unwrap();
        assert_eq!(status, 401, "{path} without credentials: {body}");
        let (status, _) = https_get(&address, path, &certs.ca, None, Some(("alice", "wrong"))).unwrap();
        assert_eq!(status, 401, "{path} with a wrong password");
        let (status, _) = https_get(&address, path, &certs.ca, None, Some(("bob", "s3cret"))).unwrap();
        assert_eq!(status, 401, "{path} for an unknown user");
    }
    for path in every_path {
        let (status, body) = https_get(&address, path, &certs.ca, None, Some(("alice", "s3cret"))).unwrap();
        assert_eq!(status, 200, "{path} with credentials: {body}");
    }
    let (status, body) = https_get(&address, "/metrics", &certs.ca, None, Some(("alice", "s3cret"))).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("thanos_replicate_replication_runs_total"), "{body}");
    let (status, body) = https_get(&address, "/-/healthy", &certs.ca, None, Some(("alice", "s3cret"))).unwrap();
    assert_eq!((status, body.as_str()), (200, "Healthy\n"));

    // A client that does not trust the test's CA refuses the server.
    let refused = https_get(&address, "/-/healthy", &certs.stranger.cert, None, Some(("alice", "s3cret")));
    assert!(refused.is_err(), "{refused:?}");
    // Plain HTTP gets no answer from the TLS port.
    let mut plain = TcpStream::connect(&address).unwrap();
    write!(plain, "GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(!answer.contains("200 OK") && !answer.contains("Healthy"), "{answer}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn client_certificates_are_required_and_verified_against_client_ca_file() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certificates();
    let web = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  \
               client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    let (mut child, address) = sidecar(tmp.path(), &certs, web);

    let (status, body) = https_get(&address, "/-/healthy", &certs.ca, Some(&certs.client), None).unwrap();
    assert_eq!((status, body.as_str()), (200, "Healthy\n"));
    let without = https_get(&address, "/-/healthy", &certs.ca, None, None);
    assert!(without.is_err(), "no client certificate: {without:?}");
    let stranger = https_get(&address, "/-/healthy", &certs.ca, Some(&certs.stranger), None);
    assert!(stranger.is_err(), "a client certificate the CA never signed: {stranger:?}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_web_config_that_cannot_be_honoured_stops_the_start_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("web.yml");
    for (text, named) in [
        ("tls_server_config:\n  cert_file: missing.pem\n  key_file: k.pem\n", "missing.pem"),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert",
        ),
        ("basic_auth_users:\n  alice: not-a-hash\n", "alice"),
        ("tls_config: {}\n", "tls_config"),
    ] {
        std::fs::write(&config, text).unwrap();
        let from = format!("file://{}", tmp.path().join("src").display());
        let to = format!("file://{}", tmp.path().join("dst").display());
        let (mut child, lines) = spawn(&[
            "replicate",
            "--from",
            &from,
            "--to",
            &to,
            "--http-address",
            "127.0.0.1:0",
            "--http.config",
            config.to_str().unwrap(),
        ]);
        let status = wait_at_most(&mut child, std::time::Duration::from_secs(30), "a refused start");
        let mut stderr = Vec::new();
        drain(&lines, &mut stderr);
        let stderr = stderr.join("\n");
        assert!(!status.success(), "{text}: {stderr}");
        assert!(stderr.contains("--http.config") && stderr.contains(named), "{text}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
