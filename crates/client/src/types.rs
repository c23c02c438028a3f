//! The API's requests and answers as Rust types. Answers ignore fields
//! they do not know, so a newer broker's additions do not break an older
//! client; requests leave out what is `None`, so the broker's defaults apply.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// An event's headers: string values, handed back with the event.
pub type Headers = BTreeMap<String, String>;

/// Milliseconds of a duration, as the API takes them.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One event to enqueue. The payload is kept as JSON text, sent and handed
/// back byte for byte.
#[derive(Debug, Clone, Serialize)]
pub struct NewEvent {
    /// Any JSON value.
    pub payload: Box<RawValue>,
    /// Not delivered before now plus this (0 to 30 days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Higher first, 0 to 255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The ordering group: one at a time, in id order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Expires this long after it is enqueued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// String headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Another enqueue with this key within the idempotency window stores nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl NewEvent {
    /// An event of this payload, serialised to JSON.
    pub fn new(payload: &impl Serialize) -> Result<NewEvent> {
        let payload = serde_json::value::to_raw_value(payload)
            .map_err(|e| Error::Config(format!("payload: cannot be written as JSON: {e}")))?;
        Ok(NewEvent::raw(payload))
    }

    /// An event whose payload is this JSON text, checked to be JSON.
    pub fn json(text: &str) -> Result<NewEvent> {
        let payload = RawValue::from_string(text.to_owned())
            .map_err(|e| Error::Config(format!("payload: not JSON: {e}")))?;
        Ok(NewEvent::raw(payload))
    }

    /// An event of JSON text already checked.
    pub fn raw(payload: Box<RawValue>) -> NewEvent {
        NewEvent {
            payload,
            delay_ms: None,
            priority: None,
            group: None,
            ttl_ms: None,
            headers: None,
            idempotency_key: None,
        }
    }

    /// Delivered no sooner than this from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(millis(delay));
        self
    }

    /// Its priority.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Its ordering group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Its time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = Some(millis(ttl));
        self
    }

    /// One more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .get_or_insert_with(Headers::new)
            .insert(name.into(), value.into());
        self
    }

    /// Its idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The answer to one event enqueued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enqueued {
    /// Its id (the first event's, for a duplicate).
    pub id: u64,
    /// Whether the idempotency key named an event stored before.
    pub duplicate: bool,
    /// When it expires, for an event with a time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The answer to a batch enqueued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnqueuedBatch {
    /// One id per event, in order.
    pub ids: Vec<u64>,
    /// One expiry per event, when any expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Vec<Option<String>>>,
}

/// How to lease. Every field is optional.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeaseRequest {
    /// At most this many events, 1 to `MAX_BATCH` (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// The lease length (default the queue's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_ms: Option<u64>,
    /// A long poll: wait this long for a first event (0 to 60000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// An event under a lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedEvent {
    /// Its id.
    pub id: u64,
    /// Its queue.
    pub queue: String,
    /// Its payload, the JSON text as it was sent.
    pub payload: Box<RawValue>,
    /// Its headers.
    #[serde(default)]
    pub headers: Headers,
    /// Deliveries so far, this one included.
    pub attempt: u32,
    /// Its priority.
    #[serde(default)]
    pub priority: u8,
    /// Its ordering group.
    #[serde(default)]
    pub group: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: String,
    /// When it expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The receipt that acks, nacks or extends this lease.
    pub receipt: String,
    /// When the lease ends unless extended.
    pub lease_expires_at: String,
}

impl LeasedEvent {
    /// The payload decoded as `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.payload.get())
    }
}

/// A nack: the deliveries failed.
#[derive(Debug, Clone, Serialize)]
pub struct Nack {
    /// The leases that failed.
    pub receipts: Vec<String>,
    /// Retry after this rather than after the backoff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Kept as the events' last error (up to 4096 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of one receipt of an ack, nack or extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleStatus {
    /// Done.
    Ok,
    /// The lease expired, was finished, or was replaced.
    LeaseLost,
    /// No such event.
    NotFound,
}

/// One receipt's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettleResult {
    /// The receipt.
    pub receipt: String,
    /// What became of it.
    pub status: SettleStatus,
}

#[derive(Deserialize)]
pub(crate) struct ResultsOut {
    pub results: Vec<SettleResult>,
}

/// A queue's settings in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// The lease length of a lease or extend that names none.
    pub visibility_timeout_ms: u64,
    /// Failures after the first before an event is dead.
    pub max_retries: u32,
    /// The first retry's backoff.
    pub base_backoff_ms: u64,
    /// The longest backoff.
    pub max_backoff_ms: u64,
    /// Each failure's backoff is the last one's times this.
    pub backoff_multiplier: f64,
    /// Events not yet acked nor dead the queue holds at most.
    pub max_size: u64,
    /// The time to live of events that name none.
    pub message_ttl_ms: Option<u64>,
    /// Whether expired events go to the DLQ.
    pub dead_letter_expired: bool,
    /// Whether leases are held back.
    pub paused: bool,
    /// Events of one group in flight at once.
    pub group_concurrency: u32,
    /// Events of the queue in flight at once.
    pub max_in_flight: Option<u64>,
    /// Deliveries a second.
    pub rate_limit_per_s: Option<u64>,
    /// Deliveries at once after a quiet spell.
    pub rate_limit_burst: Option<u64>,
    /// Deliveries a second of each group.
    pub group_rate_limit_per_s: Option<u64>,
}

