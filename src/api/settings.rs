//! A queue's own settings: `PUT` and `PATCH /api/queues/{queue}`, and
//! `POST /api/queues/{queue}/pause` and `/resume`, which are a `PATCH` of
//! `paused` alone. Each answers the queue as `GET` shows it.

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule, WholeNumber};
use super::openapi as doc;
use super::path::Queue;
use super::queues::stats_json;
use super::{ApiError, AppState};
use event_broker_core::rules::{
    BACKOFF_MS, BACKOFF_MULTIPLIER, GROUP_CONCURRENCY, MAX_IN_FLIGHT, MAX_RETRIES, MESSAGE_TTL_MS,
    QUEUE_MAX_SIZE, RATE, VISIBILITY_TIMEOUT_MS,
};
use event_broker_core::{Limits, QueueSettings, SettingsChange};

/// The routes of this file, all of which need `ADMIN_TOKEN` when it is set.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/queues/{queue}", put(replace).patch(change))
        .route("/api/queues/{queue}/pause", post(pause))
        .route("/api/queues/{queue}/resume", post(resume))
}

/// The settings a `PUT` or `PATCH` names. `null` is a field left out,
/// except for `message_ttl_ms` and the flow limits, where it names none,
/// and `group_concurrency`, where it is the default of one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsIn {
    visibility_timeout_ms: Option<WholeNumber>,
    max_retries: Option<WholeNumber>,
    base_backoff_ms: Option<WholeNumber>,
    max_backoff_ms: Option<WholeNumber>,
    backoff_multiplier: Option<f64>,
    max_size: Option<WholeNumber>,
    #[serde(default, deserialize_with = "named")]
    message_ttl_ms: Option<Option<WholeNumber>>,
    dead_letter_expired: Option<bool>,
    paused: Option<bool>,
    #[serde(default, deserialize_with = "named")]
    group_concurrency: Option<Option<WholeNumber>>,
    #[serde(default, deserialize_with = "named")]
    max_in_flight: Option<Option<WholeNumber>>,
    #[serde(default, deserialize_with = "named")]
    rate_limit_per_s: Option<Option<WholeNumber>>,
    #[serde(default, deserialize_with = "named")]
    rate_limit_burst: Option<Option<WholeNumber>>,
    #[serde(default, deserialize_with = "named")]
    group_rate_limit_per_s: Option<Option<WholeNumber>>,
}

/// A field that is there, `null` or not: `Some(None)` for `null`, where
/// a field left out is `None`.
fn named<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl Described for SettingsIn {
    fn rule(_: &Limits) -> Rule {
        Rule::object(vec![
            Field::nullable("visibility_timeout_ms", Rule::Whole(VISIBILITY_TIMEOUT_MS)),
            Field::nullable("max_retries", Rule::Whole(MAX_RETRIES)),
            Field::nullable("base_backoff_ms", Rule::Whole(BACKOFF_MS)),
            Field::nullable("max_backoff_ms", Rule::Whole(BACKOFF_MS)),
            Field::nullable("backoff_multiplier", Rule::Number(BACKOFF_MULTIPLIER)),
            Field::nullable("max_size", Rule::Whole(QUEUE_MAX_SIZE)),
            Field::nullable("message_ttl_ms", Rule::Whole(MESSAGE_TTL_MS)),
            Field::nullable("dead_letter_expired", Rule::Bool),
            Field::nullable("paused", Rule::Bool),
            Field::nullable("group_concurrency", Rule::Whole(GROUP_CONCURRENCY)),
            Field::nullable("max_in_flight", Rule::Whole(MAX_IN_FLIGHT)),
            Field::nullable("rate_limit_per_s", Rule::Whole(RATE)),
            Field::nullable("rate_limit_burst", Rule::Whole(RATE)),
            Field::nullable("group_rate_limit_per_s", Rule::Whole(RATE)),
        ])
    }
}

