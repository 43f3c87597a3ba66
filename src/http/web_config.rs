//! `--http.config`: the web configuration file Prometheus, Alertmanager and Thanos share
//! (prometheus/exporter-toolkit's format), for TLS and basic auth on every HTTP endpoint.
//!
//! What rustls can honour is honoured; a field it cannot (unverified client certificates, Go's
//! cipher-suite and curve names) is refused by name, because ignoring it would serve with less
//! protection than the operator asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;

/// The file as written, field for field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    /// The certificate and key inline, as newer exporter-toolkits also accept.
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    /// HTTP/2 over TLS. bucketflow serves HTTP/1.1, which every scraper and browser speaks; a
    /// client that offers h2 falls back to it, so the field is accepted either way.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The web configuration, ready to serve with.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS for every endpoint, when the file has a `tls_server_config`.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty when basic auth is off.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Headers added to every response (`http_server_config.headers`).
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&String> = self.basic_auth_users.keys().collect();
        f.debug_struct("WebConfig").field("tls", &self.tls.is_some()).field("basic_auth_users", &users).finish()
    }
}

/// The response headers exporter-toolkit lets an operator set; any other is refused there too.
const SETTABLE_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

impl WebConfig {
    /// Reads `path`; relative file names inside it are taken from the file's folder, as
    /// exporter-toolkit does. Every error names the file and the field.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("--http.config {}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, folder).with_context(|| format!("--http.config {}", path.display()))
    }

    /// Parses the file's text; `folder` resolves its relative file names.
    pub fn parse(text: &str, folder: &Path) -> Result<WebConfig> {
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml_ng::from_str::<Option<WebConfigFile>>(text)?.unwrap_or_default()
        };
        for (user, hash) in &file.basic_auth_users {
            hash.parse::<bcrypt::HashParts>()
                .with_context(|| format!("basic_auth_users: {user}: not a bcrypt hash"))?;
        }
        let headers = match &file.http_server_config {
            Some(http) => response_headers(&http.headers)?,
            None => Vec::new(),
        };
        let tls = match file.tls_server_config {
            Some(tls) => Some(Arc::new(tls.server_config(folder).context("tls_server_config")?)),
            None => None,
        };
        Ok(WebConfig { tls, basic_auth_users: file.basic_auth_users, headers })
    }
}

fn response_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>> {
    headers
        .iter()
        .map(|(name, value)| {
            if !SETTABLE_HEADERS.iter().any(|settable| settable.eq_ignore_ascii_case(name)) {
                bail!("http_server_config.headers: {name} cannot be set (only {})", SETTABLE_HEADERS.join(", "));
            }
            let value = value
                .parse()
                .with_context(|| format!("http_server_config.headers: {name}: not a valid header value"))?;
            Ok((name.parse().with_context(|| format!("http_server_config.headers: {name}"))?, value))
        })
        .collect()
}

