//! Webhook subscriptions: `PUT`, `GET` and `DELETE /api/queues/{queue}/subscription`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule};
use super::openapi as doc;
use super::path::Queue;
use super::{ApiError, AppState};
use crate::broker::rules::{CONCURRENCY, WEBHOOK_TIMEOUT_MS};
use crate::broker::{Limits, Subscription, SubscriptionRequest};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/queues/{queue}/subscription",
        put(set).get(show).delete(remove),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionIn {
    url: String,
    concurrency: Option<u32>,
    timeout_ms: Option<u64>,
    secret: Option<String>,
}

impl Described for SubscriptionIn {
    fn rule(_: &Limits) -> Rule {
        Rule::object(vec![
            Field::required("url", Rule::Str("an http:// or https:// URL string")),
            Field::nullable("concurrency", Rule::Whole(CONCURRENCY)),
            Field::nullable("timeout_ms", Rule::Whole(WEBHOOK_TIMEOUT_MS)),
            Field::nullable(
                "secret",
                Rule::Str("a string: \"whsec_\" and the base64 of 24 to 64 random bytes"),
            ),
        ])
    }
}

/// A subscription as shown: the secret never leaves the broker.
#[derive(Serialize)]
struct SubscriptionOut<'a> {
    queue: &'a str,
    url: &'a str,
    concurrency: u32,
    timeout_ms: u64,
    signed: bool,
}

impl<'a> From<&'a Subscription> for SubscriptionOut<'a> {
    fn from(s: &'a Subscription) -> Self {
        SubscriptionOut {
            queue: &s.queue,
            url: &s.url,
            concurrency: s.concurrency,
            timeout_ms: s.timeout_ms,
            signed: s.secret.is_some(),
        }
    }
}

/// Push the queue's events to a webhook (sets or replaces its subscription).
#[utoipa::path(put, path = "/api/queues/{queue}/subscription", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::SubscriptionIn,
    responses((status = 200, body = doc::SubscriptionOut), (status = 400, description = "invalid_json or invalid_request", body = doc::ErrorBody)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: SubscriptionIn = body.decode(state.broker.limits())?;
    let request = SubscriptionRequest {
        url: req.url,
        concurrency: req.concurrency,
        timeout_ms: req.timeout_ms,
        secret: req.secret,
    };
    let subscription = state.broker.subscribe(&queue, request).await?;
    Ok(Json(json(&subscription)))
}

/// The queue's webhook subscription.
#[utoipa::path(get, path = "/api/queues/{queue}/subscription", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")),
    responses((status = 200, body = doc::SubscriptionOut), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Queue(queue): Queue,
) -> Result<Json<serde_json::Value>, ApiError> {
    match state.broker.subscription(&queue)? {
        Some(subscription) => Ok(Json(json(&subscription))),
        None => Err(none(&queue)),
    }
}

/// Stop pushing the queue's events.
#[utoipa::path(delete, path = "/api/queues/{queue}/subscription", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")),
    responses((status = 204, description = "removed"), (status = 404, description = "not_found", body = doc::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Queue(queue): Queue,
) -> Result<StatusCode, ApiError> {
    if state.broker.unsubscribe(&queue).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(none(&queue))
    }
}

fn json(subscription: &Subscription) -> serde_json::Value {
    serde_json::to_value(SubscriptionOut::from(subscription))
        .expect("a subscription always serialises")
}

fn none(queue: &str) -> ApiError {
    ApiError::NotFound(format!("queue {queue} has no subscription"))
}
