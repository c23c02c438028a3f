//! The broker's log records: what each state change writes, so that replay
//! through [`State::apply`](super::state::State::apply) rebuilds the queues.
//!
//! A record body is one version byte followed by the postcard encoding of
//! [`Record`]. Strings and payloads borrow from the bytes they are decoded
//! from, so reading a payload back out of a mapped segment copies nothing.
//!
//! # All or nothing
//!
//! The records of one request go to the log as one batch, and the log keeps
//! a batch whole or loses it whole in a crash (`wal` module doc). So an
//! enqueue of many events, one [`Record::Enqueue`] each, is all or nothing,
//! as the contract says. An ack of many receipts is one [`Record::Ack`]; a
//! nack of many is a `Fail` or `Dead` per event in one batch. The contract
//! would let those be applied in part, since it answers each receipt on its
//! own, the answer comes only once everything is durable, and an ack lost
//! in a crash means one more delivery, which at-least-once delivery allows;
//! they are all or nothing anyway because the batch makes that free. No
//! variant holds many events: a record per event keeps an event's position
//! pointing at its own frame, so a delivery reads and checks that frame only.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Version byte in front of every record body.
pub const RECORD_VERSION: u8 = 1;

/// A state change of the broker, as logged.
///
/// FORMAT: append variants only; never change or reorder the fields of a
/// variant, since postcard encodes variants by index and fields by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<'a> {
    /// A new event.
    Enqueue(#[serde(borrow)] Stored<'a>),
    /// Events acknowledged: they are gone.
    Ack {
        /// The events.
        ids: Vec<u64>,
    },
    /// A failed delivery that will be retried.
    Fail {
        /// The event.
        id: u64,
        /// Failures so far, this one included.
        failures: u32,
        /// When the event is visible again (Unix ms).
        visible_at: u64,
        /// Why it failed.
        #[serde(borrow)]
        error: Option<Cow<'a, str>>,
    },
    /// A failed delivery that moves the event to its queue's dead-letter queue.
    Dead {
        /// The event.
        id: u64,
        /// Failures so far, this one included.
        failures: u32,
        /// When it died (Unix ms).
        dead_at: u64,
        /// Why the last delivery failed.
        #[serde(borrow)]
        error: Option<Cow<'a, str>>,
    },
    /// Dead events back to ready with their failures forgotten.
    Redrive {
        /// The events.
        ids: Vec<u64>,
        /// When they become visible (Unix ms).
        at: u64,
    },
    /// Events deleted: dead events purged, or one event in any state
    /// cancelled.
    Purge {
        /// The events.
        ids: Vec<u64>,
    },
    /// A live event copied forward so that the segment holding its older
    /// copy can be deleted; carries the event's whole current state.
    Relocated {
        /// The event as enqueued.
        #[serde(borrow)]
        event: Stored<'a>,
        /// Failures so far.
        failures: u32,
        /// When it died (Unix ms), if it is dead.
        dead_at: Option<u64>,
        /// Why its last delivery failed, if one did.
        #[serde(borrow)]
        last_error: Option<Cow<'a, str>>,
    },
    /// A queue's webhook subscription, set or replaced; also written again
    /// by cleanup so that the segment holding the older copy can go.
    Subscribe(#[serde(borrow)] Subscribed<'a>),
    /// A queue's webhook subscription removed.
    Unsubscribe {
        /// The queue.
        #[serde(borrow)]
        queue: Cow<'a, str>,
    },
    /// A queue's own settings, set or replaced whole; the queue exists from
    /// this record on, with or without events. Also written again by
    /// cleanup so that the segment holding the older copy can go.
    Settings {
        /// The queue.
        #[serde(borrow)]
        queue: Cow<'a, str>,
        /// Its settings.
        settings: OwnSettings,
    },
    /// A queue deleted with all its events, its settings and its
    /// subscription; a later record naming it starts a fresh queue.
    DeleteQueue {
        /// The queue.
        #[serde(borrow)]
        queue: Cow<'a, str>,
    },
    /// A new event with a priority or an expiry: [`Record::Enqueue`] is
    /// kept for the others, so that their records stay as they were.
    EnqueueWith(#[serde(borrow)] Stored<'a>, Extra),
    /// [`Record::Relocated`] of an event with a priority or an expiry.
    RelocatedWith {
        /// The event as enqueued.
        #[serde(borrow)]
        event: Stored<'a>,
        /// Failures so far.
        failures: u32,
        /// When it died (Unix ms), if it is dead.
        dead_at: Option<u64>,
        /// Why its last delivery failed, if one did.
        #[serde(borrow)]
        last_error: Option<Cow<'a, str>>,
        /// Its priority and expiry now.
        extra: Extra,
    },
    /// Events past their expiry: gone, or moved to their queue's
    /// dead-letter queue when `dead_at` is given.
    Expire {
        /// The events.
        ids: Vec<u64>,
        /// When they died (Unix ms), for those dead-lettered.
        dead_at: Option<u64>,
    },
    /// A new event of an ordering group.
    EnqueueGrouped {
        /// The event.
        #[serde(borrow)]
        event: Stored<'a>,
        /// Its priority and expiry.
        extra: Extra,
        /// Its group.
        #[serde(borrow)]
        group: Cow<'a, str>,
    },
    /// [`Record::Relocated`] of an event of an ordering group.
    RelocatedGrouped {
        /// The event as enqueued.
        #[serde(borrow)]
        event: Stored<'a>,
        /// Failures so far.
        failures: u32,
        /// When it died (Unix ms), if it is dead.
        dead_at: Option<u64>,
        /// Why its last delivery failed, if one did.
        #[serde(borrow)]
        last_error: Option<Cow<'a, str>>,
        /// Its priority and expiry now.
        extra: Extra,
        /// Its group.
        #[serde(borrow)]
        group: Cow<'a, str>,
    },
    /// [`Record::Settings`] of a queue with flow settings of its own:
    /// `Settings` is kept for the others, so that their records stay as
    /// they were.
    SettingsWith {
        /// The queue.
        #[serde(borrow)]
        queue: Cow<'a, str>,
        /// Its settings.
        settings: OwnSettings,
        /// Its group and flow settings.
        flow: Flow,
    },
}

/// A queue's own group and flow settings, as logged; each `None` is no
/// limit, or for `group_concurrency` one event of a group at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Events of one group in flight at once.
    pub group_concurrency: Option<u32>,
    /// Events of the queue in flight at once.
    pub max_in_flight: Option<u32>,
    /// Deliveries per second.
    pub rate_limit_per_s: Option<u32>,
    /// Deliveries at once after a quiet spell; the rate when `None`.
    pub rate_limit_burst: Option<u32>,
    /// Deliveries per second of each group.
    pub group_rate_limit_per_s: Option<u32>,
}

/// What an event may carry besides [`Stored`]: the default is what an
/// event enqueued without them has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    /// Higher is delivered first.
    pub priority: u8,
    /// When it expires (Unix ms); `None`: never.
    pub expires_at: Option<u64>,
}

