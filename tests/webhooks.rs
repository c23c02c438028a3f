//! Push delivery end to end: subscriptions set through the HTTP API of a
//! server on a loopback port, a webhook receiver on another, and the worker
//! pool in between. Tests wait on the pool's outcomes, never on time.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::broker::{app_state, limits};
use event_broker::api::router;
use event_broker::broker::{Broker, BrokerOptions, Limits};
use event_broker::clock::SystemClock;
use event_broker::wal::{FsyncPolicy, WalOptions};
use event_broker::worker::{DeliveryObserver, Outcome, WorkerPool};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// 24 bytes of 0x2a, as a Standard Webhooks secret.
const SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioq";

/// How the receiver answers one call.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
    /// Answers 200 once the test releases it.
    Held,
}

/// One call the receiver got.
struct Call {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Hook {
    calls: mpsc::UnboundedSender<Call>,
    /// Answers for the next calls, in order; 200 once they run out.
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// One permit per held call the test lets go.
    release: Arc<tokio::sync::Semaphore>,
}

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = hook.script.lock().unwrap().pop_front();
    hook.calls.send(Call { headers, body }).unwrap();
    match answer.unwrap_or(Answer::Status(200)) {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => std::future::pending().await,
        Answer::Held => {
            hook.release.acquire().await.unwrap().forget();
            StatusCode::OK
        }
    }
}

/// Hears the pool's outcomes.
struct Outcomes(mpsc::UnboundedSender<(String, Outcome)>);