impl TlsServerConfig {
    fn server_config(self, folder: &Path) -> Result<ServerConfig> {
        for (field, refused) in [("cipher_suites", &self.cipher_suites), ("curve_preferences", &self.curve_preferences)]
        {
            if !refused.is_empty() {
                bail!("{field}: not supported (bucketflow's TLS uses rustls's own safe suites and groups); remove the field");
            }
        }
        if !self.client_allowed_sans.is_empty() {
            bail!("client_allowed_sans: not supported; restrict clients by client_ca_file instead");
        }
        let client_auth = self.client_auth_type.as_deref().unwrap_or("NoClientCert");
        match client_auth {
            "" | "NoClientCert" | "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {}
            "RequestClientCert" | "RequireAnyClientCert" => bail!(
                "client_auth_type {client_auth}: not supported, since it accepts client certificates nobody verified; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
            ),
            other => bail!(
                "client_auth_type {other}: unknown (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ),
        }
        let resolve = |file: &Path| if file.is_absolute() { file.to_path_buf() } else { folder.join(file) };
        let certs: Vec<CertificateDer<'static>> = match (&self.cert, &self.cert_file) {
            (Some(_), Some(_)) => bail!("cert and cert_file: give one, not both"),
            (Some(pem), None) => CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<_, _>>()
                .context("cert: not PEM certificates")?,
            (None, Some(file)) => {
                let file = resolve(file);
                CertificateDer::pem_file_iter(&file)
                    .and_then(|certs| certs.collect::<Result<_, _>>())
                    .with_context(|| format!("cert_file {}", file.display()))?
            }
            (None, None) => bail!("cert_file: missing (a TLS server needs a certificate)"),
        };
        if certs.is_empty() {
            bail!("cert_file: holds no certificate");
        }
        let key = match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => bail!("key and key_file: give one, not both"),
            (Some(pem), None) => PrivateKeyDer::from_pem_slice(pem.as_bytes()).context("key: not a PEM private key")?,
            (None, Some(file)) => {
                let file = resolve(file);
                PrivateKeyDer::from_pem_file(&file).with_context(|| format!("key_file {}", file.display()))?
            }
            (None, None) => bail!("key_file: missing (a TLS server needs its private key)"),
        };

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions = protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .context("min_version/max_version")?;
        let verify = |optional: bool| -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
            let Some(file) = &self.client_ca_file else {
                bail!("client_ca_file: missing, and client_auth_type {client_auth} verifies client certificates against it");
            };
            let file = resolve(file);
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(&file).with_context(|| format!("client_ca_file {}", file.display()))?
            {
                let cert = cert.with_context(|| format!("client_ca_file {}", file.display()))?;
                roots.add(cert).with_context(|| format!("client_ca_file {}", file.display()))?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if optional { builder.allow_unauthenticated() } else { builder };
            builder.build().with_context(|| format!("client_ca_file {}", file.display()))
        };
        let builder = match client_auth {
            "" | "NoClientCert" => {
                if self.client_ca_file.is_some() {
                    bail!("client_ca_file is given but client_auth_type is NoClientCert; set RequireAndVerifyClientCert or VerifyClientCertIfGiven");
                }
                builder.with_no_client_auth()
            }
            "VerifyClientCertIfGiven" => builder.with_client_cert_verifier(verify(true)?),
            _ => builder.with_client_cert_verifier(verify(false)?),
        };
        let mut config =
            builder.with_single_cert(certs, key).context("cert_file and key_file do not make a key pair")?;
        config.ignore_client_order = self.prefer_server_cipher_suites.unwrap_or(false);
        // HTTP/1.1 only: see HttpServerConfig::http2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The TLS versions from exporter-toolkit's `min_version`/`max_version` (TLS10..TLS13). rustls
/// speaks 1.2 and 1.3 only, so a minimum of 1.0 or 1.1 is met by 1.2: stricter, never weaker.
fn protocol_versions(min: Option<&str>, max: Option<&str>) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |field: &str, name: &str| -> Result<u8> {
        Ok(match name {
            "TLS10" => 10,
            "TLS11" => 11,
            "TLS12" => 12,
            "TLS13" => 13,
            other => bail!("{field} {other}: unknown (TLS10, TLS11, TLS12 or TLS13)"),
        })
    };
    let min = min.map(|v| rank("min_version", v)).transpose()?.unwrap_or(12);
    let max = max.map(|v| rank("max_version", v)).transpose()?.unwrap_or(13);
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(rank, _)| (min..=max).contains(rank))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        bail!("min_version/max_version: no TLS version bucketflow speaks (1.2, 1.3) lies between them");
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", WebConfig::parse(text, Path::new("/nonexistent")).unwrap_err())
    }

    #[test]
    fn an_empty_file_serves_in_the_clear_without_auth() {
        for text in ["", "\n", "{}", "basic_auth_users: {}\n"] {
            let config = WebConfig::parse(text, Path::new(".")).unwrap();
            assert!(config.tls.is_none() && config.basic_auth_users.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        assert!(err("basic_auth_users:\n  alice: plain\n").contains("alice: not a bcrypt hash"));
        assert!(err("tls_server_config:\n  cert_file: c.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n")
            .contains("cipher_suites"));
        assert!(err("tls_server_config:\n  key_file: k.pem\n").contains("cert_file: missing"));
        assert!(err("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").contains("/nonexistent/c.pem"));
        assert!(err("tls_servr_config: {}\n").contains("tls_servr_config"));
        assert!(err("http_server_config:\n  headers:\n    Server: me\n").contains("Server cannot be set"));
        assert!(err("tls_server_config:\n  cert: x\n  cert_file: c.pem\n").contains("give one"));
    }

    #[test]
    fn tls_versions_follow_min_and_max() {
        let names = |min, max| -> Vec<String> {
            protocol_versions(min, max).unwrap().iter().map(|v| format!("{:?}", v.version)).collect()
        };
        assert_eq!(names(None, None), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(names(Some("TLS10"), None), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(names(Some("TLS13"), None), ["TLSv1_3"]);
        assert_eq!(names(None, Some("TLS12")), ["TLSv1_2"]);
        assert!(protocol_versions(Some("TLS13"), Some("TLS12")).is_err());
        assert!(format!("{:#}", protocol_versions(Some("SSL3"), None).unwrap_err()).contains("min_version SSL3"));
    }
}
