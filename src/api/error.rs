//! The one place errors become HTTP answers: the error table of API.md.
//! Every error body is `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::layers::ErrorCode;
use event_broker_core::BrokerError;

/// Seconds a client is told to wait before retrying an enqueue on a full queue.
const QUEUE_FULL_RETRY_AFTER_S: u64 = 1;

/// Why a request failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// A field is missing, of the wrong type or out of range; the message names it.
    #[error("{0}")]
    InvalidRequest(String),
    /// A token is required and missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token is a valid one, but not one that opens this route (the
    /// producers' token on an admin route).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The client is past its rate limit.
    #[error("rate limit reached: retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after_s: u64,
    },
    /// An unknown route, queue or id.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not with this method; the `Allow` header,
    /// which the router sets, lists those it has.
    #[error("{0} is not a method of this route; the Allow header lists those it has")]
    MethodNotAllowed(axum::http::Method),
    /// What the request would make exists already (a checkpoint's name).
    #[error("{0}")]
    Conflict(String),
    /// Every receipt of an ack, nack or extend failed; the results say how.
    #[error("no receipt of the request names a current lease")]
    LeaseLost(serde_json::Value),
    /// A payload or the whole request is over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not declared as JSON.
    #[error("expected a body with content-type application/json")]
    UnsupportedMediaType,
    /// The request ran past the request timeout.
    #[error("the request did not finish within {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
    /// The log is still being recovered.
    #[error("the broker is recovering its log; try again shortly")]
    Recovering,
    /// The server's own fault.
    #[error("{0}")]
    Internal(String),
    /// The broker refused or failed the operation.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl ApiError {
    /// A stored event whose JSON text no longer parses: the log is damaged.
    pub(crate) fn damaged(e: serde_json::Error) -> ApiError {
        ApiError::Internal(format!("a stored event is not JSON: {e}"))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::TimedOut(_) | ApiError::Recovering => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::Broker(e) => broker_status(e),
        }
    }
}

fn broker_status(e: &BrokerError) -> (StatusCode, &'static str) {
    match e {
        BrokerError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
        BrokerError::PayloadTooLarge { .. } | BrokerError::BatchOverQueueSize { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        BrokerError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
        BrokerError::UnknownQueue(_) | BrokerError::UnknownEvent { .. } => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        BrokerError::EventBusy { .. } | BrokerError::QueueBusy(_) => {
            (StatusCode::CONFLICT, "conflict")
        }
        e if e.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
        e if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        // A record that cannot be read back is the server's fault, not the client's.
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, code, "request failed");
        }
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_s } => Some(*retry_after_s),
            ApiError::Broker(BrokerError::QueueFull { .. }) => Some(QUEUE_FULL_RETRY_AFTER_S),
            _ => None,
        };
        if let ApiError::LeaseLost(results) = self {
            body["results"] = results;
        }
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(code));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if code == "unauthorized" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
