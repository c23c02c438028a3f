//! Queues of events on the write-ahead log.
//!
//! # The lifecycle of an event
//!
//! ```text
//! enqueue ──▶ delayed ──(visible time)──▶ ready ──lease──▶ in flight ──ack──▶ gone
//!               ▲                          ▲                  │
//!               └──── failure n ≤ MAX_RETRIES (backoff) ──────┤ nack, or lease expired
//!                                          │                  ▼
//!                      redrive (failures reset)  ◀──────── dead (failure MAX_RETRIES + 1) ──purge──▶ gone
//! ```
//!
//! - Ids are global and increasing. Ready events are delivered in order of
//!   the time they became visible, then id.
//! - A lease hands out a [`Receipt`] naming that one lease; ack, nack and
//!   extend need the current one. Receipts carry a MAC under a key drawn at
//!   open, so none can be guessed (`lease.rs` says how). Leases are
//!   not logged: after a restart every in-flight event is ready again
//!   (at-least-once delivery).
//! - Every other change is a [`Record`] in the log. A change is applied to
//!   memory only once its record is durable under the fsync policy, through
//!   [`State::apply`](state::State::apply), the same function recovery replays
//!   the log with; until then the events it touches are marked as settling,
//!   so no second change can race it. A write that fails changes nothing.
//!   The records of one request are one batch of the log, which a crash
//!   keeps or loses whole ([`record`] says what that means for each request).
//! - Memory holds an index (where each event's record is, its status,
//!   failures, visible time); payloads are read from the log when delivered.
//! - Cleanup deletes the oldest segment once it holds no live event, after
//!   copying the few it still holds forward as relocated records.
//! - `MAX_RETRIES` above, and the lease length, backoff and size bound, are
//!   the broker-wide settings; a queue may set its own and be paused, which
//!   holds back its leases only (`settings.rs` says how).
//! - Any event, in any state, may be browsed without a lease or cancelled
//!   (`browse.rs`): a cancel is a purge of that one event.

pub mod address;
mod backoff;
mod browse;
mod chunked;
mod cleanup;
mod consume;
mod dead_log;
mod delete;
mod delivery;
mod dlq;
mod error;
mod expiry;
mod flow;
mod group;
mod idempotency;
mod index;
mod inspect;
mod lease;
pub mod log_throttle;
mod order;
mod pending;
mod produce;
mod queue;
mod ready;
mod reaper;
pub mod record;
mod replay;
pub mod rules;
mod settings;
mod spans;
mod state;
mod subscription;
mod watch;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

pub use backoff::Backoff;
pub use browse::{BrowsePage, BrowsedEvent, EventState};
pub use cleanup::CleanupReport;
pub use consume::ReceiptResult;
pub use delivery::{DeadEvent, Delivery, DlqPage};
pub use error::BrokerError;
pub use inspect::{inspect, Inspection, Undecodable};
pub use lease::{BadReceipt, Receipt, ReceiptStatus};
pub use pending::Pending;
pub use produce::{Enqueued, NewEvent};
pub use queue::QueueStats;
pub use reaper::ReapReport;
pub use record::Record;
pub use settings::{QueueSettings, SettingsChange};
pub use state::{EventView, Live, Now, ViewStatus};
pub use subscription::{signing_key, Subscription, SubscriptionRequest, MAX_WEBHOOK_TIMEOUT_MS};

use event_broker_clock::Clock;
use event_broker_wal::{Batch, RecoveryReport, Refused, Wal};
// What the server needs of the log comes through the broker: its options,
// its status and its errors. The server does not depend on the log crate.
pub use event_broker_wal::{
    CheckpointInfo, FsyncPolicy, RecoveryMode, WalError, WalObserver, WalOptions, WalStatus,
};
use state::State;

