//! `POST /api/admin/checkpoint`: a consistent, crash-safe copy of the log for backups.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{Described, JsonBytes};
use super::explain::{Field, Rule};
use super::openapi as doc;
use super::{ApiError, AppState};
use crate::event_json::timestamp;
use event_broker_core::WalError;
use event_broker_core::{BrokerError, Limits};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/checkpoint", post(checkpoint))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointIn {
    name: Option<String>,
}

impl Described for CheckpointIn {
    const EMPTY_IS_DEFAULTS: bool = true;

    fn rule(_: &Limits) -> Rule {
        let name = Rule::Str("a name of 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' and '-'");
        Rule::object(vec![Field::nullable("name", name)])
    }
}

/// A consistent, crash-safe copy of the log under `DATA_DIR/checkpoints/<name>/`.
#[utoipa::path(post, path = "/api/admin/checkpoint", operation_id = "createCheckpoint", tag = "admin",
    request_body(content = Option<doc::CheckpointIn>, description = "Optional: an empty body names the checkpoint by the time"),
    responses(
        (status = 200, description = "The checkpoint made", body = doc::CheckpointOut),
        (status = 409, description = "conflict: a checkpoint of that name exists already", body = doc::ErrorBody),
        (status = 507, description = "storage_full: the disk was full; nothing was stored", body = doc::ErrorBody)))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    body: JsonBytes,
) -> Result<Json<Value>, ApiError> {
    let req: CheckpointIn = body.decode(state.broker.limits())?;
    // The default name is the time, with ':' (not allowed in names) as '-'.
    let name = req
        .name
        .unwrap_or_else(|| timestamp(state.broker.clock().unix_ms()).replace(':', "-"));
    let broker = state.broker.clone();
    // Linking, copying and syncing files: off the async threads.
    let made = tokio::task::spawn_blocking(move || broker.checkpoint(&name))
        .await
        .map_err(|e| ApiError::Internal(format!("the checkpoint task failed: {e}")))?;
    match made {
        Ok(info) => Ok(Json(json!({
            "path": info.path.to_string_lossy(),
            "segments": info.segments,
            "bytes": info.bytes,
        }))),
        Err(BrokerError::Storage(WalError::BadCheckpointName { name, reason })) => Err(ApiError::InvalidRequest(
            format!("name: {name:?} cannot be used: {reason}"),
        )),
        Err(BrokerError::Storage(WalError::CheckpointExists { name })) => Err(ApiError::Conflict(format!(
            "name: a checkpoint named {name:?} exists; checkpoints are never replaced, choose another name"
        ))),
        Err(e) => Err(e.into()),
    }
}
