//! `POST /api/queues/{queue}/events`: one event or a batch.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::body::JsonBytes;
use super::explain::{self, Field, Object, Path, Rule, WholeNumber};
use super::openapi as doc;
use super::path::Queue;
use super::{ApiError, AppState};
use crate::event_json::timestamp;
use event_broker_core::rules::{DELAY_MS, GROUP, IDEMPOTENCY_KEY, MESSAGE_TTL_MS, PRIORITY};
use event_broker_core::{BrokerError, Limits, NewEvent};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/queues/{queue}/events", post(enqueue))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    delay_ms: Option<WholeNumber>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default, borrow)]
    headers: Option<&'a RawValue>,
    #[serde(default)]
    priority: Option<WholeNumber>,
    #[serde(default)]
    ttl_ms: Option<WholeNumber>,
    #[serde(default)]
    group: Option<String>,
}

/// What an event object may hold.
fn event_rule() -> Rule {
    Rule::object(vec![
        Field::required("payload", Rule::Any),
        Field::nullable("delay_ms", Rule::Whole(DELAY_MS)),
        Field::nullable("idempotency_key", Rule::Text(IDEMPOTENCY_KEY)),
        Field::nullable("headers", Rule::StringMap),
        Field::nullable("priority", Rule::Whole(PRIORITY)),
        Field::nullable("ttl_ms", Rule::Whole(MESSAGE_TTL_MS)),
        Field::nullable("group", Rule::Text(GROUP)),
    ])
}

/// What the body of an enqueue may be, for a refusal that is neither.
fn body_rule(limits: &Limits) -> String {
    format!(
        "an event object or an array of 1 to {} of them",
        limits.max_batch
    )
}

/// Enqueue one event or a batch (all or nothing).
#[utoipa::path(post, path = "/api/queues/{queue}/events", operation_id = "enqueueEvents", tag = "events",
    params(doc::QueuePath), request_body = doc::EventsIn,
    responses(
        (status = 201, description = "Stored, durable under WAL_FSYNC=always: `{id, duplicate}` for one event, `{ids}` for a batch", body = doc::EnqueuedAny),
        (status = 429, description = "queue_full: the enqueue would take the queue past QUEUE_MAX_SIZE, nothing was stored; rate_limited: past the per-client rate limit", body = doc::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let limits = state.broker.limits();
    let text = &body.0[..];
    let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (events, single) = match first {
        Some(b'[') => {
            let batch: Vec<Object<EventIn<'_>>> = explain::decode(text, || {
                let rule = Rule::List(limits.events().to_string(), Box::new(event_rule()));
                (Path::named("events"), rule)
            })?;
            (batch.into_iter().map(|o| o.0).collect(), false)
        }
        Some(b'{') => {
            let Object(event) = explain::decode(text, || (Path::body(), event_rule()))?;
            (vec![event], true)
        }
        Some(_) => return Err(explain::not_one_of(text, &body_rule(limits))),
        None => {
            return Err(ApiError::InvalidRequest(format!(
                "body: required; expected {}",
                body_rule(limits)
            )))
        }
    };
    let new = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| to_new_event(e, i, single))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let stored = state
        .broker
        .enqueue(&queue, &new)
        .await
        .map_err(|e| rename_fields(e, single))?;
    // `expires_at` only where an event expires, so that the answer to an
    // enqueue without a TTL stays as it always was.
    let answer = if single {
        let mut answer = json!({"id": stored[0].id, "duplicate": stored[0].duplicate});
        if let Some(at) = stored[0].expires_at {
            answer["expires_at"] = json!(timestamp(at));
        }
        answer
    } else {
        let mut answer = json!({"ids": stored.iter().map(|e| e.id).collect::<Vec<_>>()});
        if stored.iter().any(|e| e.expires_at.is_some()) {
            let at: Vec<Option<String>> =
                stored.iter().map(|e| e.expires_at.map(timestamp)).collect();
            answer["expires_at"] = json!(at);
        }
        answer
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn to_new_event(e: EventIn<'_>, i: usize, single: bool) -> Result<NewEvent, ApiError> {
    let field = |name: &str| {
        if single {
            name.to_string()
        } else {
            format!("events[{i}].{name}")
        }
    };
    let headers = match e.headers {
        None => Vec::new(),
        Some(raw) if raw.get() == "null" => Vec::new(),
        Some(raw) => {
            let text = raw.get().as_bytes();
            explain::decode::<BTreeMap<String, String>>(text, || {
                (Path::named(field("headers")), Rule::StringMap)
            })?;
            text.to_vec()
        }
    };
    let priority = match e.priority {
        None => 0,
        Some(WholeNumber(n)) => {
            u8::try_from(n).map_err(|_| ApiError::from(PRIORITY.refuse(field("priority"), n)))?
        }
    };
    Ok(NewEvent {
        payload: e.payload.get().as_bytes().to_vec(),
        headers,
        delay_ms: e.delay_ms.map_or(0, |n| n.0),
        idempotency_key: e.idempotency_key,
        priority,
        ttl_ms: e.ttl_ms.map(|n| n.0),
        group: e.group,
    })
}

/// The broker names fields as in a batch (`events[0].payload`); a single
/// event's fields are named plainly.
fn rename_fields(e: BrokerError, single: bool) -> ApiError {
    if !single {
        return e.into();
    }
    match e {
        BrokerError::Invalid { field, message } => BrokerError::Invalid {
            field: field.trim_start_matches("events[0].").to_string(),
            message,
        },
        BrokerError::PayloadTooLarge { field, len, max } => BrokerError::PayloadTooLarge {
            field: field.trim_start_matches("events[0].").to_string(),
            len,
            max,
        },
        other => other,
    }
    .into()
}