/// Limits and timings of the broker; names follow the configuration variables.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `QUEUE_MAX_SIZE`: events not yet acked (nor dead) per queue.
    pub queue_max_size: u64,
    /// `VISIBILITY_TIMEOUT_MS`: lease length when the consumer names none.
    pub visibility_timeout: Duration,
    /// `MAX_RETRIES`: failures after the first before an event is dead.
    pub max_retries: u32,
    /// `BASE_BACKOFF_MS`, `MAX_BACKOFF_MS`, `BACKOFF_MULTIPLIER`.
    pub backoff: Backoff,
    /// `MAX_PAYLOAD_BYTES`.
    pub max_payload_bytes: usize,
    /// `MAX_BATCH`: events per enqueue, receipts per ack, events per lease.
    pub max_batch: usize,
    /// `IDEMPOTENCY_WINDOW_MS`.
    pub idempotency_window_ms: u64,
    /// `WORKER_COUNT`: deliveries at once of a webhook subscription that names none.
    pub worker_count: u32,
    /// `MAX_REQUEST_BYTES`: the largest request body the API reads. The
    /// broker never looks at it; it travels with the other limits, which
    /// are what the API is given of the configuration.
    pub max_request_bytes: usize,
    /// `WEBHOOK_ALLOW_PRIVATE`: webhooks may be delivered to loopback,
    /// private, link-local and other addresses that are not public
    /// ([`address`] lists them).
    pub webhook_allow_private: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_max_size: 100_000,
            visibility_timeout: Duration::from_secs(30),
            max_retries: 10,
            backoff: Backoff {
                base_ms: 1_000,
                max_ms: 60_000,
                multiplier: 2.0,
                seed: 0,
            },
            max_payload_bytes: 1 << 20,
            max_batch: 1_000,
            idempotency_window_ms: 300_000,
            worker_count: 8,
            max_request_bytes: 64 << 20,
            webhook_allow_private: false,
        }
    }
}

/// How to open a broker.
pub struct BrokerOptions {
    /// Where and how the log is kept.
    pub wal: WalOptions,
    /// Limits and timings.
    pub limits: Limits,
    /// The source of time.
    pub clock: Arc<dyn Clock>,
}

/// What opening found.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// What the log's recovery did.
    pub wal: RecoveryReport,
    /// Records replayed.
    pub records: u64,
    /// Live events found, dead ones included.
    pub events: u64,
    /// Queues found.
    pub queues: usize,
}

/// The broker: queues on a log. Share it with an `Arc`.
pub struct Broker {
    shared: Arc<Shared>,
    wal: Wal,
    limits: Limits,
    /// Signs and checks receipts; drawn anew at every open.
    receipts: lease::ReceiptKey,
    cleanup: Mutex<()>,
    /// Held while a record that cleanup writes forward (a subscription, a
    /// queue's settings) is written, so that cleanup never copies forward
    /// one whose replacement or removal is being written, and each change
    /// starts from the one before it.
    forwarded: tokio::sync::Mutex<()>,
    /// Bumped whenever a subscription is set or removed.
    subscriptions_changed: tokio::sync::watch::Sender<u64>,
}

/// What the log's completion thread needs to finish a write: not the log
/// itself, so that no completion ever holds the last reference to it.
struct Shared {
    core: Mutex<Core>,
    clock: Arc<dyn Clock>,
    notifiers: watch::Notifiers,
}

struct Core {
    state: State,
    /// Next id to hand out; ahead of `state.next_id` while enqueues are written.
    next_id: u64,
    /// Idempotency keys of enqueues being written, with whoever waits on them.
    pending_keys: HashMap<(u32, Box<str>), Vec<oneshot::Sender<()>>>,
    /// When each queue last logged a dead-lettering.
    dead_log: dead_log::DeadLog,
    /// Writes the log refused while the state was locked, failed once it is not.
    refused: Vec<Refused>,
}

/// The state, locked. Letting go of it fails the writes the log refused
/// meanwhile: failing one runs its finish, which takes the lock, so it
/// cannot run while the submitter holds it, and it runs on the submitter's
/// thread, so no thread has to be started for it (one that failed to start
/// would leave the write's reservations held for good).
struct CoreGuard<'a>(Option<MutexGuard<'a, Core>>);

impl Deref for CoreGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.0.as_ref().expect("held until dropped")
    }
}

impl DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        let Some(mut core) = self.0.take() else {
            return;
        };
        let refused = std::mem::take(&mut core.refused);
        drop(core);
        // While unwinding the state lock is poisoned: dropping the answers
        // tells their askers the broker is gone.
        if std::thread::panicking() {
            return;
        }
        for write in refused {
            (write.done)(Err(write.error));
        }
    }
}

