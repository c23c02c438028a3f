//! The client's one error type. An answer that is not 2xx becomes
//! [`Error::Api`], carrying the API's error code, the field its message
//! names and the `Retry-After` the broker asked for; everything that kept
//! an answer from arriving or from being read has a variant of its own.

use std::fmt;
use std::time::Duration;

use crate::types::SettleResult;

/// The `code` of an error answer, as `docs/API.md` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the body is not valid JSON.
    InvalidJson,
    /// 400: a field is missing, of the wrong type, unknown or out of range.
    InvalidRequest,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 403: an admin route called with the producer token.
    Forbidden,
    /// 404: no such route, queue, event or subscription.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: no receipt of an ack, nack or extend names a current lease.
    LeaseLost,
    /// 409: a name taken, or an event being changed; try again.
    Conflict,
    /// 413: a payload, body or batch over its limit.
    PayloadTooLarge,
    /// 415: a body sent without a JSON content type.
    UnsupportedMediaType,
    /// 429: past the per-client rate limit.
    RateLimited,
    /// 429: the queue is at its `max_size`; nothing was stored.
    QueueFull,
    /// 503: starting, shutting down, or the log refuses writes.
    Unavailable,
    /// 507: the disk was full; nothing was stored.
    StorageFull,
    /// A code this client does not know yet: a newer broker's.
    Other(String),
}

impl ErrorCode {
    /// The code as the API writes it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::LeaseLost => "lease_lost",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::Other(code) => code,
        }
    }

    /// The code of the API's text.
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "invalid_json" => ErrorCode::InvalidJson,
            "invalid_request" => ErrorCode::InvalidRequest,
            "unauthorized" => ErrorCode::Unauthorized,
            "forbidden" => ErrorCode::Forbidden,
            "not_found" => ErrorCode::NotFound,
            "method_not_allowed" => ErrorCode::MethodNotAllowed,
            "lease_lost" => ErrorCode::LeaseLost,
            "conflict" => ErrorCode::Conflict,
            "payload_too_large" => ErrorCode::PayloadTooLarge,
            "unsupported_media_type" => ErrorCode::UnsupportedMediaType,
            "rate_limited" => ErrorCode::RateLimited,
            "queue_full" => ErrorCode::QueueFull,
            "unavailable" => ErrorCode::Unavailable,
            "storage_full" => ErrorCode::StorageFull,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer of the broker.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What a program should test.
    pub code: ErrorCode,
    /// The sentence for people.
    pub message: String,
    /// The field the message names (`delay_ms`, `events[3].delay_ms`,
    /// `receipts[2]`), for `invalid_request` and the like.
    pub field: Option<String>,
    /// How long the broker asked to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
    /// The per-receipt results of an ack, nack or extend in which every
    /// receipt failed.
    pub results: Option<Vec<SettleResult>>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with an error.
    #[error("the broker refused: {0}")]
    Api(ApiError),
    /// No answer: the broker is down or unreachable, the connection broke,
    /// or TLS failed (a certificate that does not match included).
    #[error("cannot reach the broker at {url}: {source}")]
    Connect {
        /// The URL called.
        url: String,
        /// What the HTTP client reported.
        #[source]
        source: reqwest::Error,
    },
    /// The call took longer than the client's timeout.
    #[error("no answer from {url} within the timeout")]
    Timeout {
        /// The URL called.
        url: String,
    },
    /// An answer that is not what the API promises: a body that does not
    /// parse, or a status it does not give.
    #[error("the answer of {url} ({status}) is not the API's: {detail}")]
    BadAnswer {
        /// The URL called.
        url: String,
        /// Its status.
        status: u16,
        /// What did not parse.
        detail: String,
    },
    /// The client was given a setting it cannot use: a URL, a CA file or a token.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The API's error code, when the broker answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// The field a refused request named.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.field.as_deref(),
            _ => None,
        }
    }

    /// The wait the broker asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// Whether the same call may succeed later without a change: the broker
    /// is down, busy, full for now, or refusing writes for now.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(e) => matches!(
                e.code,
                ErrorCode::RateLimited
                    | ErrorCode::QueueFull
                    | ErrorCode::Unavailable
                    | ErrorCode::StorageFull
                    | ErrorCode::Conflict
            ),
            Error::Connect { .. } | Error::Timeout { .. } | Error::BadAnswer { .. } => true,
            Error::Config(_) => false,
        }
    }

    /// Whether nothing will change until someone fixes the setup: a bad
    /// token, a refused admin call, a request the broker does not take.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Api(e) => matches!(
                e.code,
                ErrorCode::Unauthorized
                    | ErrorCode::Forbidden
                    | ErrorCode::InvalidRequest
                    | ErrorCode::InvalidJson
                    | ErrorCode::UnsupportedMediaType
                    | ErrorCode::MethodNotAllowed
            ),
            Error::Config(_) => true,
            _ => false,
        }
    }
}

/// A call's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