impl Extra {
    /// Whether an event's records need to carry it.
    pub fn is_default(&self) -> bool {
        *self == Extra::default()
    }
}

/// What a full record holds of its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullEvent<'a> {
    /// The event as enqueued.
    pub stored: Stored<'a>,
    /// Its priority and expiry.
    pub extra: Extra,
    /// Its ordering group, if it has one.
    pub group: Option<Cow<'a, str>>,
}

/// A queue's own settings, as logged. Each `None` follows the broker-wide
/// setting of the same name, also when that changes at a restart; the
/// `bool`s have no broker-wide setting and are `false` unless set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnSettings {
    /// Lease length when the consumer names none (ms), for `VISIBILITY_TIMEOUT_MS`.
    pub visibility_timeout_ms: Option<u64>,
    /// Failures after the first before an event is dead, for `MAX_RETRIES`.
    pub max_retries: Option<u32>,
    /// Delay after the first failure (ms), for `BASE_BACKOFF_MS`.
    pub base_backoff_ms: Option<u64>,
    /// Cap on any retry delay (ms), for `MAX_BACKOFF_MS`.
    pub max_backoff_ms: Option<u64>,
    /// Growth of the delay per failure, for `BACKOFF_MULTIPLIER`.
    pub backoff_multiplier: Option<Multiplier>,
    /// Events not yet acked nor dead, for `QUEUE_MAX_SIZE`.
    pub max_size: Option<u64>,
    /// How long the queue's events live (ms); `None`: for ever.
    pub message_ttl_ms: Option<u64>,
    /// Whether expired events go to the dead-letter queue rather than away.
    pub dead_letter_expired: bool,
    /// Whether leases of the queue are held back.
    pub paused: bool,
}

/// A backoff multiplier. Compared by its bits, so that records stay `Eq`
/// (a float is not) and a value read back is the one logged, bit for bit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Multiplier(pub f64);