impl Shared {
    fn lock(&self) -> CoreGuard<'_> {
        CoreGuard(Some(self.core.lock().expect("broker state lock")))
    }

    fn now(&self) -> Now {
        Now {
            mono: self.clock.now(),
            wall: self.clock.unix_ms(),
        }
    }

    /// Wakes the long polls of queues that have ready events.
    fn wake(&self, queues: &[Arc<str>]) {
        self.notifiers.wake(queues);
    }
}

impl Core {
    /// Queue `q`'s counts at wall time `now`, due delayed events made ready
    /// first, and its settings in force under `limits`.
    fn stats(&mut self, q: u32, now: u64, limits: &Limits) -> QueueStats {
        self.state.promote(q, now);
        let oldest = self.state.oldest_ready(q);
        let queue = &self.state.queues[q as usize];
        let mut stats = queue.stats.clone();
        stats.settings = queue.settings.effective(limits).with_flow(&queue.flow);
        stats.oldest_ready_age_ms = oldest.map_or(0, |at| now.saturating_sub(at));
        stats
    }

    /// Names of the given queues that now have ready events to lease: a
    /// paused queue's polls sleep on until it is resumed.
    fn ready_queues(&self, touched: impl IntoIterator<Item = u32>) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = Vec::new();
        for q in touched {
            let queue = &self.state.queues[q as usize];
            let leasable = queue.stats.ready > 0 && !queue.settings.paused;
            if leasable && !names.contains(&queue.name) {
                names.push(queue.name.clone());
            }
        }
        names
    }
}

/// How a write finishes once its records are durable (`Ok`) or failed:
/// runs with the state locked, after the records were applied.
type Finish<T> =
    Box<dyn FnOnce(&mut Core, Result<(), BrokerError>) -> Result<T, BrokerError> + Send>;

