//! Push delivery end to end: subscriptions set through the HTTP API of a
//! server on a loopback port, a webhook receiver on another, and the worker
//! pool in between. Tests wait on the pool's outcomes, never on time. A
//! paused queue's workers wait for the resume.
//! The receivers listen on loopback, so most tests allow private addresses
//! (`WEBHOOK_ALLOW_PRIVATE`); those of the address rule do not.

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
use event_broker::worker::{DeliveryObserver, Outcome, WorkerPool};
use event_broker_clock::SystemClock;
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent, SubscriptionRequest};
use event_broker_wal::{FsyncPolicy, WalOptions};
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

/// The tests' limits, with webhooks allowed to reach the loopback receivers.
fn hook_limits() -> Limits {
    Limits {
        webhook_allow_private: true,
        ..limits()
    }
}

/// Retries after 1 ms, so a failed delivery comes back at once.
fn quick_retries(max_retries: u32) -> Limits {
    let mut limits = hook_limits();
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
    let mut s = Setup::start(hook_limits()).await;
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
async fn a_groups_events_are_pushed_one_at_a_time_in_order_through_a_retry() {
    let mut s = Setup::start(quick_retries(3)).await;
    // The first call fails: its event must come again before the next one.
    s.answer(&[Answer::Status(500)]);
    let batch: Vec<Value> = (0..4)
        .map(|n| json!({ "payload": n, "group": "acme" }))
        .collect();
    let (status, answer) = s
        .call(
            reqwest::Method::POST,
            "/api/queues/orders/events",
            Some(json!(batch)),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let body = json!({ "url": s.hook_url, "concurrency": 4 });
    assert_eq!(s.subscribe("orders", body).await.0, 200);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let call = s.next_call().await;
        let event: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(event["group"], "acme", "{event}");
        seen.push((
            event["id"].as_u64().unwrap(),
            event["attempt"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [(0, 1), (0, 2), (1, 1), (2, 1), (3, 1)],
        "one call at a time, in id order, the failed one again first, with 4 workers free"
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
async fn a_paused_queue_is_not_pushed_until_it_is_resumed() {
    let mut s = Setup::start(hook_limits()).await;
    let paused = json!({ "paused": true });
    let (status, shown) = s
        .call(reqwest::Method::PUT, "/api/queues/held", Some(paused))
        .await;
    assert_eq!(status, 200, "{shown}");
    let body = json!({ "url": s.hook_url, "concurrency": 2 });
    assert_eq!(s.subscribe("held", body.clone()).await.0, 200);
    let held = s.enqueue("held", json!("held")).await;

    // The pool goes on with the queue beside it meanwhile.
    assert_eq!(s.subscribe("open", body).await.0, 200);
    let open = s.enqueue("open", json!("open")).await;
    let call = s.next_call().await;
    let event: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(event["id"], open, "{event}");
    assert_eq!(s.next_outcome().await.id, open);
    assert!(s.calls.try_recv().is_err(), "a paused queue was pushed");
    let queue = s.queue("held").await;
    assert_eq!(
        (&queue["ready"], &queue["in_flight"]),
        (&json!(1), &json!(0)),
        "{queue}"
    );

    let (status, _) = s
        .call(reqwest::Method::POST, "/api/queues/held/resume", None)
        .await;
    assert_eq!(status, 200);
    let call = s.next_call().await;
    let event: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(event["id"], held, "{event}");
    assert_eq!(s.next_outcome().await.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_routes_check_their_fields_and_remove() {
    let s = Setup::start(hook_limits()).await;
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
    let mut s = Setup::start(hook_limits()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_of_addresses_that_are_not_public_are_refused_unless_allowed() {
    let urls = [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
    ];
    let strict = Setup::start(limits()).await;
    for url in urls {
        let (status, answer) = strict.subscribe("q", json!({ "url": url })).await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "{url}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("url: "), "{url}: {message}");
    }
    let (_, answer) = strict.subscribe("q", json!({ "url": urls[1] })).await;
    assert_eq!(
        answer["error"]["message"],
        "url: expected a URL of a public address, got 169.254.169.254, which is \
         link-local (WEBHOOK_ALLOW_PRIVATE=true allows it)"
    );
    drop(strict);

    let allowed = Setup::start(hook_limits()).await;
    // The URL grammar has no IPv6 literals, allowed or not.
    for url in &urls[..3] {
        let (status, answer) = allowed.subscribe("q", json!({ "url": url })).await;
        assert_eq!(status, 200, "{url}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time_unless_allowed() {
    let mut strict = Setup::start(Limits {
        webhook_allow_private: false,
        ..quick_retries(0)
    })
    .await;
    // A name passes when the subscription is set; its addresses are
    // checked when a delivery connects.
    let by_name = strict.hook_url.replace("127.0.0.1", "localhost");
    let (status, answer) = strict.subscribe("q", json!({ "url": by_name })).await;
    assert_eq!(status, 200, "{answer}");
    let id = strict.enqueue("q", json!("to localhost")).await;
    let outcome = strict.next_outcome().await;
    assert_eq!((outcome.id, outcome.status), (id, None));
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("webhook call failed: ")
            && error.contains("the host resolves to no public address (")
            && error.contains(" is loopback); WEBHOOK_ALLOW_PRIVATE=true allows it"),
        "{error}"
    );
    assert!(
        strict.calls.try_recv().is_err(),
        "no call reached the receiver"
    );
    // Nacked: with no retries, dead with the reason as its error.
    let (_, dlq) = strict
        .call(reqwest::Method::GET, "/api/queues/q/dlq", None)
        .await;
    assert_eq!(dlq["events"][0]["id"], id);
    assert_eq!(dlq["events"][0]["last_error"], error.as_str());
    drop(strict);

    let mut allowed = Setup::start(hook_limits()).await;
    let by_name = allowed.hook_url.replace("127.0.0.1", "localhost");
    assert_eq!(
        allowed.subscribe("q", json!({ "url": by_name })).await.0,
        200
    );
    let id = allowed.enqueue("q", json!("to localhost")).await;
    allowed.next_call().await;
    let outcome = allowed.next_outcome().await;
    assert_eq!((outcome.id, outcome.error), (id, None));
}

/// A receiver that answers each call with `status` and a body of `HUGE`
/// bytes, written for as long as the client reads; what it wrote of each
/// body goes to `sent`.
async fn huge_answers(statuses: Vec<u16>) -> (SocketAddr, mpsc::UnboundedReceiver<u64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HUGE: u64 = 50 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sent_tx, sent) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for status in statuses {
            let (mut conn, _) = listener.accept().await.unwrap();
            // The request: its head, then as many bytes as it says it has.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let body_at = loop {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8_lossy(&request[..body_at]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut rest = vec![0u8; (body_at + length).saturating_sub(request.len())];
            conn.read_exact(&mut rest).await.unwrap();

            let head = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: {HUGE}\r\n\r\n");
            conn.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b'x'; 64 << 10];
            let mut written = 0u64;
            while written < HUGE {
                let left = chunk.len().min((HUGE - written) as usize);
                match conn.write(&chunk[..left]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => written += n as u64,
                }
            }
            sent_tx.send(written).unwrap();
        }
    });
    (addr, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_huge_answer_at_most_64_kib_is_read_and_the_delivery_settled() {
    let mut s = Setup::start(quick_retries(1)).await;
    let (addr, mut sent) = huge_answers(vec![500, 200]).await;
    let url = format!("http://{addr}/hook");
    assert_eq!(
        s.subscribe("big", json!({ "url": url, "concurrency": 1 }))
            .await
            .0,
        200
    );
    let id = s.enqueue("big", json!("answered at length")).await;

    // A failure quotes the start of the answer, no more.
    let outcome = s.next_outcome().await;
    assert_eq!(
        (outcome.id, outcome.attempt, outcome.status),
        (id, 1, Some(500))
    );
    let error = outcome.error.unwrap();
    let quoted = format!(
        "webhook answered 500 Internal Server Error: {}…",
        "x".repeat(256)
    );
    assert_eq!(error, quoted);

    let outcome = s.next_outcome().await;
    assert_eq!((outcome.id, outcome.attempt), (id, 2));
    assert_eq!((outcome.status, outcome.error), (Some(200), None));
    let queue = s.queue("big").await;
    assert_eq!(queue["acked_total"], 1, "{queue}");

    // What the receiver could write before the client closed the
    // connection: what was read and what the sockets' buffers held.
    for _ in 0..2 {
        let written = tokio::time::timeout(Duration::from_secs(30), sent.recv())
            .await
            .expect("the receiver stops writing once the client is gone")
            .unwrap();
        assert!(
            written < 16 << 20,
            "the client read on: {written} bytes written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_subscription_to_a_loopback_address_fails_its_calls_once_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let open = |webhook_allow_private| {
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir.path())
            },
            limits: Limits {
                webhook_allow_private,
                ..quick_retries(0)
            },
            clock: Arc::new(SystemClock),
        };
        Arc::new(Broker::open(options).unwrap().0)
    };
    // Set while allowed; the broker then restarts without the setting.
    let broker = open(true);
    let request = SubscriptionRequest {
        url: "http://127.0.0.1:9/hook".into(),
        ..SubscriptionRequest::default()
    };
    broker.subscribe("q", request).await.unwrap();
    broker.close().unwrap();
    drop(broker);
    let broker = open(false);
    assert_eq!(broker.subscriptions().len(), 1);

    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let pool = WorkerPool::new(broker.clone(), Some(Arc::new(Outcomes(outcomes_tx)))).unwrap();
    let stop = CancellationToken::new();
    let pool = tokio::spawn(pool.run(stop.clone()));
    let event = NewEvent {
        payload: b"1".to_vec(),
        ..NewEvent::default()
    };
    let id = broker.enqueue("q", &[event]).await.unwrap()[0].id;
    let waited = tokio::time::timeout(Duration::from_secs(30), outcomes.recv());
    let (_, outcome) = waited.await.expect("a delivery within 30 s").unwrap();
    assert_eq!((outcome.id, outcome.status), (id, None));
    assert_eq!(
        outcome.error.as_deref(),
        Some(
            "webhook call refused: the URL's address is loopback, not public; \
             WEBHOOK_ALLOW_PRIVATE=true allows it"
        )
    );
    stop.cancel();
    pool.await.unwrap();
}