impl PartialEq for Multiplier {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Multiplier {}

/// A webhook subscription as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed<'a> {
    /// The queue whose events are pushed.
    #[serde(borrow)]
    pub queue: Cow<'a, str>,
    /// Where they are POSTed.
    #[serde(borrow)]
    pub url: Cow<'a, str>,
    /// Deliveries at once.
    pub concurrency: u32,
    /// How long one delivery may take (ms).
    pub timeout_ms: u64,
    /// The Standard Webhooks signing secret (`whsec_...`), if requests are signed.
    #[serde(borrow)]
    pub secret: Option<Cow<'a, str>>,
}

/// An event as enqueued: everything a delivery shows besides its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<'a> {
    /// Global event id.
    pub id: u64,
    /// Queue name.
    #[serde(borrow)]
    pub queue: Cow<'a, str>,
    /// When it was enqueued (Unix ms).
    pub enqueued_at: u64,
    /// When it is first visible (Unix ms).
    pub visible_at: u64,
    /// The producer's idempotency key.
    #[serde(borrow)]
    pub idempotency_key: Option<Cow<'a, str>>,
    /// Headers as the JSON object text received; empty when there were none.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub headers: Cow<'a, [u8]>,
    /// The payload as the exact JSON text received.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub payload: Cow<'a, [u8]>,
}

/// Writes bytes in one piece. serde writes a `[u8]` as a sequence, one
/// call per byte; postcard encodes both the same way (a length, then the
/// bytes), so the log format does not change.
fn as_bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Why a record body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The body is empty.
    #[error("empty record")]
    Empty,
    /// The version byte is one this build does not know.
    #[error(
        "record format version {0} is not supported (this build reads version {RECORD_VERSION})"
    )]
    Version(u8),
    /// An event's position names a record that is not an enqueue or relocation.
    #[error("the record is not an event")]
    NotAnEvent,
    /// The bytes after the version are not a record.
    #[error("undecodable record: {0}")]
    Postcard(#[from] postcard::Error),
}

fn owned(s: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    s.map(|s| Cow::Owned(s.into_owned()))
}

impl Stored<'_> {
    fn into_index(self) -> Stored<'static> {
        Stored {
            id: self.id,
            queue: Cow::Owned(self.queue.into_owned()),
            enqueued_at: self.enqueued_at,
            visible_at: self.visible_at,
            idempotency_key: owned(self.idempotency_key),
            headers: Cow::Borrowed(&[]),
            payload: Cow::Borrowed(&[]),
        }
    }
}

impl Subscribed<'_> {
    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Subscribed<'static> {
        Subscribed {
            queue: Cow::Owned(self.queue.into_owned()),
            url: Cow::Owned(self.url.into_owned()),
            concurrency: self.concurrency,
            timeout_ms: self.timeout_ms,
            secret: owned(self.secret),
        }
    }
}