impl Broker {
    /// Opens the log in `options.wal.data_dir` and rebuilds every queue from it.
    pub fn open(options: BrokerOptions) -> Result<(Broker, OpenReport), BrokerError> {
        let clock = options.clock;
        // Serials start at a random point of 2^63 each run, so a receipt of an
        // earlier run does not name a lease of this one, even when the clock
        // did not move on between the runs or was set back.
        let first_serial = std::hash::RandomState::new().hash_one(clock.unix_ms()) >> 1;
        let mut state = State::new(options.limits.idempotency_window_ms, first_serial);
        let now = clock.unix_ms();
        let (wal, wal_report, records) = replay::open(options.wal, &mut state, now)?;
        // Totals count what happens from now on, not what was replayed. A
        // deleted queue's ids answer `not_found` only until a restart, as a
        // cancelled id does: no receipt of before it names a lease after it.
        for queue in &mut state.queues {
            queue.deleted_below = 0;
            let stats = &mut queue.stats;
            let name = std::mem::take(&mut stats.name);
            *stats = QueueStats {
                name,
                ready: stats.ready,
                delayed: stats.delayed,
                in_flight: stats.in_flight,
                dead: stats.dead,
                ..QueueStats::default()
            };
        }
        let report = OpenReport {
            wal: wal_report,
            records,
            events: state.events.len() as u64,
            queues: state.live_queues().len(),
        };
        let core = Core {
            next_id: state.next_id,
            state,
            pending_keys: HashMap::new(),
            dead_log: dead_log::DeadLog::default(),
            refused: Vec::new(),
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            clock,
            notifiers: watch::Notifiers::default(),
        });
        let broker = Broker {
            shared,
            wal,
            limits: options.limits,
            receipts: lease::ReceiptKey::random(),
            cleanup: Mutex::new(()),
            forwarded: tokio::sync::Mutex::new(()),
            subscriptions_changed: tokio::sync::watch::Sender::new(0),
        };
        Ok((broker, report))
    }

    /// The limits the broker runs with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The clock the broker runs on.
    pub fn clock(&self) -> &dyn Clock {
        self.shared.clock.as_ref()
    }

    /// The log underneath. The server keeps to the methods below; tests,
    /// benchmarks and tools look at segments through this.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Size and health of the log, for status pages and metrics.
    pub fn log_status(&self) -> WalStatus {
        self.wal.status()
    }

    /// The failure that made the log refuse writes until a restart, if any.
    pub fn log_failure(&self) -> Option<Arc<WalError>> {
        self.wal.failure()
    }

    /// The data directory the log lives in.
    pub fn data_dir(&self) -> &std::path::Path {
        self.wal.data_dir()
    }

    /// A consistent, crash-safe copy of the log under
    /// `DATA_DIR/checkpoints/<name>/`. It links, copies and syncs files:
    /// call it off the async threads.
    pub fn checkpoint(&self, name: &str) -> Result<CheckpointInfo, BrokerError> {
        Ok(self.wal.checkpoint(name)?)
    }

    /// Every queue's counts, oldest queue first.
    pub fn queues(&self) -> Vec<QueueStats> {
        let now = self.shared.now();
        let mut core = self.shared.lock();
        core.state
            .live_queues()
            .into_iter()
            .map(|q| core.stats(q, now.wall, &self.limits))
            .collect()
    }

    /// One queue's counts.
    pub fn queue(&self, name: &str) -> Result<QueueStats, BrokerError> {
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = core
            .state
            .queue_id(name)
            .ok_or_else(|| BrokerError::UnknownQueue(name.to_string()))?;
        Ok(core.stats(q, now.wall, &self.limits))
    }

    /// Every event of a queue with its status, by id; empty for an unknown queue.
    pub fn contents(&self, name: &str) -> Vec<EventView> {
        let core = self.shared.lock();
        core.state
            .queue_id(name)
            .map_or_else(Vec::new, |q| core.state.contents(q))
    }

    /// Live events whose newest record is in the given segment.
    pub fn live_in_segment(&self, segment: u64) -> Live {
        self.shared.lock().state.live_in(segment)
    }

    /// Flushes and closes the log; later writes fail with [`BrokerError::Closed`].
    pub fn close(&self) -> Result<(), BrokerError> {
        self.wal.close().map_err(BrokerError::from)
    }

    /// Fails fast when the log no longer takes writes.
    fn check_writable(&self) -> Result<(), BrokerError> {
        match self.wal.failure() {
            Some(cause) => Err(BrokerError::StorageFailed(cause)),
            None => Ok(()),
        }
    }

    /// Appends `records` as one batch. Once they are durable they are applied
    /// and `finish` runs, with the state locked; its result is the answer.
    /// Called with the state locked, so that log order is decision order.
    fn submit<T: Send + 'static>(
        &self,
        core: &mut Core,
        records: Vec<Record<'_>>,
        finish: Finish<T>,
    ) -> Pending<T> {
        let mut batch = Batch::new();
        let mut body = Vec::new();
        for record in &records {
            body.clear();
            record.encode_into(&mut body);
            if let Err(e) = batch.push(&body) {
                return Pending::done(finish(core, Err(e.into())));
            }
        }
        // Applying needs no payload: keep the index part only.
        let kept: Vec<Record<'static>> = records.into_iter().map(Record::into_index).collect();
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let done = Box::new(
            move |result: Result<Vec<event_broker_wal::Position>, WalError>| {
                let (answer, woken, dead) = {
                    let mut core = shared.lock();
                    match result {
                        Ok(positions) => {
                            let wall = shared.clock.unix_ms();
                            let touched: Vec<u32> = kept
                                .iter()
                                .zip(&positions)
                                .filter_map(|(record, pos)| core.state.apply(record, pos, wall))
                                .collect();
                            let core = &mut *core;
                            let dead = core.dead_log.lines(&core.state, &kept, shared.clock.now());
                            let answer = finish(core, Ok(()));
                            (answer, core.ready_queues(touched), dead)
                        }
                        Err(e) => (finish(&mut core, Err(e.into())), Vec::new(), Vec::new()),
                    }
                };
                shared.wake(&woken);
                for line in &dead {
                    line.write();
                }
                let _asker_gone = tx.send(answer);
            },
        );
        if let Err(refused) = self.wal.submit(batch, done) {
            // `done` takes the state lock, which this thread holds: the
            // guard runs it once this thread lets go of the lock.
            core.refused.push(refused);
        }
        Pending::waiting(rx)
    }
}

