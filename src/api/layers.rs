//! The tower layers around every route, applied in `router()`: request ids,
//! one log line per request, security headers and CORS.
//!
//! A request's line, as the JSON format writes it (`queue` only on the
//! routes that name one, `code` only on an error answer, `client` unless
//! the router was called without a socket):
//!
//! ```text
//! {"timestamp":"2026-11-23T21:40:00.173401Z","level":"INFO","fields":{"message":"request",
//!  "method":"POST","route":"/api/queues/{queue}/events","queue":"orders","status":429,
//!  "code":"queue_full","duration_us":182,"client":"10.0.0.7:51234",
//!  "request_id":"6f1c0e0a-..."},"target":"event_broker::api::layers"}
//! ```

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::client_addr::{client_addr, AddrText};
use super::AppState;

/// The header that carries a request's id, kept from the request when given.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The error code of a non-2xx answer, put on the response for its log line.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// Marks the answer to a long poll, whose time the duration histogram
/// leaves out: it is mostly the wait the client asked for.
#[derive(Debug, Clone, Copy)]
pub struct LongPoll;

/// The routes that name a queue, as templates start.
const QUEUE_ROUTES: &str = "/api/queues/{queue}";

/// The longest queue name there is; a longer path segment is cut there.
const MAX_QUEUE_NAME: usize = 128;

/// The queue a request's path names, as the path spells it, copied out so
/// that the request moves on without a clone of its URI.
struct PathQueue {
    bytes: [u8; MAX_QUEUE_NAME],
    len: usize,
}

