//! Queues and their dead-letter queues.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule, WholeNumber};
use super::openapi as doc;
use super::path::Queue;
use super::settings::settings_json;
use super::{ApiError, AppState};
use crate::event_json::{raw, timestamp};
use event_broker_core::rules::DLQ_LIMIT;
use event_broker_core::{check_queue_name, Limits, QueueStats};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues", get(list))
        .route("/api/queues/{queue}", get(one))
        .route("/api/queues/{queue}/dlq", get(dlq))
}

/// The routes of this file that need `ADMIN_TOKEN` when it is set.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/queues/{queue}/dlq/redrive", post(redrive))
        .route("/api/queues/{queue}/dlq/purge", post(purge))
        .route("/api/queues/{queue}", delete(remove))
}

/// Deletes a queue with all its events, its settings and its subscription.
#[utoipa::path(delete, path = "/api/queues/{queue}", operation_id = "deleteQueue", tag = "queues",
    params(doc::QueuePath),
    responses(
        (status = 204, description = "Deleted: the queue, its events in every state, its settings and its subscription are gone"),
        (status = 409, description = "conflict: an event of the queue is being acked, nacked, expired, redriven, purged or cancelled, or the queue is being deleted; try again", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Queue(queue): Queue,
) -> Result<StatusCode, ApiError> {
    state.broker.delete_queue(&queue).await?;
    Ok(StatusCode::NO_CONTENT)
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
        "paused": s.settings.paused,
        "settings": settings_json(&s.settings),
    })
}

/// Every queue with its counts and settings.
#[utoipa::path(get, path = "/api/queues", operation_id = "listQueues", tag = "queues",
    responses((status = 200, description = "Every queue with its counts and settings", body = doc::QueueList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let queues: Vec<Value> = state.broker.queues().iter().map(stats_json).collect();
    Json(json!({ "queues": queues }))
}

/// One queue's counts and settings.
#[utoipa::path(get, path = "/api/queues/{queue}", operation_id = "getQueue", tag = "queues",
    params(doc::QueuePath),
    responses((status = 200, description = "The queue's counts and settings", body = doc::QueueOut)))]
pub(crate) async fn one(
    State(state): State<AppState>,
    Queue(queue): Queue,
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
    priority: u8,
    group: Option<&'a str>,
    last_error: Option<&'a str>,
    dead_at: String,
}

#[derive(Serialize)]
struct DlqOut<'a> {
    events: Vec<DeadOut<'a>>,
    next: Option<u64>,
}

/// The query of a dead-letter listing: `limit` and `after`, both optional.
#[derive(Default)]
pub(crate) struct Page {
    limit: Option<usize>,
    after: Option<u64>,
}

impl Page {
    /// Reads `limit` and `after` from a query string; any other parameter,
    /// a repeated one or one that is not a whole number is refused by name.
    fn parse(query: &str) -> Result<Page, ApiError> {
        let mut page = Page::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let name = match key.as_ref() {
                "limit" => "limit",
                "after" => "after",
                other => {
                    let other: String = other.chars().take(32).collect();
                    return Err(ApiError::InvalidRequest(format!(
                        "{other}: unknown query parameter; the parameters here are limit, after"
                    )));
                }
            };
            if seen.contains(&name) {
                return Err(ApiError::InvalidRequest(format!("{name}: given twice")));
            }
            seen.push(name);
            let number = value.parse::<u64>().ok();
            if name == "limit" {
                let limit = number.and_then(|n| usize::try_from(n).ok());
                page.limit = Some(limit.ok_or_else(|| not_whole(name, &DLQ_LIMIT, &value))?);
            } else {
                page.after = Some(
                    number
                        .ok_or_else(|| not_whole(name, &"an event id (a whole number)", &value))?,
                );
            }
        }
        Ok(page)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Page::parse(parts.uri.query().unwrap_or(""))
    }
}

