//! Request bodies: the bytes, checked for a JSON content type and decoded
//! with borrowed fields, every failure mapped to the error table.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::Deserialize;

use super::error::{from_serde, ApiError};

/// The raw body of a request that declared JSON (or sent nothing).
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("the request body is too large: {rejection}"))
            } else {
                ApiError::InvalidRequest(format!("the request body could not be read: {rejection}"))
            }
        })?;
        let is_json = content_type.as_deref().is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence == "application/json" || essence.ends_with("+json")
        });
        if !bytes.is_empty() && !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(JsonBytes(bytes))
    }
}

impl JsonBytes {
    /// Decodes the body; an empty body reads as `{}` for routes whose fields are all optional.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self, empty_ok: bool) -> Result<T, ApiError> {
        let text: &[u8] = if self.0.iter().all(u8::is_ascii_whitespace) {
            if !empty_ok {
                return Err(ApiError::InvalidJson(
                    "the body is empty; expected JSON".into(),
                ));
            }
            b"{}"
        } else {
            &self.0
        };
        serde_json::from_slice(text).map_err(|e| from_serde(&e))
    }
}
