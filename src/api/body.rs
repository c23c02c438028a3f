//! Request bodies: the bytes, checked for a JSON content type and the
//! request limit, and decoded with borrowed fields, every failure mapped to
//! the error table in the API's own words ([`super::explain`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::Deserialize;

use super::explain::{self, Object, Path, Rule};
use super::{ApiError, AppState};
use event_broker_core::Limits;

/// The raw body of a request that declared JSON (or sent nothing).
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "body: over the limit of {} bytes a request may have (MAX_REQUEST_BYTES)",
                    state.broker.limits().max_request_bytes
                ))
            } else {
                // The client stopped sending or the connection broke.
                ApiError::InvalidRequest("body: could not be read to its end".into())
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

/// A request body type and what it allows, for the messages of a refusal.
pub(crate) trait Described {
    /// An empty body reads as `{}`: for bodies whose fields are all
    /// optional and whose defaults change nothing for good.
    const EMPTY_IS_DEFAULTS: bool = false;

    /// What the body may hold, under `limits`.
    fn rule(limits: &Limits) -> Rule;
}

impl JsonBytes {
    /// True when the body is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }

    /// Decodes the body as a JSON object of type `T`.
    pub fn decode<'a, T: Deserialize<'a> + Described>(
        &'a self,
        limits: &Limits,
    ) -> Result<T, ApiError> {
        let text: &[u8] = if self.is_blank() {
            if !T::EMPTY_IS_DEFAULTS {
                return Err(ApiError::InvalidRequest(format!(
                    "body: required; expected {}",
                    T::rule(limits)
                )));
            }
            b"{}"
        } else {
            &self.0
        };
        explain::decode::<Object<T>>(text, || (Path::body(), T::rule(limits))).map(|o| o.0)
    }
}