impl<'a> Record<'a> {
    /// The record without headers and payload, which applying it does not
    /// need: what the live path keeps until the record is durable.
    pub fn into_index(self) -> Record<'static> {
        match self {
            Record::Enqueue(event) => Record::Enqueue(event.into_index()),
            Record::Ack { ids } => Record::Ack { ids },
            Record::Fail {
                id,
                failures,
                visible_at,
                error,
            } => Record::Fail {
                id,
                failures,
                visible_at,
                error: owned(error),
            },
            Record::Dead {
                id,
                failures,
                dead_at,
                error,
            } => Record::Dead {
                id,
                failures,
                dead_at,
                error: owned(error),
            },
            Record::Redrive { ids, at } => Record::Redrive { ids, at },
            Record::Purge { ids } => Record::Purge { ids },
            Record::Relocated {
                event,
                failures,
                dead_at,
                last_error,
            } => Record::Relocated {
                event: event.into_index(),
                failures,
                dead_at,
                last_error: owned(last_error),
            },
            Record::Subscribe(s) => Record::Subscribe(s.into_owned()),
            Record::Unsubscribe { queue } => Record::Unsubscribe {
                queue: Cow::Owned(queue.into_owned()),
            },
            Record::Settings { queue, settings } => Record::Settings {
                queue: Cow::Owned(queue.into_owned()),
                settings,
            },
            Record::DeleteQueue { queue } => Record::DeleteQueue {
                queue: Cow::Owned(queue.into_owned()),
            },
            Record::EnqueueWith(event, extra) => Record::EnqueueWith(event.into_index(), extra),
            Record::RelocatedWith {
                event,
                failures,
                dead_at,
                last_error,
                extra,
            } => Record::RelocatedWith {
                event: event.into_index(),
                failures,
                dead_at,
                last_error: owned(last_error),
                extra,
            },
            Record::Expire { ids, dead_at } => Record::Expire { ids, dead_at },
            Record::EnqueueGrouped {
                event,
                extra,
                group,
            } => Record::EnqueueGrouped {
                event: event.into_index(),
                extra,
                group: Cow::Owned(group.into_owned()),
            },
            Record::RelocatedGrouped {
                event,
                failures,
                dead_at,
                last_error,
                extra,
                group,
            } => Record::RelocatedGrouped {
                event: event.into_index(),
                failures,
                dead_at,
                last_error: owned(last_error),
                extra,
                group: Cow::Owned(group.into_owned()),
            },
            Record::SettingsWith {
                queue,
                settings,
                flow,
            } => Record::SettingsWith {
                queue: Cow::Owned(queue.into_owned()),
                settings,
                flow,
            },
        }
    }

    /// A new event's record: [`Record::Enqueue`] unless it carries more.
    pub fn enqueue(event: Stored<'a>, extra: Extra, group: Option<Cow<'a, str>>) -> Record<'a> {
        match group {
            Some(group) => Record::EnqueueGrouped {
                event,
                extra,
                group,
            },
            None if extra.is_default() => Record::Enqueue(event),
            None => Record::EnqueueWith(event, extra),
        }
    }

    /// A live event's copy, with its state now.
    pub fn relocated(
        event: Stored<'a>,
        failures: u32,
        dead_at: Option<u64>,
        last_error: Option<Cow<'a, str>>,
        (extra, group): (Extra, Option<Cow<'a, str>>),
    ) -> Record<'a> {
        match group {
            Some(group) => Record::RelocatedGrouped {
                event,
                failures,
                dead_at,
                last_error,
                extra,
                group,
            },
            None if extra.is_default() => Record::Relocated {
                event,
                failures,
                dead_at,
                last_error,
            },
            None => Record::RelocatedWith {
                event,
                failures,
                dead_at,
                last_error,
                extra,
            },
        }
    }

    /// A queue's settings record: [`Record::Settings`] unless it has flow
    /// settings of its own.
    pub fn settings(queue: Cow<'a, str>, settings: OwnSettings, flow: Flow) -> Record<'a> {
        if flow == Flow::default() {
            Record::Settings { queue, settings }
        } else {
            Record::SettingsWith {
                queue,
                settings,
                flow,
            }
        }
    }

    /// The event a full record (an enqueue or a relocation) holds, with what
    /// it carries besides.
    pub fn into_event(self) -> Option<FullEvent<'a>> {
        let (stored, extra, group) = match self {
            Record::Enqueue(event) | Record::Relocated { event, .. } => {
                (event, Extra::default(), None)
            }
            Record::EnqueueWith(event, extra) | Record::RelocatedWith { event, extra, .. } => {
                (event, extra, None)
            }
            Record::EnqueueGrouped {
                event,
                extra,
                group,
            }
            | Record::RelocatedGrouped {
                event,
                extra,
                group,
                ..
            } => (event, extra, Some(group)),
            _ => return None,
        };
        Some(FullEvent {
            stored,
            extra,
            group,
        })
    }

    /// Appends the version byte and the record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(RECORD_VERSION);
        // Serialising into a Vec cannot fail: every field type is supported.
        let encoded =
            postcard::to_extend(self, std::mem::take(out)).expect("a record always serialises");
        *out = encoded;
    }

    /// The version byte and the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Reads a record body, borrowing strings and payloads from it.