/// Checks a queue name against `[A-Za-z0-9_.-]{1,128}`.
pub fn check_queue_name(name: &str) -> Result<(), BrokerError> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > 128 || !name.bytes().all(ok_char) {
        return Err(BrokerError::invalid(
            "queue",
            "a queue name is 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_broker_clock::ManualClock;
    use event_broker_wal::FsyncPolicy;

    fn broker(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir)
            },
            limits: Limits::default(),
            clock: clock.clone(),
        };
        Broker::open(options).expect("open broker").0
    }

    /// An event with an empty payload, visible after `delay_ms`; the tests of
    /// the broker's modules share it.
    pub(super) fn event(delay_ms: u64) -> NewEvent {
        NewEvent {
            payload: b"{}".to_vec(),
            delay_ms,
            ..NewEvent::default()
        }
    }

    #[test]
    fn writes_the_log_refuses_fail_and_release_what_they_held() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let broker = Arc::new(broker(dir.path(), &clock));
        broker.enqueue_blocking("q", &[event(0)]).expect("enqueue");
        let leased = broker.lease("q", 1, None).expect("lease");
        // A closed log has not failed, so writes get past the check for a
        // failed log and are refused by the log itself, as a write racing a
        // failure of the log is.
        broker.close().expect("close");
        let keyed = NewEvent {
            idempotency_key: Some("k".into()),
            ..event(0)
        };
        for attempt in 0..2 {
            // A second enqueue of the key would wait for good on a first
            // that still held it: wait for its answer on another thread.
            let (tx, rx) = std::sync::mpsc::channel();
            let (b, e) = (broker.clone(), keyed.clone());
            std::thread::spawn(move || tx.send(b.enqueue_blocking("q", &[e])));
            let answer = rx.recv_timeout(Duration::from_secs(10));
            let err = answer.expect("an answer").expect_err("refused");
            assert!(err.is_unavailable(), "attempt {attempt}: {err}");
        }
        let receipts = [leased[0].receipt.to_string()];
        let acked = broker.ack("q", &receipts).expect("ack accepted").wait();
        assert!(acked.expect_err("refused").is_unavailable());

        let core = broker.shared.lock();
        let q = core.state.queue_id("q").expect("queue");
        assert_eq!(
            core.state.queues[q as usize].reserved, 0,
            "reservation kept"
        );
        assert!(core.pending_keys.is_empty(), "idempotency key kept");
        assert!(core.refused.is_empty());
        let id = leased[0].id;
        assert_eq!(core.state.events[&id].status, queue::Status::InFlight);
    }

    fn oldest_ready_ms(broker: &Broker) -> u64 {
        broker.queue("q").expect("queue").oldest_ready_age_ms
    }

    #[test]
    fn oldest_ready_age_follows_the_longest_waiting_visible_event() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let broker = broker(dir.path(), &clock);
        let tick = |ms| clock.advance(Duration::from_millis(ms));

        broker.enqueue_blocking("q", &[event(0)]).expect("enqueue");
        tick(5_000);
        broker.enqueue_blocking("q", &[event(0)]).expect("enqueue");
        tick(2_000);
        assert_eq!(oldest_ready_ms(&broker), 7_000, "the first event, 7 s old");

        let first = broker.lease("q", 1, None).expect("lease");
        assert_eq!(
            oldest_ready_ms(&broker),
            2_000,
            "a leased event is not ready"
        );

        // Back to ready after a nack: it counts from when it became visible again.
        let receipts = [first[0].receipt.to_string()];
        broker
            .nack("q", &receipts, Some(0), None)
            .expect("nack")
            .wait()
            .expect("nacked");
        tick(1_000);
        assert_eq!(
            oldest_ready_ms(&broker),
            3_000,
            "the second event still leads"
        );

        broker.lease("q", 2, None).expect("lease");
        broker
            .enqueue_blocking("q", &[event(1_000)])
            .expect("enqueue");
        assert_eq!(oldest_ready_ms(&broker), 0, "a delayed event is not ready");
        tick(1_500);
        assert_eq!(oldest_ready_ms(&broker), 500, "visible for half a second");
    }
}