pub(crate) fn not_whole(name: &str, allowed: &dyn std::fmt::Display, value: &str) -> ApiError {
    ApiError::InvalidRequest(format!("{name}: expected {allowed}, got {}", shown(value)))
}

/// A query value as a message quotes it: short, whatever was sent.
fn shown(value: &str) -> String {
    if value.is_empty() {
        return "an empty value".into();
    }
    let head: String = value.chars().take(32).collect();
    let cut = if head.len() < value.len() { "..." } else { "" };
    format!("{head:?}{cut}")
}

/// A page of the queue's dead-letter queue.
#[utoipa::path(get, path = "/api/queues/{queue}/dlq", operation_id = "listDeadLetters", tag = "dlq",
    params(doc::QueuePath, doc::DlqQuery),
    responses((status = 200, description = "Dead events in id order", body = doc::DlqPage)))]
pub(crate) async fn dlq(
    State(state): State<AppState>,
    Queue(queue): Queue,
    page: Page,
) -> Result<Response, ApiError> {
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
                priority: e.priority,
                group: e.group(),
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

/// Which dead events a redrive or purge takes: `{"ids": [...]}` for
/// those, `{}` or `{"all": true}` for every one. A missing body is refused
/// rather than read as `{}`, so that acting on the whole DLQ is never an
/// accident; so is `{"all": false}` without ids, which would ask for nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsIn {
    #[serde(default, deserialize_with = "not_null")]
    ids: Option<Vec<WholeNumber>>,
    #[serde(default, deserialize_with = "not_null")]
    all: Option<bool>,
}

/// A field that may be left out but not be `null`: `{"ids": null}` is not
/// taken to mean every dead event.
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// What [`IdsIn`] may be, as messages say it.
const IDS_ABOUT: &str =
    "{\"ids\": [...]} for some dead events, or {} or {\"all\": true} for every one";

impl Described for IdsIn {
    fn rule(_: &Limits) -> Rule {
        Rule::Object {
            fields: vec![
                Field::optional(
                    "ids",
                    Rule::List("an array of event ids".into(), Box::new(Rule::Id)),
                ),
                Field::optional("all", Rule::Bool),
            ],
            about: Some(IDS_ABOUT),
        }
    }
}

impl IdsIn {
    /// The ids asked for, or `None` for every dead event.
    fn chosen(&self) -> Result<Option<Vec<u64>>, ApiError> {
        match (&self.ids, self.all) {
            (Some(ids), None | Some(false)) => Ok(Some(ids.iter().map(|n| n.0).collect())),
            (None, None | Some(true)) => Ok(None),
            (None, Some(false)) => Err(ApiError::InvalidRequest(format!(
                "all: false chooses no event; send {IDS_ABOUT}"
            ))),
            (Some(_), Some(true)) => Err(ApiError::InvalidRequest(format!(
                "all: true cannot go with ids; send {IDS_ABOUT}"
            ))),
        }
    }
}

/// Dead events back to ready, failures reset.
#[utoipa::path(post, path = "/api/queues/{queue}/dlq/redrive", operation_id = "redriveDeadLetters", tag = "dlq",
    params(doc::QueuePath), request_body = doc::IdsIn,
    responses(
        (status = 200, description = "How many dead events are ready again", body = doc::RedriveOut),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: IdsIn = body.decode(state.broker.limits())?;
    let pending = state.broker.redrive(&queue, req.chosen()?.as_deref())?;
    Ok(Json(json!({ "redriven": pending.result().await? })))
}

/// Delete dead events.
#[utoipa::path(post, path = "/api/queues/{queue}/dlq/purge", operation_id = "purgeDeadLetters", tag = "dlq",
    params(doc::QueuePath), request_body = doc::IdsIn,
    responses(
        (status = 200, description = "How many dead events were deleted", body = doc::PurgeOut),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn purge(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: IdsIn = body.decode(state.broker.limits())?;
    let pending = state.broker.purge(&queue, req.chosen()?.as_deref())?;
    Ok(Json(json!({ "purged": pending.result().await? })))
}