impl SettingsIn {
    fn change(self) -> SettingsChange {
        let whole = |n: Option<WholeNumber>| n.map(|n| n.0);
        SettingsChange {
            visibility_timeout_ms: whole(self.visibility_timeout_ms),
            max_retries: whole(self.max_retries),
            base_backoff_ms: whole(self.base_backoff_ms),
            max_backoff_ms: whole(self.max_backoff_ms),
            backoff_multiplier: self.backoff_multiplier,
            max_size: whole(self.max_size),
            message_ttl_ms: self.message_ttl_ms.map(whole),
            dead_letter_expired: self.dead_letter_expired,
            paused: self.paused,
            group_concurrency: self.group_concurrency.map(whole),
            max_in_flight: self.max_in_flight.map(whole),
            rate_limit_per_s: self.rate_limit_per_s.map(whole),
            rate_limit_burst: self.rate_limit_burst.map(whole),
            group_rate_limit_per_s: self.group_rate_limit_per_s.map(whole),
        }
    }
}

/// A queue's settings in force, every field, as the queue object shows them.
pub(crate) fn settings_json(s: &QueueSettings) -> Value {
    json!({
        "visibility_timeout_ms": s.visibility_timeout_ms,
        "max_retries": s.max_retries,
        "base_backoff_ms": s.base_backoff_ms,
        "max_backoff_ms": s.max_backoff_ms,
        "backoff_multiplier": s.backoff_multiplier,
        "max_size": s.max_size,
        "message_ttl_ms": s.message_ttl_ms,
        "dead_letter_expired": s.dead_letter_expired,
        "paused": s.paused,
        "group_concurrency": s.group_concurrency,
        "max_in_flight": s.max_in_flight,
        "rate_limit_per_s": s.rate_limit_per_s,
        "rate_limit_burst": s.rate_limit_burst,
        "group_rate_limit_per_s": s.group_rate_limit_per_s,
    })
}

/// Set the queue's settings, making the queue if need be; a field left out takes the broker-wide setting.
#[utoipa::path(put, path = "/api/queues/{queue}", operation_id = "putQueueSettings", tag = "queues",
    params(doc::QueuePath), request_body = doc::SettingsIn,
    responses(
        (status = 200, description = "The queue, with its settings as they are now", body = doc::QueueOut),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let change = body.decode::<SettingsIn>(state.broker.limits())?.change();
    let queue = state.broker.put_settings(&queue, &change).await?;
    Ok(Json(stats_json(&queue)))
}

/// Change the settings the body names, keeping the others.
#[utoipa::path(patch, path = "/api/queues/{queue}", operation_id = "patchQueueSettings", tag = "queues",
    params(doc::QueuePath), request_body = doc::SettingsIn,
    responses(
        (status = 200, description = "The queue, with its settings as they are now", body = doc::QueueOut),
        (status = 404, description = "not_found: the queue does not exist", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn change(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let change = body.decode::<SettingsIn>(state.broker.limits())?.change();
    patched(&state, &queue, &change).await
}

/// Hold back the queue's leases: a PATCH of `paused: true` alone.
#[utoipa::path(post, path = "/api/queues/{queue}/pause", operation_id = "pauseQueue", tag = "queues",
    params(doc::QueuePath),
    responses(
        (status = 200, description = "The queue, paused", body = doc::QueueOut),
        (status = 404, description = "not_found: the queue does not exist", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Queue(queue): Queue,
) -> Result<Json<Value>, ApiError> {
    patched(&state, &queue, &SettingsChange::paused(true)).await
}

/// Lease the queue's events again: a PATCH of `paused: false` alone.
#[utoipa::path(post, path = "/api/queues/{queue}/resume", operation_id = "resumeQueue", tag = "queues",
    params(doc::QueuePath),
    responses(
        (status = 200, description = "The queue, not paused", body = doc::QueueOut),
        (status = 404, description = "not_found: the queue does not exist", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Queue(queue): Queue,
) -> Result<Json<Value>, ApiError> {
    patched(&state, &queue, &SettingsChange::paused(false)).await
}

async fn patched(
    state: &AppState,
    queue: &str,
    change: &SettingsChange,
) -> Result<Json<Value>, ApiError> {
    let queue = state.broker.patch_settings(queue, change).await?;
    Ok(Json(stats_json(&queue)))
}
