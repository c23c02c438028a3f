//! Bearer-token auth: with `BROKER_TOKEN` set, every route but health needs
//! `Authorization: Bearer <token>`, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::ApiError;

/// Lets a request through for health checks, or when it carries `token`.
pub async fn require_token(
    State(token): State<Arc<str>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.uri().path().starts_with("/api/health") {
        return Ok(next.run(req).await);
    }
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
            Ok(next.run(req).await)
        }
        Some(_) => Err(ApiError::Unauthorized("the bearer token is wrong")),
        None => Err(ApiError::Unauthorized(
            "this broker needs an Authorization: Bearer <token> header",
        )),
    }
}
