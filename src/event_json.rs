//! The JSON of an event as consumers see it, in lease answers, dead-letter
//! pages and webhook bodies alike. Payload and headers are written as the
//! stored JSON text, never re-encoded.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use event_broker_core::Delivery;

/// One delivered event.
#[derive(Serialize)]
pub struct EventJson<'a> {
    id: u64,
    queue: &'a str,
    payload: &'a RawValue,
    headers: &'a RawValue,
    attempt: u32,
    priority: u8,
    group: Option<&'a str>,
    #[serde(serialize_with = "as_str")]
    enqueued_at: Arc<str>,
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<String>,
    #[serde(serialize_with = "as_str")]
    lease_expires_at: Arc<str>,
}

impl<'a> EventJson<'a> {
    /// The event of a lease; webhook bodies leave the receipt out. Times
    /// are written by `times`, which the events of one answer share.
    pub fn of(
        d: &'a Delivery,
        with_receipt: bool,
        times: &mut EventTimes,
    ) -> Result<Self, serde_json::Error> {
        Ok(EventJson {
            id: d.id,
            queue: &d.queue,
            payload: raw(d.payload(), "null")?,
            headers: raw(d.headers(), "{}")?,
            attempt: d.attempt,
            priority: d.priority,
            group: d.group(),
            enqueued_at: times.enqueued.of(d.enqueued_at),
            expires_at: d.expires_at.map(timestamp),
            receipt: with_receipt.then(|| d.receipt.to_string()),
            lease_expires_at: times.lease.of(d.lease_expires_at),
        })
    }
}

/// The times of the events of one answer, each written once for a run of
/// equal ones: the events of a lease share their lease's end, and those
/// enqueued in one batch their enqueue time, so that a lease of 100 events
/// formats two times, not 200.
#[derive(Default)]
pub struct EventTimes {
    enqueued: LastTime,
    lease: LastTime,
}

/// The last time written, kept to be shared.
#[derive(Default)]
struct LastTime(Option<(u64, Arc<str>)>);

impl LastTime {
    fn of(&mut self, unix_ms: u64) -> Arc<str> {
        match &self.0 {
            Some((ms, text)) if *ms == unix_ms => text.clone(),
            _ => self
                .0
                .insert((unix_ms, timestamp(unix_ms).into()))
                .1
                .clone(),
        }
    }
}

fn as_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// Stored JSON text as a raw value (`empty` when nothing was stored); it
/// was checked to be JSON when enqueued, so an error means a damaged log.
pub fn raw<'a>(bytes: &'a [u8], empty: &'static str) -> Result<&'a RawValue, serde_json::Error> {
    let text = if bytes.is_empty() {
        empty.as_bytes()
    } else {
        bytes
    };
    serde_json::from_slice(text)
}

/// Unix ms as RFC 3339 UTC with milliseconds, as every answer shows times.
pub fn timestamp(unix_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(at).to_string()
}
