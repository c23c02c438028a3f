//! The API over loopback: a broker in a temporary directory on a manual
//! clock, served on a free port for each request, so requests go through a
//! real socket and hyper as a client's would.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use event_broker::api::{router, AppState};
use event_broker_clock::ManualClock;
use event_broker_core::{Broker, BrokerOptions, Limits};
use event_broker_wal::fs::FaultyFs;
use event_broker_wal::{FsyncPolicy, WalOptions};
use serde_json::Value;

use super::broker::{app_state, limits, START_MS};

/// A broker and the API state around it.
pub struct Api {
    _dir: tempfile::TempDir,
    /// The broker's clock.
    pub clock: Arc<ManualClock>,
    /// What the router is built from; tests change auth, CORS and limits in it.
    pub state: AppState,
}

impl Api {
    /// Small limits that are easy to reach: 5 events a queue, 64-byte
    /// payloads, no retries.
    pub fn new() -> Self {
        let mut limits = limits();
        limits.queue_max_size = 5;
        limits.max_payload_bytes = 64;
        limits.max_retries = 0;
        Self::with(limits)
    }

    /// With the given limits.
    pub fn with(limits: Limits) -> Self {
        Self::on(limits, FaultyFs::new())
    }

    /// On a filesystem whose faults the test sets.
    pub fn on(limits: Limits, fs: FaultyFs) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Always,
                fs: Arc::new(fs),
                ..WalOptions::new(dir.path())
            },
            limits,
            clock: clock.clone(),
        };
        let broker = Arc::new(Broker::open(options).unwrap().0);
        let state = app_state(broker);
        Api {
            _dir: dir,
            clock,
            state,
        }
    }

    /// One request; a body is sent as JSON.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        self.send(req).await
    }

    /// Sends `req` over loopback to a server with the state as it is now
    /// (tests change auth, CORS and limits between calls).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value, HeaderMap) {
        let (status, bytes, headers) = self.exchange(req).await;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, headers)
    }

    /// Like [`Api::send`], with the answer's bytes as they came.
    pub async fn exchange(&self, req: Request<Body>) -> (StatusCode, Vec<u8>, HeaderMap) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let resp = reqwest::Client::new()
            .request(parts.method, format!("http://{addr}{}", parts.uri))
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap().to_vec();
        server.abort();
        (status, bytes, headers)
    }

    /// A POST of JSON `body`.
    pub async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::POST, uri, Some(body)).await;
        (s, v)
    }

    /// A GET.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::GET, uri, None).await;
        (s, v)
    }

    /// Enqueues `body` (an event or a batch) on queue `q`, which must be stored.
    pub async fn enqueue_q(&self, body: Value) -> Value {
        let (s, v) = self.post("/api/queues/q/events", &body.to_string()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// The metrics page's text.
    pub async fn metrics(&self) -> String {
        let req = Request::get("/api/metrics").body(Body::empty()).unwrap();
        String::from_utf8(self.exchange(req).await.1).unwrap()
    }

    /// Raw body text of a lease answer, to check payload bytes exactly.
    pub async fn lease_text(&self, queue: &str, body: &str) -> String {
        let req = Request::post(format!("/api/queues/{queue}/lease"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        String::from_utf8(self.exchange(req).await.1).unwrap()
    }
}

/// Checks the error body shape and code, and that the message mentions `mentions`.
pub fn assert_error(
    status: StatusCode,
    body: &Value,
    want: StatusCode,
    code: &str,
    mentions: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(
        message.contains(mentions),
        "message {message:?} does not mention {mentions:?}"
    );
}

/// The ids of the events of a lease answer or a page, in order.
pub fn ids(page: &Value) -> Vec<u64> {
    let events = page["events"].as_array().expect("events");
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}
