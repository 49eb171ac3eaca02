//! The internal HTTP server of `qod-operator run`: `/healthz` (the process is alive), `/readyz`
//! (caches synced and the controller running) and `/metrics` (Prometheus text). It listens on
//! its own address, apart from the public webhook, and offers nothing that changes state.

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};
use tokio::net::TcpListener;

use crate::{cache::SessionCache, metrics::Metrics, webhook::Readiness};

/// What `/readyz` checks: the webhook's cache has synced and, on the leader, the controller
/// runs. Replicas that do not lead stay ready: they serve notifications.
#[derive(Clone)]
pub struct Ready {
    webhook: Readiness,
    leading: Arc<AtomicBool>,
    controller: Arc<AtomicBool>,
}

impl Ready {
    /// `leading`: whether this replica starts as the leader (true without leader election).
    pub fn new(webhook: Readiness, leading: bool) -> Self {
        Self {
            webhook,
            leading: Arc::new(AtomicBool::new(leading)),
            controller: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }

    /// Marks the controller as running (or not).
    pub fn set_controller_running(&self, running: bool) {
        self.controller.store(running, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.webhook.is_ready()
            && (!self.leading.load(Ordering::Acquire) || self.controller.load(Ordering::Acquire))
    }
}

#[derive(Clone)]
struct Probes {
    ready: Ready,
    metrics: Arc<Metrics>,
    /// Counted at each scrape for `qod_operator_sessions`.
    sessions: SessionCache,
}

pub fn router(ready: Ready, metrics: Arc<Metrics>, sessions: SessionCache) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Probes {
            ready,
            metrics,
            sessions,
        })
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.ready.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches syncing or controller not running\n",
        )
    }
}

async fn metrics_text(State(probes): State<Probes>) -> impl IntoResponse {
    // Counting the cache at scrape time costs one pass per scrape, not one per change.
    let counts = probes.sessions.count_by_qos_status();
    probes
        .metrics
        .set_session_counts(counts.iter().map(|(word, n)| (word.as_deref(), *n)));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics.encode(),
    )
}

/// Serves the probes until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    ready: Ready,
    metrics: Arc<Metrics>,
    sessions: SessionCache,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "probes listening (/healthz, /readyz, /metrics)");
    }
    axum::serve(listener, router(ready, metrics, sessions))
        .with_graceful_shutdown(shutdown)
        .await
}
