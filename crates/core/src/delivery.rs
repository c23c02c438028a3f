//! What consumers get: events read back from the log, payload untouched.

use std::ops::Range;
use std::sync::Arc;

use super::lease::Receipt;
use super::record::{self, FullEvent, Record, Stored};
use super::state::Event;
use super::BrokerError;
use event_broker_wal::{ReadBuf, Wal};

/// An event's record as read from the log, with where its parts are.
#[derive(Debug, Clone)]
pub(crate) struct StoredBytes {
    body: ReadBuf,
    payload: Range<usize>,
    headers: Range<usize>,
    /// Empty for an event without a group.
    group: Range<usize>,
    pub enqueued_at: u64,
}

impl StoredBytes {
    /// Reads the newest full record of `event`.
    pub fn read(wal: &Wal, event: &Event) -> Result<Self, BrokerError> {
        let (segment, offset, len) = event.position();
        let body = wal.read_at(segment, offset, len)?;
        let bad = |source| BrokerError::BadRecord {
            segment,
            offset,
            source,
        };
        let record = record::decode(&body).map_err(bad)?;
        let Some(FullEvent { stored, group, .. }) = record.into_event() else {
            return Err(bad(record::DecodeError::NotAnEvent));
        };
        let (payload, headers, enqueued_at) = (
            range_in(&body, &stored.payload),
            range_in(&body, &stored.headers),
            stored.enqueued_at,
        );
        // A group is never empty, so an empty range is none.
        let group = group.map_or(0..0, |g| range_in(&body, g.as_bytes()));
        Ok(StoredBytes {
            body,
            payload,
            headers,
            group,
            enqueued_at,
        })
    }

    /// The record, decoded again: it was decoded once when read.
    pub fn stored(&self) -> Stored<'_> {
        match record::decode(&self.body).map(Record::into_event) {
            Ok(Some(full)) => full.stored,
            _ => unreachable!("checked when read"),
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.body[self.payload.clone()]
    }

    pub(crate) fn headers(&self) -> &[u8] {
        &self.body[self.headers.clone()]
    }

    /// The event's ordering group, if it has one.
    pub(crate) fn group(&self) -> Option<&str> {
        let bytes = self
            .body
            .get(self.group.clone())
            .filter(|b| !b.is_empty())?;
        // Borrowed from a string the record decoded.
        std::str::from_utf8(bytes).ok()
    }
}

/// Where `part`, borrowed from `body`, lies in it.
fn range_in(body: &[u8], part: &[u8]) -> Range<usize> {
    if part.is_empty() {
        return 0..0;
    }
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

/// One leased event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Event id.
    pub id: u64,
    /// Its queue.
    pub queue: Arc<str>,
    /// Deliveries so far, this one included.
    pub attempt: u32,
    /// Higher is delivered first.
    pub priority: u8,
    /// When it was enqueued (Unix ms).
    pub enqueued_at: u64,
    /// When it expires (Unix ms), if it does.
    pub expires_at: Option<u64>,
    /// Names this lease.
    pub receipt: Receipt,
    /// When the lease runs out (Unix ms).
    pub lease_expires_at: u64,
    pub(crate) stored: StoredBytes,
}

impl Delivery {
    /// The payload: the exact JSON text enqueued.
    pub fn payload(&self) -> &[u8] {
        self.stored.payload()
    }

    /// The event's ordering group, if it has one.
    pub fn group(&self) -> Option<&str> {
        self.stored.group()
    }

    /// The headers as a JSON object's text; empty when there were none.
    pub fn headers(&self) -> &[u8] {
        self.stored.headers()
    }
}

/// An event in a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadEvent {
    /// Event id.
    pub id: u64,
    /// Failed deliveries.
    pub attempts: u32,
    /// Why the last delivery failed, if it said.
    pub last_error: Option<String>,
    /// When it died (Unix ms).
    pub dead_at: u64,
    /// Its priority, kept for a redrive.
    pub priority: u8,
    /// When it was enqueued (Unix ms).
    pub enqueued_at: u64,
    pub(crate) stored: StoredBytes,
}

impl DeadEvent {
    /// The payload: the exact JSON text enqueued.
    pub fn payload(&self) -> &[u8] {
        self.stored.payload()
    }

    /// The event's ordering group, if it has one.
    pub fn group(&self) -> Option<&str> {
        self.stored.group()
    }

    /// The headers as a JSON object's text; empty when there were none.
    pub fn headers(&self) -> &[u8] {
        self.stored.headers()
    }
}

/// One page of a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DlqPage {
    /// Dead events by id.
    pub events: Vec<DeadEvent>,
    /// The id to pass as `after` for the next page; none on the last page.
    pub next: Option<u64>,
}