/// A change of a queue's settings, for `PUT` (whole) or `PATCH` (the
/// fields named). A field of the nullable settings is `Some(None)` to send
/// `null`, which names none.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SettingsUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The lease length.
    pub visibility_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Failures after the first before an event is dead.
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The first retry's backoff.
    pub base_backoff_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The longest backoff.
    pub max_backoff_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The backoff's growth.
    pub backoff_multiplier: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The size bound.
    pub max_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The default time to live; `Some(None)` for none.
    pub message_ttl_ms: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Whether expired events go to the DLQ.
    pub dead_letter_expired: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Whether the queue is paused.
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Events of one group in flight at once.
    pub group_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Events in flight at once; `Some(None)` for no limit.
    pub max_in_flight: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Deliveries a second; `Some(None)` for no limit.
    pub rate_limit_per_s: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The rate's burst; `Some(None)` for the default.
    pub rate_limit_burst: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Deliveries a second of each group; `Some(None)` for no limit.
    pub group_rate_limit_per_s: Option<Option<u64>>,
}

/// A queue: its counts and settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// Events ready to lease.
    pub ready: u64,
    /// Events waiting for their visible time.
    pub delayed: u64,
    /// Events leased.
    pub in_flight: u64,
    /// Events in its DLQ.
    pub dead: u64,
    /// Enqueued since the broker started.
    pub enqueued_total: u64,
    /// Acked since the broker started.
    pub acked_total: u64,
    /// Dead-lettered since the broker started.
    pub dead_lettered_total: u64,
    /// Whether it is paused.
    pub paused: bool,
    /// Its settings in force.
    pub settings: QueueSettings,
}

#[derive(Deserialize)]
pub(crate) struct QueuesOut {
    pub queues: Vec<Queue>,
}

/// A dead event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadEvent {
    /// Its id.
    pub id: u64,
    /// Its payload.
    pub payload: Box<RawValue>,
    /// Its headers.
    #[serde(default)]
    pub headers: Headers,
    /// Deliveries it had.
    pub attempts: u32,
    /// Its priority.
    #[serde(default)]
    pub priority: u8,
    /// Its group.
    #[serde(default)]
    pub group: Option<String>,
    /// Its last nack's error, `lease expired` or `expired`.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it died.
    pub dead_at: String,
}

/// A page of a DLQ.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterPage {
    /// The dead events, in id order.
    pub events: Vec<DeadEvent>,
    /// The `after` of the next page; `None` when the listing is complete.
    pub next: Option<u64>,
}

/// Which dead events a redrive or purge acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every one.
    All,
    /// These ids.
    Ids(Vec<u64>),
}

impl Serialize for Selection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct All {
            all: bool,
        }
        #[derive(Serialize)]
        struct Ids<'a> {
            ids: &'a [u64],
        }
        match self {
            Selection::All => All { all: true }.serialize(s),
            Selection::Ids(ids) => Ids { ids }.serialize(s),
        }
    }
}

/// The state of an event, for browsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Visible, waiting for a lease.
    Ready,
    /// Waiting for its visible time.
    Delayed,
    /// Leased.
    InFlight,
    /// In the DLQ.
    Dead,
}

impl EventState {
    /// The state as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Ready => "ready",
            EventState::Delayed => "delayed",
            EventState::InFlight => "in_flight",
            EventState::Dead => "dead",
        }
    }
}

/// Which events to browse.
#[derive(Debug, Clone, Default)]
pub struct BrowseQuery {
    /// Only events in this state.
    pub state: Option<EventState>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<u32>,
    /// Starting after this id.
    pub after: Option<u64>,
    /// `Some(false)` leaves payloads out.
    pub payload: Option<bool>,
}

/// An event seen without leasing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowsedEvent {
    /// Its id.
    pub id: u64,
    /// Its state.
    pub state: EventState,
    /// Deliveries so far.
    pub attempt: u32,
    /// Its priority.
    #[serde(default)]
    pub priority: u8,
    /// Its group.
    #[serde(default)]
    pub group: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: String,
    /// When it is visible (its lease's end while in flight).
    #[serde(default)]
    pub visible_at: Option<String>,
    /// When it expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Its last error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Its headers.
    #[serde(default)]
    pub headers: Headers,
    /// Its payload, unless left out.
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
}

/// A page of browsed events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowsePage {
    /// The events, in id order.
    pub events: Vec<BrowsedEvent>,
    /// The `after` of the next page; `None` when the listing is complete.
    pub next: Option<u64>,
}

/// A webhook subscription to make or replace.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionRequest {
    /// Where events are POSTed.
    pub url: String,
    /// Calls at once (default `WORKER_COUNT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// How long one call may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `whsec_` and base64: the calls are signed with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A webhook subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    /// Its queue.
    pub queue: String,
    /// Where events are POSTed.
    pub url: String,
    /// Calls at once.
    pub concurrency: u32,
    /// How long one call may take.
    pub timeout_ms: u64,
    /// Whether the calls are signed.
    pub signed: bool,
}

/// Readiness: whether the broker takes requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    /// Why not, when not.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Readiness {
    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// The log's size and health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogStatus {
    /// Segment files.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first sequence number of the oldest.
    #[serde(default)]
    pub oldest_segment: Option<u64>,
    /// The fsync policy.
    pub fsync: String,
    /// The failure that makes it refuse writes, if any.
    #[serde(default)]
    pub failure: Option<String>,
}

/// The broker's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Its version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// Every queue.
    pub queues: Vec<Queue>,
    /// The log.
    pub wal: LogStatus,
    /// Webhook delivery tasks.
    pub workers: u64,
    /// The effective configuration, without secrets.
    pub config: BTreeMap<String, String>,
}

/// A checkpoint made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its directory, under the data directory.
    pub path: String,
    /// Segments in it.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
}

#[derive(Deserialize)]
pub(crate) struct Redriven {
    pub redriven: u64,
}

#[derive(Deserialize)]
pub(crate) struct Purged {
    pub purged: u64,
}
