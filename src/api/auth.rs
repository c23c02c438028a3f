//! Bearer-token auth. With `BROKER_TOKEN` set, every route but health needs
//! `Authorization: Bearer <token>`. With `ADMIN_TOKEN` set, the admin routes
//! (grouped in `api::router`) need that token and no other: a valid
//! `BROKER_TOKEN` there gets 403, no token or an unknown one 401. The admin
//! token opens every other route as well, so an admin needs one token only.
//! Tokens are compared in constant time; the scheme is matched without
//! regard to case, as RFC 7235 has it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::ApiError;

/// The tokens of the API as configured, shared by the auth layers.
pub struct Tokens {
    /// `BROKER_TOKEN`: when set, every route but health needs a token.
    pub broker: Option<Arc<str>>,
    /// `ADMIN_TOKEN`: when set, the admin routes need it.
    pub admin: Option<Arc<str>>,
}

/// Whose token a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bearer {
    Admin,
    Producer,
    Unknown,
    Missing,
}

impl Tokens {
    fn identify(&self, req: &Request) -> Bearer {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let Some(given) = given else {
            return Bearer::Missing;
        };
        let is = |token: &Option<Arc<str>>| {
            token
                .as_deref()
                .is_some_and(|t| bool::from(given.as_bytes().ct_eq(t.as_bytes())))
        };
        // Both compared every time, so that the answer's timing does not
        // tell which of the two a guess came nearer to.
        match (is(&self.admin), is(&self.broker)) {
            (true, _) => Bearer::Admin,
            (false, true) => Bearer::Producer,
            (false, false) => Bearer::Unknown,
        }
    }
}

/// Lets a request through for health checks, or when it carries either token.
pub async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.uri().path().starts_with("/api/health") {
        return Ok(next.run(req).await);
    }
    match tokens.identify(&req) {
        Bearer::Admin | Bearer::Producer => Ok(next.run(req).await),
        Bearer::Unknown => Err(ApiError::Unauthorized("the bearer token is wrong")),
        Bearer::Missing => Err(ApiError::Unauthorized(
            "this broker needs an Authorization: Bearer <token> header",
        )),
    }
}

/// Lets a request to an admin route through when it carries `ADMIN_TOKEN`;
/// only installed when that is set.
pub async fn require_admin(
    State(tokens): State<Arc<Tokens>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match tokens.identify(&req) {
        Bearer::Admin => Ok(next.run(req).await),
        Bearer::Producer => Err(ApiError::Forbidden(
            "this route needs the admin token (ADMIN_TOKEN); BROKER_TOKEN does not open it",
        )),
        Bearer::Unknown => Err(ApiError::Unauthorized("the bearer token is wrong")),
        Bearer::Missing => Err(ApiError::Unauthorized(
            "this route needs an Authorization: Bearer <ADMIN_TOKEN> header",
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
    use super::*;

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert_eq!(bearer(value), Some("s3cret"), "{value:?}");
        }
        assert_eq!(bearer("Basic s3cret"), None);
        assert_eq!(bearer("Bearers3cret"), None);
    }

    #[test]
    fn a_request_is_told_apart_by_its_token() {
        let tokens = Tokens {
            broker: Some(Arc::from("producer")),
            admin: Some(Arc::from("admin")),
        };
        let with = |value: Option<&str>| {
            let mut req = Request::new(axum::body::Body::empty());
            if let Some(value) = value {
                req.headers_mut()
                    .insert(AUTHORIZATION, value.parse().unwrap());
            }
            tokens.identify(&req)
        };
        assert_eq!(with(Some("bearer admin")), Bearer::Admin);
        assert_eq!(with(Some("Bearer producer")), Bearer::Producer);
        assert_eq!(with(Some("Bearer admin2")), Bearer::Unknown);
        assert_eq!(with(Some("Basic admin")), Bearer::Missing);
        assert_eq!(with(None), Bearer::Missing);
        let admin_only = Tokens {
            broker: None,
            admin: Some(Arc::from("admin")),
        };
        let mut req = Request::new(axum::body::Body::empty());
        req.headers_mut()
            .insert(AUTHORIZATION, "Bearer producer".parse().unwrap());
        assert_eq!(admin_only.identify(&req), Bearer::Unknown);
    }
}