impl PathQueue {
    /// The queue of `path`, when its route template is one of the queue routes.
    fn of(route: Option<&str>, path: &str) -> Option<PathQueue> {
        if !route?.starts_with(QUEUE_ROUTES) {
            return None;
        }
        let rest = path.strip_prefix("/api/queues/")?;
        let segment = rest.split('/').next().unwrap_or(rest);
        let mut len = segment.len().min(MAX_QUEUE_NAME);
        while !segment.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; MAX_QUEUE_NAME];
        bytes[..len].copy_from_slice(&segment.as_bytes()[..len]);
        Some(PathQueue { bytes, len })
    }

    fn as_str(&self) -> &str {
        // Cut at a character boundary of a `str`: always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// One line per request (method, route template, queue, status, error
/// code, duration, client address, request id), the request metrics, and
/// the security headers of every answer: one layer rather than two, since
/// each layer costs every request a clone of the routes behind it. What the
/// line needs of the request is copied out before the request moves on,
/// into values on the stack: the line costs no allocation.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = event_broker_clock::monotonic_now();
    let method = req.method().clone();
    // Both are reference-counted: taking them copies no text.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let id = req.headers().get(&REQUEST_ID).cloned();
    let queue = PathQueue::of(route.as_ref().map(MatchedPath::as_str), req.uri().path());
    let client = client_addr(&req).map(AddrText::of);
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
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    tracing::info!(
        method = %method,
        route,
        queue = queue.as_ref().map(PathQueue::as_str),
        status = status.as_u16(),
        code,
        duration_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        client = client.as_ref().map(AddrText::as_str),
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
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            // By name: the Fetch standard does not let `*` cover
            // `authorization`, so a browser client with a token would be refused.
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER]),
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::api::{router, AppParts};
    use crate::log_format::capture::Captured;
    use crate::metrics::Metrics;
    use event_broker_clock::ManualClock;
    use event_broker_core::{Broker, BrokerOptions, Limits};
    use event_broker_core::{FsyncPolicy, WalOptions};

    fn state(dir: &std::path::Path) -> AppState {
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir)
            },
            limits: Limits::default(),
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        };
        let broker = Arc::new(Broker::open(options).expect("open broker").0);
        AppState::from(AppParts {
            broker,
            shutdown: Default::default(),
            started: event_broker_clock::monotonic_now(),
            settings: Arc::new(Vec::new()),
            token: None,
            admin_token: None,
            origins: Arc::new(Vec::new()),
            metrics: Arc::new(Metrics::new()),
            limiter: None,
        })
    }

    /// The fields of the request line that `req` logs, from a client at `client`.
    async fn request_line(state: &AppState, req: Request<Body>, client: SocketAddr) -> Value {
        let out = Captured::default();
        let _logging = out.this_thread();
        let mut req = req;
        req.extensions_mut().insert(ConnectInfo(client));
        router(state.clone()).oneshot(req).await.unwrap();
        let text = out.text();
        let line = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect(l))
            .find(|l| l["fields"]["message"] == "request")
            .unwrap_or_else(|| panic!("no request line in {text}"));
        line["fields"].clone()
    }

    fn post(uri: &str, body: &str) -> Request<Body> {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn an_error_answers_line_names_the_queue_the_code_and_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let client: SocketAddr = "192.0.2.7:40123".parse().unwrap();
        let req = post(
            "/api/queues/orders/events",
            r#"{"payload": 1, "delay_ms": "5"}"#,
        );
        let fields = request_line(&state, req, client).await;
        assert_eq!(fields["route"], "/api/queues/{queue}/events", "{fields}");
        assert_eq!(fields["queue"], "orders", "{fields}");
        assert_eq!(fields["status"], 400, "{fields}");
        assert_eq!(fields["code"], "invalid_request", "{fields}");
        assert_eq!(fields["client"], "192.0.2.7:40123", "{fields}");
        assert!(fields["duration_us"].is_u64(), "{fields}");
        assert!(fields.get("duration_ms").is_none(), "{fields}");

        let fields = request_line(&state, get("/api/queues/nope"), client).await;
        assert_eq!(
            (&fields["queue"], &fields["status"], &fields["code"]),
            (&"nope".into(), &404.into(), &"not_found".into()),
            "{fields}"
        );
    }

    #[tokio::test]
    async fn a_success_or_a_route_without_a_queue_leaves_those_fields_out() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let client: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
        let req = post("/api/queues/orders/events", r#"{"payload": 1}"#);
        let fields = request_line(&state, req, client).await;
        assert_eq!(fields["status"], 201, "{fields}");
        assert_eq!(fields["queue"], "orders", "{fields}");
        assert!(fields.get("code").is_none(), "{fields}");
        assert_eq!(fields["client"], "[2001:db8::1]:8080", "{fields}");

        let fields = request_line(&state, get("/api/health"), client).await;
        assert!(fields.get("queue").is_none(), "{fields}");
        assert!(fields.get("code").is_none(), "{fields}");

        let fields = request_line(&state, get("/api/nothing/here"), client).await;
        assert_eq!(fields["route"], "unmatched", "{fields}");
        assert!(fields.get("queue").is_none(), "{fields}");
        assert_eq!(fields["code"], "not_found", "{fields}");
    }

    #[test]
    fn the_queue_is_the_paths_segment_cut_at_the_longest_name() {
        let route = Some("/api/queues/{queue}/dlq/purge");
        let of = |path: &str| PathQueue::of(route, path).map(|q| q.as_str().to_string());
        assert_eq!(
            of("/api/queues/a.b-c_d/dlq/purge").as_deref(),
            Some("a.b-c_d")
        );
        let long = format!("/api/queues/{}/dlq/purge", "x".repeat(300));
        assert_eq!(of(&long).map(|q| q.len()), Some(MAX_QUEUE_NAME));
        // Not through a character: 1 + 2 * 63 bytes, then one that would straddle the cut.
        let wide = format!("/api/queues/x{}/dlq/purge", "é".repeat(100));
        assert_eq!(of(&wide).map(|q| q.len()), Some(MAX_QUEUE_NAME - 1));
        let one = PathQueue::of(Some("/api/queues/{queue}"), "/api/queues/solo");
        assert_eq!(one.as_ref().map(PathQueue::as_str), Some("solo"));
        assert!(PathQueue::of(Some("/api/queues"), "/api/queues").is_none());
        assert!(PathQueue::of(None, "/api/queues/x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_is_counted_but_kept_out_of_the_duration_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let lease = |wait_ms: u64| {
            let body = format!(r#"{{"wait_ms": {wait_ms}}}"#);
            router(state.clone()).oneshot(post("/api/queues/idle/lease", &body))
        };
        assert_eq!(lease(0).await.unwrap().status(), 200);
        assert_eq!(lease(50).await.unwrap().status(), 200);
        let text = state.metrics.render(&state.broker, true);
        let count = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix) && l.contains("/lease"))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(count("http_requests_total{"), "2");
        assert_eq!(count("http_request_duration_seconds_count{"), "1");
    }
}
