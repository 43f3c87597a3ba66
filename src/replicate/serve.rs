//! The replicate command's HTTP surface: its metrics and probes, ready once both buckets answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bucketflow_dataflows::EngineConfig;
use object_store::ObjectStore;
use prometheus_client::registry::Registry;
use tokio::runtime::Runtime;

use crate::http::{self, HttpServer, HttpState, WebConfig};
use crate::metrics::RunMetrics;
use crate::status::StatusBoard;

/// What the run loop tells the HTTP surface, and the server, to stop at the end.
pub struct Serving {
    pub run_metrics: RunMetrics,
    pub status: Arc<StatusBoard>,
    pub server: HttpServer,
}

/// Serves `/metrics` (the engine's and the runs'), `/-/healthy`, `/-/ready` and the status page
/// on `address` from `runtime` (with `web`'s TLS and basic auth), and starts listing both
/// buckets for readiness.
pub fn start(
    runtime: &Runtime,
    address: SocketAddr,
    web: &WebConfig,
    config: &EngineConfig,
    source: &Arc<dyn ObjectStore>,
    target: &Arc<dyn ObjectStore>,
    group_label: Option<&str>,
) -> Result<Serving> {
    let mut registry = Registry::default();
    config.telemetry.metrics.register(&mut registry);
    let run_metrics = RunMetrics::new(&mut registry);
    let status = Arc::new(StatusBoard::new(config.telemetry.progress.clone(), config.telemetry.cluster.clone()));
    let state = Arc::new(HttpState {
        registry: Mutex::new(registry),
        ready: AtomicBool::new(false),
        status: status.clone(),
        source: Some(source.clone()),
        target: Some(target.clone()),
        group_label: group_label.map(String::from),
    });
    let server = runtime.block_on(http::serve(address, state.clone(), web))?;
    let scheme = if web.tls.is_some() { "HTTPS" } else { "HTTP" };
    let auth = if web.basic_auth_users.is_empty() { "" } else { " behind basic auth" };
    tracing::info!(address = %server.address, "serving {scheme}{auth}: /, /blocks, /api/v1/status, /api/v1/groups, /api/v1/blocks, /metrics, /-/healthy, /-/ready");
    runtime.spawn(become_ready(source.clone(), target.clone(), state));
    Ok(Serving { run_metrics, status, server })
}

/// Ready once both buckets have been listed, retried every few seconds until they can be.
async fn become_ready(source: Arc<dyn ObjectStore>, target: Arc<dyn ObjectStore>, state: Arc<HttpState>) {
    loop {
        match tokio::try_join!(source.list_with_delimiter(None), target.list_with_delimiter(None)) {
            Ok(_) => {
                state.ready.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "listing the buckets for readiness failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
