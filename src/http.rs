//! The HTTP surface of the sidecar: `/metrics`, `/-/healthy` and `/-/ready`, as Thanos
//! components serve them, and the status page at `/` (with its data at `/api/v1/status`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::status::StatusBoard;

pub struct HttpState {
    pub registry: Mutex<Registry>,
    /// Set once the first listing of both buckets has worked.
    pub ready: AtomicBool,
    /// What the status page shows.
    pub status: Arc<StatusBoard>,
}

async fn status_page(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let page = crate::status::html(&state.status.status());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
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

/// Binds `address` and serves in the background on the current runtime. Returns the bound
/// address (the port is chosen by the system when `address` has port 0).
pub async fn serve(address: SocketAddr, state: Arc<HttpState>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("--http-address {address}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(status_page))
        .route("/api/v1/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the HTTP server stopped");
        }
    });
    Ok(bound)
}
