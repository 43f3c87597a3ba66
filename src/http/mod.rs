//! The HTTP surface of the sidecar: `/metrics`, `/-/healthy` and `/-/ready`, as Thanos
//! components serve them, the status page and block viewer at `/` (its blocks at `/blocks`,
//! with their data at `/api/v1/status`, `/api/v1/groups` and `/api/v1/blocks`); all of them over
//! TLS and behind basic auth when `--http.config` asks for it (one layer over every route).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::status::StatusBoard;
use crate::viewer::api as viewer;
use guard::Guard;
pub use web_config::WebConfig;

mod guard;
mod web_config;

pub struct HttpState {
    pub registry: Mutex<Registry>,
    /// Set once the first listing of both buckets has worked.
    pub ready: AtomicBool,
    /// What the status page shows.
    pub status: Arc<StatusBoard>,
    /// The buckets, for the block pages' meta.json and objects (read-only use).
    pub source: Option<Arc<dyn object_store::ObjectStore>>,
    pub target: Option<Arc<dyn object_store::ObjectStore>>,
    /// The label that titles a group on the viewer (`--web.group-label`).
    pub group_label: Option<String>,
}

async fn status_json(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match serde_json::to_string(&state.status.status()) {
        Ok(json) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], e.to_string()),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut body = String::new();
    let encoded = match state.registry.lock() {
        Ok(registry) => prometheus_client::encoding::text::encode(&mut body, &registry),
        Err(_) => Err(std::fmt::Error),
    };
    match encoded {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], "encoding failed".into()),
    }
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "Ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready: the buckets have not been listed yet\n")
    }
}

/// The HTTP server running in the background.
pub struct HttpServer {
    /// Where it listens (the port the system chose, when asked for port 0).
    pub address: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Stops accepting connections and gives the requests in flight `grace` to finish
    /// (Thanos's `--http-grace-period`), then closes the rest.
    pub async fn stop(self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), self.task).await;
    }
}

/// Binds `address` and serves in the background on the current runtime, over TLS and behind
/// basic auth when `web` says so.
pub async fn serve(address: SocketAddr, state: Arc<HttpState>, web: &WebConfig) -> Result<HttpServer> {
    let listener = std::net::TcpListener::bind(address).with_context(|| format!("--http-address {address}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(viewer::index))
        .route("/blocks", get(viewer::blocks_page))
        .route("/blocks/{*block}", get(viewer::block_page))
        .route("/api/v1/status", get(status_json))
        .route("/api/v1/groups", get(viewer::groups_json))
        .route("/api/v1/blocks", get(viewer::blocks_json))
        .route("/api/v1/blocks/{*block}", get(viewer::block_json))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(Guard::new(web)), guard::guard));
    let handle = axum_server::Handle::new();
    let server = match &web.tls {
        Some(tls) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls.clone());
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls)?.handle(handle.clone());
            tokio::spawn(server.serve(app.into_make_service()))
        }
        None => tokio::spawn(axum_server::from_tcp(listener)?.handle(handle.clone()).serve(app.into_make_service())),
    };
    let task = tokio::spawn(async move {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the HTTP server stopped"),
            Err(error) => tracing::error!(%error, "the HTTP server stopped"),
        }
    });
    Ok(HttpServer { address: bound, handle, task })
}
