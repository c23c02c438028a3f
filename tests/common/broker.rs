//! A broker in a temporary directory on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use event_broker_clock::ManualClock;
use event_broker_core::{Broker, BrokerOptions, Delivery, Limits, NewEvent, ReceiptStatus};
use event_broker_wal::{FsyncPolicy, WalOptions};
use tempfile::TempDir;

/// Wall time the test clocks start at: 2023-11-14T22:13:20Z.
pub const START_MS: u64 = 1_700_000_000_000;

/// Limits for tests: small numbers that are easy to reason about, jitter seeded.
pub fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.backoff.seed = 7;
    limits
}

/// A broker whose directory and clock outlive restarts.
pub struct TestBroker {
    pub dir: TempDir,
    pub clock: Arc<ManualClock>,
    pub broker: Broker,
    pub limits: Limits,
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl TestBroker {
    /// Default limits (jitter seeded), 1 MiB segments, no fsync (tests run on tmpfs-like speed).
    pub fn new() -> Self {
        Self::with(limits(), 1 << 20, FsyncPolicy::Never)
    }

    /// A broker with the given limits, segment size and fsync policy.
    pub fn with(limits: Limits, segment_bytes: u64, fsync: FsyncPolicy) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(START_MS));
        let broker = open(dir.path(), &clock, &limits, segment_bytes, fsync);
        TestBroker {
            dir,
            clock,
            broker,
            limits,
            segment_bytes,
            fsync,
        }
    }

    /// Closes the broker and opens it again on the same directory and clock.
    pub fn restart(&mut self) {
        self.restart_after(|_| {});
    }

    /// Closes the broker, lets `crash` do to the data directory what a
    /// crash would have done, and opens the broker again.
    pub fn restart_after(&mut self, crash: impl FnOnce(&std::path::Path)) {
        self.broker.close().expect("close");
        crash(self.dir.path());
        let fresh = open(
            self.dir.path(),
            &self.clock,
            &self.limits,
            self.segment_bytes,
            self.fsync,
        );
        self.broker = fresh;
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Enqueues one event; its id.
    pub fn enqueue(&self, queue: &str, event: NewEvent) -> u64 {
        self.broker
            .enqueue_blocking(queue, &[event])
            .expect("enqueue")[0]
            .id
    }

    /// Leases up to `max` with the default visibility timeout.
    pub fn lease(&self, queue: &str, max: usize) -> Vec<Delivery> {
        self.broker.lease(queue, max, None).expect("lease")
    }

    /// Acks one delivery; its status.
    pub fn ack(&self, queue: &str, d: &Delivery) -> ReceiptStatus {
        self.broker
            .ack(queue, &[d.receipt.to_string()])
            .expect("ack accepted")
            .wait()
            .expect("ack written")[0]
            .status
    }

    /// Nacks one delivery with the event's backoff; its status.
    pub fn nack(&self, queue: &str, d: &Delivery, error: Option<&str>) -> ReceiptStatus {
        self.broker
            .nack(queue, &[d.receipt.to_string()], None, error)
            .expect("nack accepted")
            .wait()
            .expect("nack written")[0]
            .status
    }
}

impl TestBroker {
    /// Enqueues and acks enough events on `queue` to fill several small
    /// segments, then cleans up, which must delete the oldest segment: what
    /// a test of the records cleanup writes forward needs.
    pub fn churn_and_clean_up(&self, queue: &str) {
        let first = self.broker.wal().segments()[0].first_seq;
        let pad = "x".repeat(64);
        for round in 0..4 {
            let batch: Vec<NewEvent> = (0..50)
                .map(|i| event(&format!(r#"["{pad}",{round},{i}]"#)))
                .collect();
            self.broker
                .enqueue_blocking(queue, &batch)
                .expect("enqueue");
            for d in self.lease(queue, 50) {
                assert_eq!(self.ack(queue, &d), ReceiptStatus::Ok);
            }
        }
        // A newer id than those of the oldest segment, so that it may go.
        self.enqueue(queue, event("{}"));
        let report = self.broker.cleanup().expect("cleanup");
        assert!(report.deleted > 0, "{report:?}");
        assert!(self.broker.wal().segments()[0].first_seq > first);
    }
}

/// Runs `f` to its end on a runtime of its own, for async calls of plain tests.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

impl Default for TestBroker {
    fn default() -> Self {
        Self::new()
    }
}

/// An event with a JSON payload.
pub fn event(payload: &str) -> NewEvent {
    NewEvent {
        payload: payload.as_bytes().to_vec(),
        ..NewEvent::default()
    }
}

fn open(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    limits: &Limits,
    segment_bytes: u64,
    fsync: FsyncPolicy,
) -> Broker {
    let wal = WalOptions {
        segment_bytes,
        fsync,
        ..WalOptions::new(dir)
    };
    let options = BrokerOptions {
        wal,
        limits: limits.clone(),
        clock: clock.clone(),
    };
    Broker::open(options).expect("open broker").0
}

/// What the API needs around `broker`: no auth, no CORS, no rate limit.
pub fn app_state(broker: Arc<Broker>) -> event_broker::api::AppState {
    event_broker::api::AppState::from(event_broker::api::AppParts {
        broker,
        shutdown: Default::default(),
        started: std::time::Instant::now(),
        settings: Arc::new(vec![("PORT", "3000".into())]),
        token: None,
        admin_token: None,
        origins: Arc::new(Vec::new()),
        metrics: Arc::new(event_broker::metrics::Metrics::new()),
        limiter: None,
    })
}
