//! The queue name of a route's path, taken as text. The broker checks the
//! name; this only turns axum's refusal of a path that does not decode into
//! an answer of the error table.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::ApiError;

/// The `{queue}` of a route, percent-decoded.
pub struct Queue(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Queue {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(queue)) => Ok(Queue(queue)),
            // A route without `{queue}` asking for one is the server's mistake.
            Err(axum::extract::rejection::PathRejection::MissingPathParams(_)) => Err(
                ApiError::Internal("this route has no queue in its path".into()),
            ),
            Err(_) => Err(ApiError::InvalidRequest(
                "queue: the name in the path is not UTF-8 once percent-decoded; a queue name is \
                 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
                    .into(),
            )),
        }
    }
}
