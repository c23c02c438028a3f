//! The tower layers around every route, applied in `router()`: request ids,
//! one log line per request, security headers and CORS.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;

/// The header that carries a request's id, kept from the request when given.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Marks the answer to a long poll, whose time the duration histogram
/// leaves out: it is mostly the wait the client asked for.
#[derive(Debug, Clone, Copy)]
pub struct LongPoll;

/// One line per request (method, route template, status, duration, request
/// id), the request metrics, and the security headers of every answer: one
/// layer rather than two, since each layer costs every request a clone of
/// the routes behind it.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = crate::clock::monotonic_now();
    let method = req.method().clone();
    // Both are reference-counted: taking them copies no text.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let id = req.headers().get(&REQUEST_ID).cloned();
    let response = security_headers(next.run(req).await);
    let took = started.elapsed();
    let status = response.status();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let timed = response.extensions().get::<LongPoll>().is_none();
    state.metrics.request(
        method.as_str(),
        route,
        status.as_str(),
        timed.then_some(took),
    );
    tracing::info!(
        method = %method,
        route,
        status = status.as_u16(),
        duration_ms = took.as_secs_f64() * 1e3,
        request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        "request"
    );
    response
}

/// Sets the security headers every answer carries.
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// CORS for `ALLOWED_ORIGINS`; none when the list is empty, any origin for `*`.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            // By name: the Fetch standard does not let `*` cover
            // `authorization`, so a browser client with a token would be refused.
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER]),
    )
}
