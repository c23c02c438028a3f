//! `POST /api/admin/checkpoint`: a consistent, crash-safe copy of the log for backups.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBytes;
use super::openapi as doc;
use super::{ApiError, AppState};
use crate::broker::BrokerError;
use crate::event_json::timestamp;
use crate::wal::WalError;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/checkpoint", post(checkpoint))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointIn {
    name: Option<String>,
}

/// A consistent, crash-safe copy of the log under `DATA_DIR/checkpoints/<name>/`.
#[utoipa::path(post, path = "/api/admin/checkpoint", request_body = doc::CheckpointIn,
    responses((status = 200, body = doc::CheckpointOut), (status = 400, description = "invalid_request", body = doc::ErrorBody)))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: CheckpointIn = body.decode(true)?;
    // The default name is the time, with ':' (not allowed in names) as '-'.
    let name = req
        .name
        .unwrap_or_else(|| timestamp(state.broker.clock().unix_ms()).replace(':', "-"));
    let broker = state.broker.clone();
    // Linking, copying and syncing files: off the async threads.
    let made = tokio::task::spawn_blocking(move || broker.wal().checkpoint(&name))
        .await
        .map_err(|e| ApiError::Internal(format!("the checkpoint task failed: {e}")))?;
    match made {
        Ok(info) => Ok(Json(json!({
            "path": info.path.to_string_lossy(),
            "segments": info.segments,
            "bytes": info.bytes,
        }))),
        Err(WalError::BadCheckpointName { name, reason }) => Err(ApiError::InvalidRequest(
            format!("name: {name:?} cannot be used: {reason}"),
        )),
        Err(e) => Err(BrokerError::from(e).into()),
    }
}
