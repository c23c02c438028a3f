//! Consuming: `lease` (with long polling), `ack`, `nack`, `extend`.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule, WholeNumber};
use super::layers::LongPoll;
use super::openapi as doc;
use super::path::Queue;
use super::{ApiError, AppState, MAX_WAIT};
use crate::event_json::{EventJson, EventTimes};
use event_broker_core::rules::{Whole, DELAY_MS, NACK_ERROR, VISIBILITY_TIMEOUT_MS};
use event_broker_core::{Limits, ReceiptResult, ReceiptStatus};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues/{queue}/lease", post(lease))
        .route("/api/queues/{queue}/ack", post(ack))
        .route("/api/queues/{queue}/nack", post(nack))
        .route("/api/queues/{queue}/extend", post(extend))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseIn {
    max: Option<WholeNumber>,
    visibility_timeout_ms: Option<WholeNumber>,
    wait_ms: Option<WholeNumber>,
}

/// `wait_ms` of a lease: the longest long poll.
const WAIT_MS: Whole = Whole::millis(0, MAX_WAIT.as_millis() as u64);

impl Described for LeaseIn {
    const EMPTY_IS_DEFAULTS: bool = true;

    fn rule(limits: &Limits) -> Rule {
        Rule::object(vec![
            Field::nullable("max", Rule::Whole(limits.lease_max())),
            Field::nullable("visibility_timeout_ms", Rule::Whole(VISIBILITY_TIMEOUT_MS)),
            Field::nullable("wait_ms", Rule::Whole(WAIT_MS)),
        ])
    }
}

/// Serialised directly, not through `serde_json::Value`, which would
/// reformat the payloads' JSON text.
#[derive(Serialize)]
struct LeaseOut<'a> {
    events: Vec<EventJson<'a>>,
}

/// Lease up to `max` events, waiting up to `wait_ms` for one.
#[utoipa::path(post, path = "/api/queues/{queue}/lease", operation_id = "leaseEvents", tag = "leases",
    params(doc::QueuePath), request_body(content = Option<doc::LeaseIn>, description = "Optional: an empty body takes every default"),
    responses((status = 200, description = "The events leased, maybe none", body = doc::Leased)))]
pub(crate) async fn lease(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: LeaseIn = body.decode(state.broker.limits())?;
    let wait_ms = WAIT_MS.check("wait_ms", req.wait_ms.map_or(0, |n| n.0))?;
    let wait = Duration::from_millis(wait_ms);
    // Past `usize` is past MAX_BATCH too: the broker refuses it by its range.
    let max = req
        .max
        .map_or(1, |n| usize::try_from(n.0).unwrap_or(usize::MAX));
    let visibility = req
        .visibility_timeout_ms
        .map(|n| Duration::from_millis(n.0));
    let broker = &state.broker;
    let got = if wait.is_zero() {
        broker.lease(&queue, max, visibility)?
    } else {
        tokio::select! {
            got = broker.lease_wait(&queue, max, visibility, wait) => got?,
            // Shutting down: answer now with whatever is there.
            () = state.shutdown.cancelled() => broker.lease(&queue, max, visibility)?,
        }
    };
    let mut times = EventTimes::default();
    let events = got
        .iter()
        .map(|d| EventJson::of(d, true, &mut times))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::damaged)?;
    let mut response = Json(LeaseOut { events }).into_response();
    if !wait.is_zero() {
        response.extensions_mut().insert(LongPoll);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptsIn {
    receipts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NackIn {
    receipts: Vec<String>,
    delay_ms: Option<WholeNumber>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendIn {
    receipts: Vec<String>,
    visibility_timeout_ms: Option<WholeNumber>,
}

fn receipts(limits: &Limits) -> Field {
    let receipt = Rule::Str("a receipt string, as a lease answered it");
    let what = limits.receipts().to_string();
    Field::required("receipts", Rule::List(what, Box::new(receipt)))
}

impl Described for ReceiptsIn {
    fn rule(limits: &Limits) -> Rule {
        Rule::object(vec![receipts(limits)])
    }
}

impl Described for NackIn {
    fn rule(limits: &Limits) -> Rule {
        Rule::object(vec![
            receipts(limits),
            Field::nullable("delay_ms", Rule::Whole(DELAY_MS)),
            Field::nullable("error", Rule::Text(NACK_ERROR)),
        ])
    }
}

impl Described for ExtendIn {
    fn rule(limits: &Limits) -> Rule {
        Rule::object(vec![
            receipts(limits),
            Field::nullable("visibility_timeout_ms", Rule::Whole(VISIBILITY_TIMEOUT_MS)),
        ])
    }
}

/// Ack by receipt: the events are gone.
#[utoipa::path(post, path = "/api/queues/{queue}/ack", operation_id = "ackEvents", tag = "leases",
    params(doc::QueuePath), request_body = doc::ReceiptsIn,
    responses(
        (status = 200, description = "One result per receipt; at least one ok", body = doc::SettleResults),
        (status = 409, description = "lease_lost: no receipt was ok; `results` says why", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn ack(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: ReceiptsIn = body.decode(state.broker.limits())?;
    let results = state.broker.ack(&queue, &req.receipts)?.result().await?;
    answer(results)
}

/// Fail deliveries by receipt: retried after a backoff, or dead-lettered.
#[utoipa::path(post, path = "/api/queues/{queue}/nack", operation_id = "nackEvents", tag = "leases",
    params(doc::QueuePath), request_body = doc::NackIn,
    responses(
        (status = 200, description = "One result per receipt; at least one ok", body = doc::SettleResults),
        (status = 409, description = "lease_lost: no receipt was ok; `results` says why", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn nack(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: NackIn = body.decode(state.broker.limits())?;
    let pending = state.broker.nack(
        &queue,
        &req.receipts,
        req.delay_ms.map(|n| n.0),
        req.error.as_deref(),
    )?;
    answer(pending.result().await?)
}

/// Extend leases by receipt.
#[utoipa::path(post, path = "/api/queues/{queue}/extend", operation_id = "extendLeases", tag = "leases",
    params(doc::QueuePath), request_body = doc::ExtendIn,
    responses(
        (status = 200, description = "One result per receipt; at least one ok", body = doc::SettleResults),
        (status = 409, description = "lease_lost: no receipt was ok; `results` says why", body = doc::ErrorBody)))]
pub(crate) async fn extend(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: ExtendIn = body.decode(state.broker.limits())?;
    let visibility = req
        .visibility_timeout_ms
        .map(|n| Duration::from_millis(n.0));
    answer(state.broker.extend(&queue, &req.receipts, visibility)?)
}

/// One receipt's outcome as answered.
#[derive(Serialize)]
struct ResultOut<'a> {
    receipt: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct ResultsOut<'a> {
    results: Vec<ResultOut<'a>>,
}

/// `200` with one result per receipt, or `409` when none was ok.
fn answer(results: Vec<ReceiptResult>) -> Result<Response, ApiError> {
    let out = ResultsOut {
        results: results
            .iter()
            .map(|r| ResultOut {
                receipt: &r.receipt,
                status: r.status.as_str(),
            })
            .collect(),
    };
    if results.iter().all(|r| r.status != ReceiptStatus::Ok) {
        // Strings only: serialising them cannot fail.
        let listed = serde_json::to_value(&out.results).unwrap_or_default();
        return Err(ApiError::LeaseLost(listed));
    }
    Ok(Json(out).into_response())
}
