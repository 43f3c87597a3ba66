//! Thanos's `http_config` and bucketflow's retry flags, mapped onto object_store's HTTP client.

use std::time::Duration;

use bucketflow_dataflows::parse_duration;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use serde::Deserialize;

/// Request retries: object_store retries each HTTP request (5xx, 429, timeouts, connection errors)
/// with exponential backoff and jitter, up to `retries` times within `retry_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub retries: usize,
    pub retry_timeout: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries { retries: 10, retry_timeout: Duration::from_secs(180) }
    }
}

impl Retries {
    /// These retries, with a bucket config's own `max_retries` in place of `--retries` when it
    /// has one.
    pub fn limited_to(self, max_retries: Option<usize>) -> Retries {
        Retries { retries: max_retries.unwrap_or(self.retries), ..self }
    }

    pub fn config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: self.retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

/// A Prometheus duration as Thanos writes it in YAML (`90s`, `1m30s`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct YamlDuration(pub Option<Duration>);

impl<'de> Deserialize<'de> for YamlDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(|d| YamlDuration(Some(d))).map_err(serde::de::Error::custom)
    }
}

/// Thanos's `http_config` (exthttp.HTTPConfig).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub idle_conn_timeout: YamlDuration,
    pub response_header_timeout: YamlDuration,
    pub insecure_skip_verify: bool,
    pub tls_handshake_timeout: YamlDuration,
    pub expect_continue_timeout: YamlDuration,
    pub max_idle_conns: Option<usize>,
    pub max_idle_conns_per_host: Option<usize>,
    pub max_conns_per_host: Option<usize>,
    pub disable_compression: bool,
    pub tls_config: Option<serde_yaml_ng::Value>,
}

impl HttpConfig {
    /// The client options. Whether plain HTTP is allowed is a setting of its own, given with the
    /// endpoint.
    pub fn client_options(&self) -> ClientOptions {
        // A whole-request timeout would cut off the download of a large object, so requests are
        // bounded by connect and read timeouts instead.
        let mut options = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(self.response_header_timeout.0.unwrap_or(Duration::from_secs(60)));
        if let Some(idle) = self.idle_conn_timeout.0 {
            options = options.with_pool_idle_timeout(idle);
        }
        if let Some(n) = self.max_idle_conns_per_host {
            options = options.with_pool_max_idle_per_host(n);
        }
        if self.insecure_skip_verify {
            options = options.with_allow_invalid_certificates(true);
        }
        options
    }

    /// The names of the fields that object_store has no knob for.
    pub fn ignored(&self) -> Vec<&'static str> {
        [
            (self.tls_handshake_timeout.0.is_some(), "http_config.tls_handshake_timeout"),
            (self.expect_continue_timeout.0.is_some(), "http_config.expect_continue_timeout"),
            (self.max_idle_conns.is_some(), "http_config.max_idle_conns"),
            (self.max_conns_per_host.is_some(), "http_config.max_conns_per_host"),
            (self.disable_compression, "http_config.disable_compression"),
            (self.tls_config.is_some(), "http_config.tls_config"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}
