//! Message TTL: events that expire at `enqueued_at + ttl`.
//!
//! An expiry is fixed when the event is enqueued, from its own `ttl_ms` or
//! its queue's `message_ttl_ms` then, and kept in the event's records. A
//! waiting event past it is never leased: a lease skips it, and the
//! reaper writes an [`Record::Expire`] that drops it or, when the queue's
//! `dead_letter_expired` is set, dead-letters it with the error
//! [`TTL_EXPIRED`]. A leased event past it keeps its lease, which may still
//! be acked or extended; a failure of it (a nack, an expired lease) expires
//! it instead of retrying it. Dead events do not expire, and a redrive
//! sends one back without an expiry: the operator wants it again.
//!
//! Each queue keeps its waiting events with an expiry in an order by
//! expiry, checked lazily against [`State::expires`] as the other orders
//! are; entries of events acked since are dropped once they outnumber the
//! live ones four to one, so a long TTL over a busy queue costs memory in
//! proportion to the events it holds.

use std::cmp::Reverse;

use super::queue::Status;
use super::record::Record;
use super::state::{waiting_status, State};

/// The error an event dead-lettered by its expiry shows.
pub const TTL_EXPIRED: &str = "expired";

/// A waiting event the reaper found past its expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    pub id: u64,
    pub queue: u32,
    /// When it was visible, to put it back if the write fails.
    pub time: u64,
}

impl State {
    /// Gives event `id` of queue `q` an expiry at `at` (Unix ms).
    pub(super) fn set_expiry(&mut self, id: u64, q: u32, at: u64) {
        let queue = &mut self.queues[q as usize];
        if self.expires.insert(id, at).is_none() {
            queue.expiring_events += 1;
        }
        queue.expiring.push(Reverse((at, id)));
    }

    /// Takes event `id`'s expiry away, if it has one.
    pub(super) fn clear_expiry(&mut self, id: u64, q: u32) {
        if self.expires.remove(&id).is_some() {
            self.queues[q as usize].expiring_events -= 1;
        }
    }

    /// Whether event `id` of queue `q` is past its expiry at `now` (Unix ms).
    pub fn is_expired(&self, id: u64, q: u32, now: u64) -> bool {
        self.queues[q as usize].expiring_events > 0
            && self.expires.get(&id).is_some_and(|&at| at <= now)
    }

    /// Takes every waiting event past its expiry at `now`: each is marked
    /// settling while its expiry is written.
    pub fn take_expired(&mut self, now: u64) -> Vec<Expired> {
        let mut out = Vec::new();
        for q in 0..self.queues.len() {
            if self.queues[q].expiring_events == 0 {
                if self.queues[q].expiring.len() > 0 {
                    self.queues[q].expiring = Default::default();
                }
                continue;
            }
            while let Some(&Reverse((at, id))) = self.queues[q].expiring.peek() {
                if at > now {
                    break;
                }
                self.queues[q].expiring.pop();
                let Some(event) = self.events.get(&id).copied() else {
                    continue;
                };
                let current = self.expires.get(&id) == Some(&at);
                if current && matches!(event.status, Status::Ready | Status::Delayed) {
                    self.set_status(id, Status::Settling);
                    out.push(Expired {
                        id,
                        queue: q as u32,
                        time: event.time,
                    });
                }
            }
            self.compact_expiring(q);
        }
        out
    }

    /// Puts an expiry back whose write failed: the next pass tries again.
    pub fn restore_expired(&mut self, expired: &Expired, now: u64) {
        self.set_status(expired.id, waiting_status(expired.time, now));
    }

    fn compact_expiring(&mut self, q: usize) {
        let queue = &self.queues[q];
        if queue.expiring.len() <= 1024 || queue.expiring.len() as u64 <= 4 * queue.expiring_events
        {
            return;
        }
        let (expires, events) = (&self.expires, &self.events);
        self.queues[q].expiring.retain(|Reverse((at, id))| {
            expires.get(id) == Some(at)
                && events
                    .get(id)
                    .is_some_and(|e| matches!(e.status, Status::Ready | Status::Delayed))
        });
    }

    /// Applies an [`Record::Expire`]: the events go, or die with the error
    /// [`TTL_EXPIRED`] when `dead_at` is given.
    pub(super) fn expire_all(&mut self, ids: &[u64], dead_at: Option<u64>) -> Option<u32> {
        let mut touched = None;
        for &id in ids {
            let Some(event) = self.events.get(&id).copied() else {
                continue;
            };
            match dead_at {
                None => {
                    self.remove(id);
                }
                Some(at) => {
                    self.kill(id, event.failures(), at);
                    self.set_error(id, Some(TTL_EXPIRED));
                }
            }
            self.queues[event.queue as usize].stats.ttl_expired_total += 1;
            touched = Some(event.queue);
        }
        touched
    }
}

/// The records that expire `ids` of a queue, by its `dead_letter_expired`.
pub(crate) fn expire_record(ids: Vec<u64>, dead_letter: bool, now: u64) -> Record<'static> {
    Record::Expire {
        ids,
        dead_at: dead_letter.then_some(now),
    }
}
