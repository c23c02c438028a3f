//! Consuming: `lease` (with long polling), `ack`, `nack`, `extend`.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule};
use super::layers::LongPoll;
use super::openapi as doc;
use super::path::Queue;
use super::{ApiError, AppState, MAX_WAIT};
use crate::broker::rules::{Whole, DELAY_MS, NACK_ERROR, VISIBILITY_TIMEOUT_MS};
use crate::broker::{Limits, ReceiptResult, ReceiptStatus};
use crate::event_json::EventJson;

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
    #[serde(default = "one")]
    max: usize,
    visibility_timeout_ms: Option<u64>,
    #[serde(default)]
    wait_ms: u64,
}

fn one() -> usize {
    1
}

/// `wait_ms` of a lease: the longest long poll.
const WAIT_MS: Whole = Whole::millis(0, MAX_WAIT.as_millis() as u64);

impl Described for LeaseIn {
    const EMPTY_IS_DEFAULTS: bool = true;

    fn rule(limits: &Limits) -> Rule {
        Rule::object(vec![
            Field::optional("max", Rule::Whole(limits.lease_max())),
            Field::nullable("visibility_timeout_ms", Rule::Whole(VISIBILITY_TIMEOUT_MS)),
            Field::optional("wait_ms", Rule::Whole(WAIT_MS)),
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
#[utoipa::path(post, path = "/api/queues/{queue}/lease", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::LeaseIn,
    responses((status = 200, body = doc::Leased), (status = 400, description = "invalid_json or invalid_request", body = doc::ErrorBody), (status = 401, description = "unauthorized", body = doc::ErrorBody)))]
pub(crate) async fn lease(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: LeaseIn = body.decode(state.broker.limits())?;
    WAIT_MS.check("wait_ms", req.wait_ms)?;
    let wait = Duration::from_millis(req.wait_ms);
    let visibility = req.visibility_timeout_ms.map(Duration::from_millis);
    let broker = &state.broker;
    let got = if wait.is_zero() {
        broker.lease(&queue, req.max, visibility)?
    } else {
        tokio::select! {
            got = broker.lease_wait(&queue, req.max, visibility, wait) => got?,
            // Shutting down: answer now with whatever is there.
            () = state.shutdown.cancelled() => broker.lease(&queue, req.max, visibility)?,
        }
    };
    let events = got
        .iter()
        .map(|d| EventJson::of(d, true))
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
    delay_ms: Option<u64>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendIn {
    receipts: Vec<String>,
    visibility_timeout_ms: Option<u64>,
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
#[utoipa::path(post, path = "/api/queues/{queue}/ack", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::ReceiptsIn,
    responses((status = 200, body = doc::Results), (status = 400, description = "invalid_json or invalid_request", body = doc::ErrorBody), (status = 401, description = "unauthorized", body = doc::ErrorBody), (status = 409, description = "lease_lost: no receipt was ok", body = doc::ErrorBody),
        (status = 503, description = "unavailable", body = doc::ErrorBody), (status = 507, description = "storage_full", body = doc::ErrorBody)))]
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
#[utoipa::path(post, path = "/api/queues/{queue}/nack", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::NackIn,
    responses((status = 200, body = doc::Results), (status = 400, description = "invalid_json or invalid_request", body = doc::ErrorBody), (status = 401, description = "unauthorized", body = doc::ErrorBody), (status = 409, description = "lease_lost: no receipt was ok", body = doc::ErrorBody),
        (status = 503, description = "unavailable", body = doc::ErrorBody), (status = 507, description = "storage_full", body = doc::ErrorBody)))]
pub(crate) async fn nack(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: NackIn = body.decode(state.broker.limits())?;
    let pending = state
        .broker
        .nack(&queue, &req.receipts, req.delay_ms, req.error.as_deref())?;
    answer(pending.result().await?)
}

/// Extend leases by receipt.
#[utoipa::path(post, path = "/api/queues/{queue}/extend", params(("queue" = String, Path, description = "Queue name: [A-Za-z0-9_.-]{1,128}")), request_body = doc::ExtendIn,
    responses((status = 200, body = doc::Results), (status = 400, description = "invalid_json or invalid_request", body = doc::ErrorBody), (status = 401, description = "unauthorized", body = doc::ErrorBody), (status = 409, description = "lease_lost: no receipt was ok", body = doc::ErrorBody)))]
pub(crate) async fn extend(
    State(state): State<AppState>,
    Queue(queue): Queue,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: ExtendIn = body.decode(state.broker.limits())?;
    let visibility = req.visibility_timeout_ms.map(Duration::from_millis);
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
