//! Queues and their dead-letter queues.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::body::JsonBytes;
use super::openapi as doc;
use super::{ApiError, AppState};
use crate::broker::{check_queue_name, QueueStats};
use crate::event_json::{raw, timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues", get(list))
        .route("/api/queues/{queue}", get(one))
        .route("/api/queues/{queue}/dlq", get(dlq))
        .route("/api/queues/{queue}/dlq/redrive", post(redrive))
        .route("/api/queues/{queue}/dlq/purge", post(purge))
}

pub(crate) fn stats_json(s: &QueueStats) -> Value {
    json!({
        "name": s.name,
        "ready": s.ready,
        "delayed": s.delayed,
        "in_flight": s.in_flight,
        "dead": s.dead,
        "enqueued_total": s.enqueued_total,
        "acked_total": s.acked_total,
        "dead_lettered_total": s.dead_lettered_total,
    })
}

/// Every queue with its counts.
#[utoipa::path(get, path = "/api/queues", responses((status = 200, body = doc::Queues)))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let queues: Vec<Value> = state.broker.queues().iter().map(stats_json).collect();
    Json(json!({ "queues": queues }))
}

/// One queue's counts.
#[utoipa::path(get, path = "/api/queues/{queue}", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), responses((status = 200, body = doc::QueueOut), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn one(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_queue_name(&queue)?;
    Ok(Json(stats_json(&state.broker.queue(&queue)?)))
}

/// Serialised directly so payloads keep their exact JSON text.
#[derive(Serialize)]
struct DeadOut<'a> {
    id: u64,
    payload: &'a RawValue,
    headers: &'a RawValue,
    attempts: u32,
    last_error: Option<&'a str>,
    dead_at: String,
}

#[derive(Serialize)]
struct DlqOut<'a> {
    events: Vec<DeadOut<'a>>,
    next: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<usize>,
    after: Option<u64>,
}

/// A page of the queue's dead-letter queue.
#[utoipa::path(get, path = "/api/queues/{queue}/dlq",
    params(("queue" = String, Path, description = "Queue name"), ("limit" = Option<u32>, Query, description = "1..=1000, default 100"), ("after" = Option<u64>, Query, description = "Ids above this")),
    responses((status = 200, body = doc::DlqPage), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn dlq(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let found = state
        .broker
        .dlq(&queue, page.after, page.limit.unwrap_or(100))?;
    let events = found
        .events
        .iter()
        .map(|e| {
            Ok::<_, serde_json::Error>(DeadOut {
                id: e.id,
                payload: raw(e.payload(), "null")?,
                headers: raw(e.headers(), "{}")?,
                attempts: e.attempts,
                last_error: e.last_error.as_deref(),
                dead_at: timestamp(e.dead_at),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::damaged)?;
    Ok(Json(DlqOut {
        events,
        next: found.next,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsIn {
    ids: Option<Vec<u64>>,
}

/// Dead events back to ready, failures reset.
#[utoipa::path(post, path = "/api/queues/{queue}/dlq/redrive", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::IdsIn,
    responses((status = 200, body = doc::Redriven), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: IdsIn = body.decode(true)?;
    let pending = state.broker.redrive(&queue, req.ids.as_deref())?;
    Ok(Json(json!({ "redriven": pending.result().await? })))
}

/// Delete dead events.
#[utoipa::path(post, path = "/api/queues/{queue}/dlq/purge", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::IdsIn,
    responses((status = 200, body = doc::Purged), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn purge(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: IdsIn = body.decode(true)?;
    let pending = state.broker.purge(&queue, req.ids.as_deref())?;
    Ok(Json(json!({ "purged": pending.result().await? })))
}