pub fn decode(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    let (&version, rest) = body.split_first().ok_or(DecodeError::Empty)?;
    if version != RECORD_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (record, left) = postcard::take_from_bytes(rest)?;
    if !left.is_empty() {
        return Err(DecodeError::Postcard(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored<'static> {
        Stored {
            id: 7,
            queue: "orders".into(),
            enqueued_at: 1_700_000_000_000,
            visible_at: 1_700_000_000_500,
            idempotency_key: Some("order-42".into()),
            headers: Cow::Borrowed(br#"{"k":"v"}"#),
            payload: Cow::Borrowed(br#"{"any": [1, 2.50, "json"]}"#),
        }
    }

    #[test]
    fn payloads_are_encoded_as_a_sequence_of_bytes_was() {
        /// `Stored` with its byte fields written the way serde writes a `Vec<u8>`.
        #[derive(Serialize)]
        struct AsSequences<'a> {
            id: u64,
            queue: &'a str,
            enqueued_at: u64,
            visible_at: u64,
            idempotency_key: Option<&'a str>,
            headers: Vec<u8>,
            payload: Vec<u8>,
        }
        let s = stored();
        let old = postcard::to_allocvec(&AsSequences {
            id: s.id,
            queue: &s.queue,
            enqueued_at: s.enqueued_at,
            visible_at: s.visible_at,
            idempotency_key: s.idempotency_key.as_deref(),
            headers: s.headers.to_vec(),
            payload: s.payload.to_vec(),
        })
        .unwrap();
        assert_eq!(postcard::to_allocvec(&s).unwrap(), old);
    }

    #[test]
    fn every_variant_round_trips() {
        let records = [
            Record::Enqueue(stored()),
            Record::Ack { ids: vec![1, 2, 3] },
            Record::Fail {
                id: 7,
                failures: 2,
                visible_at: 99,
                error: Some("downstream 503".into()),
            },
            Record::Dead {
                id: 7,
                failures: 11,
                dead_at: 100,
                error: None,
            },
            Record::Redrive {
                ids: vec![7],
                at: 5,
            },
            Record::Purge { ids: vec![] },
            Record::Relocated {
                event: stored(),
                failures: 3,
                dead_at: Some(4),
                last_error: Some("lease expired".into()),
            },
            Record::Subscribe(Subscribed {
                queue: "orders".into(),
                url: "http://127.0.0.1:9000/hook".into(),
                concurrency: 8,
                timeout_ms: 10_000,
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            }),
            Record::Unsubscribe {
                queue: "orders".into(),
            },
            Record::Settings {
                queue: "orders".into(),
                settings: OwnSettings {
                    visibility_timeout_ms: Some(5_000),
                    max_retries: Some(3),
                    base_backoff_ms: None,
                    max_backoff_ms: Some(120_000),
                    backoff_multiplier: Some(Multiplier(1.5)),
                    max_size: Some(10),
                    message_ttl_ms: Some(86_400_000),
                    dead_letter_expired: true,
                    paused: true,
                },
            },
            Record::Settings {
                queue: "orders".into(),
                settings: OwnSettings::default(),
            },
            Record::DeleteQueue {
                queue: "orders".into(),
            },
            Record::EnqueueWith(
                stored(),
                Extra {
                    priority: 255,
                    expires_at: Some(1_700_000_060_000),
                },
            ),
            Record::RelocatedWith {
                event: stored(),
                failures: 1,
                dead_at: None,
                last_error: None,
                extra: Extra {
                    priority: 9,
                    expires_at: None,
                },
            },
            Record::Expire {
                ids: vec![7, 8],
                dead_at: Some(1_700_000_060_001),
            },
            Record::Expire {
                ids: vec![9],
                dead_at: None,
            },
            Record::EnqueueGrouped {
                event: stored(),
                extra: Extra::default(),
                group: "tenant-7".into(),
            },
            Record::RelocatedGrouped {
                event: stored(),
                failures: 2,
                dead_at: Some(5),
                last_error: Some("downstream 503".into()),
                extra: Extra {
                    priority: 3,
                    expires_at: Some(9),
                },
                group: "tenant-7".into(),
            },
            Record::SettingsWith {
                queue: "orders".into(),
                settings: OwnSettings::default(),
                flow: Flow {
                    group_concurrency: Some(4),
                    max_in_flight: Some(100),
                    rate_limit_per_s: Some(50),
                    rate_limit_burst: None,
                    group_rate_limit_per_s: Some(2),
                },
            },
        ];
        for record in records {
            let body = record.encode();
            assert_eq!(decode(&body).unwrap(), record);
        }
    }

    #[test]
    fn payload_is_borrowed_from_the_body_byte_for_byte() {
        let body = Record::Enqueue(stored()).encode();
        let Record::Enqueue(event) = decode(&body).unwrap() else {
            panic!("not an enqueue");
        };
        assert!(matches!(event.payload, Cow::Borrowed(_)));
        assert_eq!(&*event.payload, br#"{"any": [1, 2.50, "json"]}"#);
    }

    #[test]
    fn unknown_version_and_trailing_bytes_are_refused() {
        let mut body = Record::Ack { ids: vec![1] }.encode();
        body[0] = 9;
        assert_eq!(decode(&body), Err(DecodeError::Version(9)));
        let mut body = Record::Ack { ids: vec![1] }.encode();
        body.push(0);
        assert!(matches!(decode(&body), Err(DecodeError::Postcard(_))));
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
    }
}
