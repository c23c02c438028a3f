//! What the bench sends and the answers it reads. Each payload carries its
//! sequence number (to check that every event comes back exactly once) and a
//! wall-clock stamp (for publish-to-receive latency), padded so that its JSON
//! text is exactly `--size` bytes.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Longest payload head: `{"seq":` and `,"t":` around two 20-digit numbers,
/// then `,"pad":""}`. A `--size` at least this long is met exactly.
pub const MIN_SIZE: usize = 7 + 20 + 5 + 20 + 10;

/// What a payload says about its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// Number of the event within the run, from 0.
    pub seq: u64,
    /// When the event was sent (or due to be), nanoseconds since the Unix epoch.
    pub t: u64,
}

/// Appends `{"payload":{"seq":..,"t":..,"pad":"xx.."}}` whose payload is
/// `size` bytes of JSON text.
pub fn push_event(body: &mut Vec<u8>, stamp: Stamp, size: usize) {
    let head = format!("{{\"seq\":{},\"t\":{},\"pad\":\"", stamp.seq, stamp.t);
    let pad = size.saturating_sub(head.len() + 2);
    body.extend_from_slice(b"{\"payload\":");
    body.extend_from_slice(head.as_bytes());
    body.resize(body.len() + pad, b'x');
    body.extend_from_slice(b"\"}}");
}

/// The body of one enqueue request: an object when `array` is false (then
/// `stamps` holds one), else an array.
pub fn events_body(stamps: impl Iterator<Item = Stamp>, size: usize, array: bool) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 16);
    if array {
        body.push(b'[');
    }
    for (i, stamp) in stamps.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        push_event(&mut body, stamp, size);
    }
    if array {
        body.push(b']');
    }
    body
}

/// Answer to a single enqueue.
#[derive(Debug, Deserialize)]
pub struct Enqueued {
    /// The event's id.
    pub id: u64,
}

/// Answer to a batch enqueue.
#[derive(Debug, Deserialize)]
pub struct EnqueuedBatch {
    /// One id per event, in order.
    pub ids: Vec<u64>,
}

/// Answer to a lease.
#[derive(Debug, Deserialize)]
pub struct Leased<'a> {
    /// The events leased; empty when none was ready.
    #[serde(borrow)]
    pub events: Vec<LeasedEvent<'a>>,
}

/// One leased event; the fields the bench needs.
#[derive(Debug, Deserialize)]
pub struct LeasedEvent<'a> {
    /// Names this lease of the event, for the ack.
    #[serde(borrow)]
    pub receipt: Cow<'a, str>,
    /// The stamp the bench put in the payload.
    pub payload: Stamp,
}

/// The body of an ack.
#[derive(Debug, Serialize)]
pub struct AckRequest<'a> {
    /// The receipts to ack.
    pub receipts: Vec<&'a str>,
}

/// Answer to an ack: one result per receipt, in order.
#[derive(Debug, Deserialize)]
pub struct Settled<'a> {
    /// The results.
    #[serde(borrow)]
    pub results: Vec<Settle<'a>>,
}

/// One receipt's result.
#[derive(Debug, Deserialize)]
pub struct Settle<'a> {
    /// `ok`, `lease_lost` or `not_found`.
    #[serde(borrow)]
    pub status: Cow<'a, str>,
}

/// A queue's counts, from `GET /api/queues/{queue}`.
#[derive(Debug, Deserialize)]
pub struct QueueCounts {
    /// Ready to lease.
    pub ready: u64,
    /// Not yet visible.
    pub delayed: u64,
    /// Leased, not settled.
    pub in_flight: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_of(event: &[u8]) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(event).unwrap();
        v["payload"].clone()
    }

    #[test]
    fn payload_text_is_exactly_the_size_asked_for() {
        for (seq, t) in [(0, 0), (7, 1_700_000_000_123_456_789), (u64::MAX, u64::MAX)] {
            for size in [MIN_SIZE, 100, 256, 4096] {
                let mut event = Vec::new();
                push_event(&mut event, Stamp { seq, t }, size);
                let payload = &event[b"{\"payload\":".len()..event.len() - 1];
                assert_eq!(payload.len(), size, "seq {seq} t {t}");
                let v = payload_of(&event);
                assert_eq!((v["seq"].as_u64(), v["t"].as_u64()), (Some(seq), Some(t)));
            }
        }
    }

    #[test]
    fn a_batch_body_is_an_array_and_a_single_one_an_object() {
        let stamps = (0..3).map(|seq| Stamp { seq, t: 5 });
        let batch: serde_json::Value =
            serde_json::from_slice(&events_body(stamps, 80, true)).unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 3);
        assert_eq!(batch[2]["payload"]["seq"], 2);
        let one = events_body(std::iter::once(Stamp { seq: 9, t: 5 }), 80, false);
        assert_eq!(payload_of(&one)["seq"], 9);
    }

    #[test]
    fn a_lease_answer_is_read_with_borrowed_receipts() {
        let text = br#"{"events":[{"id":3,"queue":"q","payload":{"seq":4,"t":5,"pad":"xx"},
            "headers":{},"attempt":1,"enqueued_at":"e","receipt":"3.99","lease_expires_at":"l"}]}"#;
        let leased: Leased = serde_json::from_slice(text).unwrap();
        let event = &leased.events[0];
        assert!(matches!(event.receipt, Cow::Borrowed("3.99")));
        assert_eq!(event.payload, Stamp { seq: 4, t: 5 });
    }
}
