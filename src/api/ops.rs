//! Operations: liveness, readiness and status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::openapi as doc;
use super::queues::stats_json;
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/health/ready", get(ready))
        .route("/api/status", get(status))
        .route("/api/metrics", get(metrics))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/api/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let ready = unready(&state).is_none();
    let body = state.metrics.render(&state.broker, ready);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// Liveness.
#[utoipa::path(get, path = "/api/health", operation_id = "health", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = doc::Health)))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 503 while shutting down or when the log refuses writes.
#[utoipa::path(get, path = "/api/health/ready", operation_id = "ready", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = doc::Health), (status = 503, description = "Recovering the log, shutting down, or the log failed", body = doc::Health)))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match unready(&state) {
        None => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        ),
    }
}

/// Why readiness answers 503, or `None` when it answers 200; the
/// `event_broker_ready` gauge reads the same answer.
fn unready(state: &AppState) -> Option<String> {
    if state.shutdown.is_cancelled() {
        Some("shutting down".to_string())
    } else {
        state
            .broker
            .log_failure()
            .map(|e| format!("storage failed, writes are refused until restart: {e}"))
    }
}

/// Version, uptime, queues, the log and the effective configuration.
#[utoipa::path(get, path = "/api/status", operation_id = "status", tag = "operations",
    responses((status = 200, description = "Version, uptime, queues, the log and the effective configuration", body = doc::Status)))]
pub(crate) async fn status(State(state): State<AppState>) -> Json<Value> {
    let wal = state.broker.log_status();
    let queues: Vec<Value> = state.broker.queues().iter().map(stats_json).collect();
    let config: serde_json::Map<String, Value> = state
        .settings
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
        .collect();
    // Webhook delivery tasks: one per unit of each subscription's concurrency.
    let workers: u64 = state
        .broker
        .subscriptions()
        .iter()
        .map(|s| u64::from(s.concurrency))
        .sum();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "queues": queues,
        "wal": {
            "segments": wal.segments,
            "bytes": wal.bytes,
            "oldest_segment": wal.oldest_segment,
            "fsync": wal.fsync.to_string(),
            "failure": wal.failure,
        },
        "workers": workers,
        "config": config,
    }))
}

/// What answers while the log is being recovered: alive, not ready, and
/// every other route `503 unavailable`.
pub fn recovering_router() -> Router {
    const REASON: &str = "recovering the log";
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/health/ready",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"status": "unavailable", "reason": REASON})),
                )
            }),
        )
        .fallback(|| async { ApiError::Recovering })
}
