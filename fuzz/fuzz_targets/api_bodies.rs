//! The request bodies of every POST and PUT route through `router()`.
//!
//! The first byte chooses the route and the queue, the rest is the body,
//! sent as `application/json`. One broker serves every input: a log on a
//! scratch directory, no fsync, a manual clock, no webhook workers (no
//! subscription is ever called). In an ack, nack or extend body, `$R`
//! becomes the receipt of a current lease, so those routes reach the
//! broker and not only the decoder.
//!
//! Asserted: no answer is a 5xx (a 503 or 507 only once the log itself has
//! failed, which it should not); every other answer that is not a 2xx has
//! the `{"error": {"code", "message"}}` body of the error table, and every
//! 2xx body is empty or JSON (by the grammar: a payload comes back byte for
//! byte, numbers beyond a float's range included). A lease may long-poll: it is given 20 ms and
//! then dropped, as a client that hangs up; any other route must answer.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use event_broker::api::{router, AppParts, AppState};
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent};
use event_broker_clock::ManualClock;
use event_broker::metrics::Metrics;
use event_broker_wal::{FsyncPolicy, WalOptions};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use tower::ServiceExt;

/// The POST and PUT routes, `{q}` standing for the queue.
const ROUTES: [(&str, &str); 9] = [
    ("POST", "/api/queues/{q}/events"),
    ("POST", "/api/queues/{q}/lease"),
    ("POST", "/api/queues/{q}/ack"),
    ("POST", "/api/queues/{q}/nack"),
    ("POST", "/api/queues/{q}/extend"),
    ("POST", "/api/queues/{q}/dlq/redrive"),
    ("POST", "/api/queues/{q}/dlq/purge"),
    ("PUT", "/api/queues/{q}/subscription"),
    ("POST", "/api/admin/checkpoint"),
];
const LEASE: usize = 1;
const SETTLES: [usize; 3] = [2, 3, 4];
const CHECKPOINT: usize = 8;
const QUEUES: [&str; 3] = ["orders", "q-1", "a.b_c"];
/// The clock moves this much per input, so leases run out and backoffs end.
const TICK: Duration = Duration::from_millis(500);
/// The reaper steps once every this many inputs.
const REAP_EVERY: u64 = 32;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    broker: Arc<Broker>,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    inputs: std::sync::atomic::AtomicU64,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = scratch();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let limits = Limits {
            queue_max_size: 200,
            max_retries: 1,
            ..Limits::default()
        };
        let options = BrokerOptions {
            wal: WalOptions {
                segment_bytes: 1 << 20,
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir.path())
            },
            limits,
            clock: clock.clone(),
        };
        let broker = Arc::new(
            Broker::open(options)
                .expect("a broker on a fresh directory")
                .0,
        );
        let state = AppState::from(AppParts {
            broker: broker.clone(),
            shutdown: Default::default(),
            started: std::time::Instant::now(),
            settings: Arc::new(Vec::new()),
            token: None,
            admin_token: None,
            origins: Arc::new(Vec::new()),
            metrics: Arc::new(Metrics::new()),
            limiter: None,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        Harness {
            runtime,
            router: router(state),
            broker,
            clock,
            dir,
            inputs: Default::default(),
        }
    })
}

/// The broker's directory, in memory when the machine has a tmpfs at
/// /dev/shm. A run ends by `exit`, which drops no static, so the directory
/// outlives it: its name carries the process id, and each run removes those
/// of runs that are gone.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("api-fuzz-"))
            .and_then(|n| n.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            // Best effort: another run may be removing it too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("api-fuzz-{}-", std::process::id()))
        .tempdir_in(base)
        .expect("a scratch directory")
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    h.runtime.block_on(h.call(pick, body));
});

impl Harness {
    async fn call(&self, pick: u8, body: &[u8]) {
        self.tick().await;
        let route = usize::from(pick) % ROUTES.len();
        let queue = QUEUES[usize::from(pick) / ROUTES.len() % QUEUES.len()];
        let (method, template) = ROUTES[route];
        let body = if SETTLES.contains(&route) && has_receipt_mark(body) {
            let receipt = self.receipt(queue).await;
            replace_receipt_mark(body, receipt.as_bytes())
        } else {
            body.to_vec()
        };
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("a method"))
            .uri(template.replace("{q}", queue))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a request");
        let limit = if route == LEASE {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(30)
        };
        let answer = tokio::time::timeout(limit, self.router.clone().oneshot(req)).await;
        let Ok(answer) = answer else {
            assert_eq!(
                route, LEASE,
                "{method} {template} did not answer within {limit:?}"
            );
            return;
        };
        let answer = answer.expect("the router is infallible");
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .expect("the answer's body");
        let text = String::from_utf8_lossy(&bytes);
        if status.is_server_error() {
            let log_failed = self.broker.wal().failure().is_some();
            assert!(
                log_failed && matches!(status.as_u16(), 503 | 507),
                "{method} {template} answered {status}: {text}"
            );
        }
        if status.is_success() {
            // JSON by its grammar, not by what fits a float: a payload is
            // handed back byte for byte, and `1e400` is a JSON number.
            assert!(
                bytes.is_empty() || serde_json::from_slice::<&RawValue>(&bytes).is_ok(),
                "{method} {template} answered {status} with a body that is not JSON: {text}"
            );
            if route == CHECKPOINT {
                self.forget_checkpoints();
            }
        } else {
            let body: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status} with a body that is not JSON ({e}): {text}"));
            let error = &body["error"];
            assert!(
                error["code"].is_string() && error["message"].is_string(),
                "{method} {template} answered {status} without the error body: {text}"
            );
        }
    }

    /// Moves the clock on and, now and then, runs a reaper step, as the
    /// daemon's reaper task would.
    async fn tick(&self) {
        self.clock.advance(TICK);
        let n = self
            .inputs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(REAP_EVERY) {
            self.broker.reap().result().await.expect("a reaper step");
        }
    }

    /// The receipt of a current lease on `queue`: of a ready event, or of
    /// one enqueued for it. A made-up one when the queue is full of leases.
    async fn receipt(&self, queue: &str) -> String {
        let event = NewEvent {
            payload: b"{\"for\":\"a receipt\"}".to_vec(),
            ..NewEvent::default()
        };
        // A full queue refuses; a lease of what is ready still gives a receipt.
        let _ = self.broker.enqueue(queue, &[event]).await;
        match self.broker.lease(queue, 1, None) {
            Ok(leased) if !leased.is_empty() => leased[0].receipt.to_string(),
            _ => "1.1.00".to_string(),
        }
    }

    /// Checkpoints are copies of the log: removed as they come, so a long
    /// run does not fill the disk.
    fn forget_checkpoints(&self) {
        let root = self.dir.path().join("checkpoints");
        for entry in std::fs::read_dir(&root)
            .expect("the checkpoints directory")
            .flatten()
        {
            std::fs::remove_dir_all(entry.path()).expect("remove a checkpoint");
        }
    }
}

fn has_receipt_mark(body: &[u8]) -> bool {
    body.windows(2).any(|w| w == b"$R")
}

fn replace_receipt_mark(body: &[u8], receipt: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + receipt.len());
    let mut rest = body;
    while !rest.is_empty() {
        if rest.starts_with(b"$R") {
            out.extend_from_slice(receipt);
            rest = &rest[2..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}