impl DeliveryObserver for Outcomes {
    fn delivered(&self, queue: &str, outcome: &Outcome, _took: Duration) {
        let _test_gone = self.0.send((queue.to_string(), outcome.clone()));
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    api: String,
    hook_url: String,
    client: reqwest::Client,
    calls: mpsc::UnboundedReceiver<Call>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    outcomes: mpsc::UnboundedReceiver<(String, Outcome)>,
    release: Arc<tokio::sync::Semaphore>,
    /// Stops the worker pool only; the servers go on.
    pool_stop: CancellationToken,
    pool: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl Setup {
    /// Broker, API server, worker pool and receiver, each on its own loopback port.
    async fn start(limits: Limits) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir.path())
            },
            limits,
            clock: Arc::new(SystemClock),
        };
        let broker = Arc::new(Broker::open(options).unwrap().0);
        let stop = CancellationToken::new();
        let api = serve(router(app_state(broker.clone())), &stop).await;

        let (calls_tx, calls) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let hook = Hook {
            calls: calls_tx,
            script: script.clone(),
            release: release.clone(),
        };
        let receiver = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(hook);
        let hook_addr = serve(receiver, &stop).await;

        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let pool = WorkerPool::new(broker, Some(Arc::new(Outcomes(outcomes_tx)))).unwrap();
        let pool_stop = stop.child_token();
        let pool = tokio::spawn(pool.run(pool_stop.clone()));
        Setup {
            _dir: dir,
            api: format!("http://{api}"),
            hook_url: format!("http://{hook_addr}/hook"),
            client: reqwest::Client::new(),
            calls,
            script,
            outcomes,
            release,
            pool_stop,
            pool,
            stop,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.api));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn subscribe(&self, queue: &str, body: Value) -> (u16, Value) {
        let path = format!("/api/queues/{queue}/subscription");
        self.call(reqwest::Method::PUT, &path, Some(body)).await
    }

    async fn enqueue(&self, queue: &str, payload: Value) -> u64 {
        let path = format!("/api/queues/{queue}/events");
        let body = json!({ "payload": payload });
        let (status, answer) = self.call(reqwest::Method::POST, &path, Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_u64().unwrap()
    }

    async fn next_outcome(&mut self) -> Outcome {
        let waited = tokio::time::timeout(Duration::from_secs(30), self.outcomes.recv());
        waited.await.expect("a delivery within 30 s").unwrap().1
    }

    async fn next_call(&mut self) -> Call {
        let waited = tokio::time::timeout(Duration::from_secs(30), self.calls.recv());
        waited.await.expect("a webhook call within 30 s").unwrap()
    }

    fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers);
    }

    async fn queue(&self, queue: &str) -> Value {
        let path = format!("/api/queues/{queue}");
        self.call(reqwest::Method::GET, &path, None).await.1
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(app: axum::Router, stop: &CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::spawn(async move { server.await.unwrap() });
    addr
}

/// Retries after 1 ms, so a failed delivery comes back at once.
fn quick_retries(max_retries: u32) -> Limits {
    let mut limits = limits();
    limits.max_retries = max_retries;
    limits.backoff.base_ms = 1;
    limits.backoff.max_ms = 1;
    limits
}

fn header<'a>(call: &'a Call, name: &str) -> &'a str {
    call.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_pushed_signed_and_acked() {
    let mut s = Setup::start(limits()).await;
    let body = json!({ "url": s.hook_url, "concurrency": 2, "secret": SECRET });
    let (status, shown) = s.subscribe("orders", body).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown,
        json!({ "queue": "orders", "url": s.hook_url, "concurrency": 2,
                "timeout_ms": 10000, "signed": true })
    );

    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            s.enqueue("orders", json!({ "n": n, "text": "ünïcode" }))
                .await,
        );
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let call = s.next_call().await;
        let event: Value = serde_json::from_slice(&call.body).unwrap();
        let id = event["id"].as_u64().unwrap();
        assert_eq!(event["queue"], "orders");
        assert_eq!(event["attempt"], 1);
        assert_eq!(event["payload"]["text"], "ünïcode");
        assert!(
            event.get("receipt").is_none(),
            "no receipt in a webhook body"
        );
        assert_eq!(header(&call, "content-type"), "application/json");
        assert_eq!(header(&call, "webhook-id"), format!("evt_{id}"));
        let timestamp: u64 = header(&call, "webhook-timestamp").parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(timestamp.abs_diff(now) <= 60, "{timestamp} vs {now}");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("evt_{id}.{timestamp}.").as_bytes());
        mac.update(&call.body);
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(header(&call, "webhook-signature"), format!("v1,{expected}"));
        seen.push(id);
    }
    for _ in 0..5 {
        let outcome = s.next_outcome().await;
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.status, Some(200));
    }
    seen.sort_unstable();
    assert_eq!(seen, ids);
    let queue = s.queue("orders").await;
    assert_eq!(
        (&queue["acked_total"], &queue["ready"], &queue["in_flight"]),
        (&json!(5), &json!(0), &json!(0)),
        "{queue}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_are_retried_and_end_in_the_dead_letter_queue() {
    let mut s = Setup::start(quick_retries(1)).await;
    let body = json!({ "url": s.hook_url, "concurrency": 1 });
    assert_eq!(s.subscribe("jobs", body).await.0, 200);

    // Fails once, then is delivered.
    s.answer(&[Answer::Status(500)]);
    let first = s.enqueue("jobs", json!("first")).await;
    let outcome = s.next_outcome().await;
    assert_eq!((outcome.id, outcome.attempt), (first, 1));
    assert_eq!(outcome.status, Some(500));
    assert_eq!(
        outcome.error.as_deref(),
        Some("webhook answered 500 Internal Server Error")
    );
    let outcome = s.next_outcome().await;
    assert_eq!(
        (outcome.id, outcome.attempt, outcome.error),
        (first, 2, None)
    );

    // Fails MAX_RETRIES + 1 times: dead, with the last answer as its error.
    s.answer(&[Answer::Status(503), Answer::Status(503)]);
    let second = s.enqueue("jobs", json!("second")).await;
    for attempt in 1..=2 {
        let outcome = s.next_outcome().await;
        assert_eq!((outcome.id, outcome.attempt), (second, attempt));
        assert!(outcome.error.is_some());
    }
    let (status, dlq) = s
        .call(reqwest::Method::GET, "/api/queues/jobs/dlq", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(dlq["events"][0]["id"], second);
    assert_eq!(dlq["events"][0]["attempts"], 2);
    assert_eq!(
        dlq["events"][0]["last_error"],
        "webhook answered 503 Service Unavailable"
    );
    let queue = s.queue("jobs").await;
    assert_eq!(
        (&queue["acked_total"], &queue["dead"]),
        (&json!(1), &json!(1)),
        "{queue}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_or_refused_is_a_failed_delivery() {
    let mut s = Setup::start(quick_retries(5)).await;
    let body = json!({ "url": s.hook_url, "concurrency": 1, "timeout_ms": 100 });
    assert_eq!(s.subscribe("slow", body).await.0, 200);
    s.answer(&[Answer::Hang]);
    let id = s.enqueue("slow", json!(1)).await;
    let outcome = s.next_outcome().await;
    assert_eq!((outcome.id, outcome.status), (id, None));
    assert_eq!(
        outcome.error.as_deref(),
        Some("webhook did not answer within 100 ms")
    );
    let outcome = s.next_outcome().await;
    assert_eq!((outcome.id, outcome.attempt, outcome.error), (id, 2, None));

    // Nothing listens on a port just freed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = json!({ "url": format!("http://{closed}/hook"), "concurrency": 1 });
    assert_eq!(s.subscribe("nowhere", body).await.0, 200);
    s.enqueue("nowhere", json!(2)).await;
    let outcome = s.next_outcome().await;
    assert_eq!(outcome.status, None);
    let error = outcome.error.unwrap();
    assert!(error.starts_with("webhook call failed: "), "{error}");
    assert!(
        !error.contains("127.0.0.1"),
        "the URL stays out of the error: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_routes_check_their_fields_and_remove() {
    let s = Setup::start(limits()).await;
    let path = "/api/queues/q/subscription";
    for (body, field) in [
        (json!({ "url": "not a url" }), "url"),
        (json!({ "url": "ftp://127.0.0.1/x" }), "url"),
        (
            json!({ "url": s.hook_url, "concurrency": 0 }),
            "concurrency",
        ),
        (json!({ "url": s.hook_url, "timeout_ms": 0 }), "timeout_ms"),
        (json!({ "url": s.hook_url, "secret": "hunter2" }), "secret"),
        (json!({ "url": s.hook_url, "retries": 3 }), "retries"),
        (json!({ "concurrency": 1 }), "url"),
    ] {
        let (status, answer) = s.subscribe("q", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, answer) = s.subscribe("bad name!", json!({ "url": s.hook_url })).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("invalid_request"))
    );

    let (status, answer) = s.call(reqwest::Method::GET, path, None).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("not_found"))
    );
    assert_eq!(s.subscribe("q", json!({ "url": s.hook_url })).await.0, 200);
    let (status, shown) = s.call(reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200);
    // WORKER_COUNT when not given; no secret, so unsigned.
    assert_eq!(
        (&shown["concurrency"], &shown["signed"]),
        (&json!(8), &json!(false))
    );
    let (_, status_page) = s.call(reqwest::Method::GET, "/api/status", None).await;
    assert_eq!(status_page["workers"], 8);

    assert_eq!(s.call(reqwest::Method::DELETE, path, None).await.0, 204);
    assert_eq!(s.call(reqwest::Method::GET, path, None).await.0, 404);
    assert_eq!(s.call(reqwest::Method::DELETE, path, None).await.0, 404);
    let (_, status_page) = s.call(reqwest::Method::GET, "/api/status", None).await;
    assert_eq!(status_page["workers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_call_in_progress_finish_and_acks_it() {
    let mut s = Setup::start(limits()).await;
    let body = json!({ "url": s.hook_url, "concurrency": 1 });
    assert_eq!(s.subscribe("q", body).await.0, 200);
    s.answer(&[Answer::Held]);
    let id = s.enqueue("q", json!("in flight at shutdown")).await;
    s.next_call().await;

    s.pool_stop.cancel();
    // The receiver holds the call: the pool cannot have finished.
    tokio::task::yield_now().await;
    assert!(
        !s.pool.is_finished(),
        "the pool must wait for the call in progress"
    );
    s.release.add_permits(1);
    let pool = std::mem::replace(&mut s.pool, tokio::spawn(async {}));
    tokio::time::timeout(Duration::from_secs(30), pool)
        .await
        .expect("the pool stops once its call is done")
        .unwrap();
    let outcome = s.next_outcome().await;
    assert_eq!((outcome.id, outcome.error), (id, None));
    let queue = s.queue("q").await;
    assert_eq!(
        (&queue["acked_total"], &queue["in_flight"]),
        (&json!(1), &json!(0)),
        "{queue}"
    );
}
