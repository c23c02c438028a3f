//! The bodies of the operations routes (health, status, checkpoints) and
//! the error body every route shares.

#![allow(dead_code)] // The schema types are read by the derive, never built.

use std::collections::BTreeMap;

use utoipa::ToSchema;

use super::{QueueOut, ReceiptResult};

/// A checkpoint request; the body is optional.
#[derive(ToSchema)]
pub struct CheckpointIn {
    /// The checkpoint's directory under `DATA_DIR/checkpoints/`; default:
    /// the time.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$", min_length = 1, max_length = 128)]
    name: Option<String>,
}

/// A checkpoint made.
#[derive(ToSchema)]
pub struct CheckpointOut {
    /// Relative to DATA_DIR.
    path: String,
    segments: u64,
    bytes: u64,
}

/// Liveness or readiness.
#[derive(ToSchema)]
pub struct Health {
    status: HealthStatus,
    /// Why it is unavailable; only then.
    #[schema(required = false)]
    reason: String,
}

/// `ok` (alive), `ready`, or `unavailable`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The process serves.
    Ok,
    /// Ready for traffic.
    Ready,
    /// Not ready: see `reason`.
    Unavailable,
}

/// The broker's state and effective configuration.
#[derive(ToSchema)]
pub struct Status {
    version: String,
    uptime_seconds: u64,
    queues: Vec<QueueOut>,
    wal: WalStatus,
    /// Webhook delivery tasks.
    workers: u64,
    /// Each setting by its variable, without secrets.
    config: BTreeMap<String, String>,
}

/// The log's state.
#[derive(ToSchema)]
pub struct WalStatus {
    segments: u64,
    bytes: u64,
    /// First sequence number of the oldest segment.
    oldest_segment: u64,
    /// The fsync policy in force.
    fsync: String,
    /// Why the log refuses writes, if it does.
    #[schema(required = true)]
    failure: Option<String>,
}

/// What a program tests of an error: the code of API.md's error table.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 400: a field, parameter or name is not what the route allows.
    InvalidRequest,
    /// 401: the token is missing or wrong.
    Unauthorized,
    /// 403: the producers' token on an admin route.
    Forbidden,
    /// 404: no such route, queue, id or subscription.
    NotFound,
    /// 405: the route has no such method.
    MethodNotAllowed,
    /// 409: no receipt named a current lease.
    LeaseLost,
    /// 409: a checkpoint of that name exists.
    Conflict,
    /// 413: over a size limit.
    PayloadTooLarge,
    /// 415: a body without a JSON content type.
    UnsupportedMediaType,
    /// 429: past the rate limit.
    RateLimited,
    /// 429: the queue is full.
    QueueFull,
    /// 503: recovering, shutting down, or the log failed.
    Unavailable,
    /// 507: the disk was full.
    StorageFull,
}

/// The error itself.
#[derive(ToSchema)]
pub struct ErrorDetail {
    code: ErrorCode,
    /// A sentence for people; for a bad request it names the field.
    message: String,
}

/// Every non-2xx answer.
#[derive(ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
    /// Beside a 409 `lease_lost` only: what became of each receipt.
    #[schema(required = false)]
    results: Vec<ReceiptResult>,
}
