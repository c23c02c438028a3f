//! Webhook subscriptions: `PUT`, `GET` and `DELETE /api/queues/{queue}/subscription`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule, WholeNumber};
use super::openapi as doc;
use super::path::Queue;
use super::{ApiError, AppState};
use event_broker_core::rules::{CONCURRENCY, WEBHOOK_TIMEOUT_MS};
use event_broker_core::{Limits, Subscription, SubscriptionRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/queues/{queue}/subscription", get(show))
}

/// The routes of this file that need `ADMIN_TOKEN` when it is set.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/api/queues/{queue}/subscription", put(set).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionIn {
    url: String,
    concurrency: Option<WholeNumber>,
    timeout_ms: Option<WholeNumber>,
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
#[utoipa::path(put, path = "/api/queues/{queue}/subscription", operation_id = "putSubscription", tag = "subscriptions",
    params(doc::QueuePath), request_body = doc::SubscriptionIn,
    responses(
        (status = 200, description = "The subscription as it is now", body = doc::SubscriptionOut),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: SubscriptionIn = body.decode(state.broker.limits())?;
    let concurrency = req
        .concurrency
        .map(|n| u32::try_from(n.0).map_err(|_| CONCURRENCY.refuse("concurrency", n.0)))
        .transpose()?;
    let request = SubscriptionRequest {
        url: req.url,
        concurrency,
        timeout_ms: req.timeout_ms.map(|n| n.0),
        secret: req.secret,
    };
    let subscription = state.broker.subscribe(&queue, request).await?;
    Ok(Json(json(&subscription)))
}

/// The queue's webhook subscription.
#[utoipa::path(get, path = "/api/queues/{queue}/subscription", operation_id = "getSubscription", tag = "subscriptions",
    params(doc::QueuePath),
    responses((status = 200, description = "The subscription", body = doc::SubscriptionOut)))]
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
#[utoipa::path(delete, path = "/api/queues/{queue}/subscription", operation_id = "deleteSubscription", tag = "subscriptions",
    params(doc::QueuePath),
    responses(
        (status = 204, description = "Removed"),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
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
