//! Browsing a queue's events without leasing them, and cancelling one.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;

use super::openapi as doc;
use super::path::Queue;
use super::queues::not_whole;
use super::{ApiError, AppState};
use crate::event_json::{raw, timestamp};
use event_broker_core::rules::DLQ_LIMIT;
use event_broker_core::{BrowsedEvent, EventState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues/{queue}/events", get(list))
        .route("/api/queues/{queue}/events/{id}", get(one))
}

/// The routes of this file that need `ADMIN_TOKEN` when it is set: a
/// cancel drops an event, as a purge does.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/api/queues/{queue}/events/{id}", delete(cancel))
}

/// An event as browsing answers it; serialised directly so that payloads
/// keep their exact JSON text.
#[derive(Serialize)]
struct EventOut<'a> {
    id: u64,
    state: &'static str,
    attempt: u32,
    priority: u8,
    group: Option<&'a str>,
    enqueued_at: String,
    visible_at: Option<String>,
    expires_at: Option<String>,
    last_error: Option<&'a str>,
    headers: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
}

fn event_out(e: &BrowsedEvent, payload: bool) -> Result<EventOut<'_>, ApiError> {
    let payload = match payload {
        true => Some(raw(e.payload(), "null").map_err(ApiError::damaged)?),
        false => None,
    };
    Ok(EventOut {
        id: e.id,
        state: e.state.as_str(),
        attempt: e.attempt,
        priority: e.priority,
        group: e.group(),
        enqueued_at: timestamp(e.enqueued_at),
        visible_at: e.visible_at.map(timestamp),
        expires_at: e.expires_at.map(timestamp),
        last_error: e.last_error.as_deref(),
        headers: raw(e.headers(), "{}").map_err(ApiError::damaged)?,
        payload,
    })
}

#[derive(Serialize)]
struct PageOut<'a> {
    events: Vec<EventOut<'a>>,
    next: Option<u64>,
}

/// The query of a browse: `state`, `limit`, `after` and `payload`, all optional.
pub(crate) struct BrowseQuery {
    state: Option<EventState>,
    limit: Option<usize>,
    after: Option<u64>,
    payload: bool,
}

/// The parameters of a browse, as messages list them.
const PARAMETERS: [&str; 4] = ["state", "limit", "after", "payload"];

impl BrowseQuery {
    /// Reads the query; any other parameter, a repeated one or a value not
    /// of its kind is refused by name.
    fn parse(query: &str) -> Result<BrowseQuery, ApiError> {
        let mut out = BrowseQuery {
            state: None,
            limit: None,
            after: None,
            payload: true,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some(name) = PARAMETERS.into_iter().find(|p| *p == key) else {
                let other: String = key.chars().take(32).collect();
                return Err(ApiError::InvalidRequest(format!(
                    "{other}: unknown query parameter; the parameters here are {}",
                    PARAMETERS.join(", ")
                )));
            };
            if seen.contains(&name) {
                return Err(ApiError::InvalidRequest(format!("{name}: given twice")));
            }
            seen.push(name);
            let number = value.parse::<u64>().ok();
            match name {
                "state" => {
                    let state = EventState::from_name(&value);
                    let allowed = "one of ready, delayed, in_flight, dead";
                    out.state = Some(state.ok_or_else(|| not_whole(name, &allowed, &value))?);
                }
                "limit" => {
                    let limit = number.and_then(|n| usize::try_from(n).ok());
                    out.limit = Some(limit.ok_or_else(|| not_whole(name, &DLQ_LIMIT, &value))?);
                }
                "after" => {
                    let allowed = "an event id (a whole number)";
                    out.after = Some(number.ok_or_else(|| not_whole(name, &allowed, &value))?);
                }
                _ => {
                    out.payload = match &*value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(not_whole(name, &"true or false", &value)),
                    };
                }
            }
        }
        Ok(out)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BrowseQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        BrowseQuery::parse(parts.uri.query().unwrap_or(""))
    }
}

/// The `{queue}` and `{id}` of an event's path.
pub(crate) struct EventPath {
    queue: String,
    id: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for EventPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Ok(Path((queue, id))) =
            Path::<(String, String)>::from_request_parts(parts, state).await
        else {
            return Err(ApiError::InvalidRequest(
                "queue: the name in the path is not UTF-8 once percent-decoded; a queue name is \
                 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
                    .into(),
            ));
        };
        let id = id
            .parse::<u64>()
            .map_err(|_| not_whole("id", &"an event id (a whole number)", &id))?;
        Ok(EventPath { queue, id })
    }
}

/// A page of the queue's events, in id order, without leasing them.
#[utoipa::path(get, path = "/api/queues/{queue}/events", operation_id = "browseEvents", tag = "queues",
    params(doc::QueuePath, doc::BrowseQuery),
    responses((status = 200, description = "The queue's events in id order", body = doc::BrowsePage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Queue(queue): Queue,
    query: BrowseQuery,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    let found = state
        .broker
        .browse(&queue, query.state, query.after, limit)?;
    let events = found
        .events
        .iter()
        .map(|e| event_out(e, query.payload))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(PageOut {
        events,
        next: found.next,
    })
    .into_response())
}

/// One event of the queue, without leasing it.
#[utoipa::path(get, path = "/api/queues/{queue}/events/{id}", operation_id = "getEvent", tag = "queues",
    params(doc::QueuePath, doc::EventIdPath),
    responses((status = 200, description = "The event", body = doc::BrowsedEvent)))]
pub(crate) async fn one(
    State(state): State<AppState>,
    path: EventPath,
) -> Result<Response, ApiError> {
    let event = state.broker.browse_one(&path.queue, path.id)?;
    Ok(Json(event_out(&event, true)?).into_response())
}

/// Cancels one event in any state; a receipt of it then answers `not_found`.
#[utoipa::path(delete, path = "/api/queues/{queue}/events/{id}", operation_id = "cancelEvent", tag = "queues",
    params(doc::QueuePath, doc::EventIdPath),
    responses(
        (status = 204, description = "Cancelled: the event is gone"),
        (status = 409, description = "conflict: the event is being acked, nacked, expired, redriven or purged; try again", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    path: EventPath,
) -> Result<StatusCode, ApiError> {
    state.broker.cancel(&path.queue, path.id)?.result().await?;
    Ok(StatusCode::NO_CONTENT)
}
