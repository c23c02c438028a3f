//! Bearer-token auth: with `BROKER_TOKEN` set, every route but health needs
//! `Authorization: Bearer <token>`, compared in constant time. The scheme
//! is matched without regard to case, as RFC 7235 has it.

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
        .and_then(bearer);
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

/// The token of an `Authorization` value of the bearer scheme (`Bearer`,
/// `bearer`, `BEARER`, ...), after the spaces that follow the scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert_eq!(bearer(value), Some("s3cret"), "{value:?}");
        }
        assert_eq!(bearer("Basic s3cret"), None);
        assert_eq!(bearer("Bearers3cret"), None);
    }
}
