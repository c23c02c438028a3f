//! Cleanup keeps the log proportional to live data. Only the oldest segment
//! is ever deleted (prefix truncation, so a record that cancels an event never
//! goes before the event's own record). Once it holds no live event it goes;
//! when it holds only a few, they are first copied forward as relocated
//! records carrying their current state. A segment that holds an
//! idempotency key still in its window stays until the window closes, so
//! that a restart still knows the key; the one that holds the record of the
//! highest id stays until a newer event is enqueued, so that a restart never
//! hands out an id again. Webhook subscriptions and queue settings kept
//! there are written again before it goes.

use std::borrow::Cow;

use super::delivery::StoredBytes;
use super::queue::Status;
use super::record::{Extra, Record};
use super::{Broker, BrokerError, Core};

/// What a cleanup pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Segments deleted.
    pub deleted: usize,
    /// Events copied forward.
    pub relocated: u64,
}

/// Relocate a segment's live events only when they take at most this share
/// of it, so that every relocation at least halves the bytes it keeps.
const RELOCATE_SHARE: f64 = 0.5;

/// Relocate at most this many bytes per segment in one pass.
const RELOCATE_MAX_BYTES: u64 = 16 << 20;

/// Events, and bytes of them, copied forward by one append. Each slice
/// takes the state lock and a turn of the log on its own, so producers get
/// theirs in between: 43,600 events copied in one append held every
/// enqueue for 170 ms.
const SLICE_EVENTS: usize = 512;
const SLICE_BYTES: u64 = 256 << 10;

impl Broker {
    /// Deletes old segments while the oldest holds no live event, relocating
    /// the few it holds where that frees enough. Blocks on log writes.
    pub fn cleanup(&self) -> Result<CleanupReport, BrokerError> {
        let _one_at_a_time = self.cleanup.lock().expect("cleanup lock");
        let mut report = CleanupReport::default();
        loop {
            let segments = self.wal.segments();
            // The newest segment is the active one and never deleted.
            let [oldest, next, ..] = segments.as_slice() else {
                return Ok(report);
            };
            let live = self.live_in_segment(oldest.first_seq);
            if live.events > 0 {
                let worth_it = (live.bytes as f64) <= oldest.bytes as f64 * RELOCATE_SHARE
                    && live.bytes <= RELOCATE_MAX_BYTES;
                if !worth_it {
                    return Ok(report);
                }
                let (moved, all) = self.relocate(oldest.first_seq)?;
                report.relocated += moved;
                if !all {
                    // An event there is being changed: try on the next pass.
                    return Ok(report);
                }
                if self.live_in_segment(oldest.first_seq).events > 0 {
                    return Ok(report);
                }
            }
            self.relocate_kept(oldest.first_seq)?;
            let (keys_until, newest_id, now) = {
                let core = self.shared.lock();
                (
                    core.state.keys_until(oldest.first_seq),
                    core.state.holds_newest_id(oldest.first_seq),
                    self.shared.clock.unix_ms(),
                )
            };
            if keys_until > now || newest_id {
                // A restart must still find the idempotency keys enqueued
                // there, and the highest id, so that no id is handed out twice.
                return Ok(report);
            }
            report.deleted += self.wal.delete_before(next.first_seq)?;
            self.shared
                .lock()
                .state
                .forget_segments_before(next.first_seq);
        }
    }

    /// Copies the live events of `segment` forward, a slice at a time: how
    /// many it copied, and whether that was all of them. It stops at a
    /// slice where an event is settling, or its queue is being deleted, and
    /// the copy would race the change being written.
    fn relocate(&self, segment: u64) -> Result<(u64, bool), BrokerError> {
        let ids = self.shared.lock().state.events_in(segment);
        let mut moved = 0;
        let mut rest = ids.as_slice();
        while !rest.is_empty() {
            let Some((n, taken)) = self.relocate_slice(segment, rest)? else {
                return Ok((moved, false));
            };
            moved += n;
            rest = &rest[taken..];
        }
        Ok((moved, true))
    }

    /// Copies forward the first slice of `ids` that are still live in
    /// `segment`: how many it copied and how many of `ids` it went through,
    /// or `None` when one of them is settling.
    fn relocate_slice(
        &self,
        segment: u64,
        ids: &[u64],
    ) -> Result<Option<(u64, usize)>, BrokerError> {
        self.check_writable()?;
        let (pending, taken) = {
            let mut core = self.shared.lock();
            let mut bytes = 0;
            let mut taken = 0;
            let mut slice = Vec::new();
            for id in ids {
                if slice.len() == SLICE_EVENTS || bytes >= SLICE_BYTES {
                    break;
                }
                taken += 1;
                // Acked, or copied by another pass, since the list was made.
                if let Some(event) = core.state.events.get(id).filter(|e| e.segment == segment) {
                    bytes += u64::from(event.len());
                    slice.push(*id);
                }
            }
            let ids = slice;
            // A copy written after a deletion of its queue would bring
            // the event back.
            let settling = ids.iter().any(|id| {
                let event = core.state.events[id];
                matches!(event.status, Status::Settling | Status::DeadSettling)
                    || core.state.queues[event.queue as usize].deleting
            });
            if settling {
                return Ok(None);
            }
            if ids.is_empty() {
                return Ok(Some((0, taken)));
            }
            let copies = ids
                .iter()
                .map(|id| self.copy_of(&core, *id))
                .collect::<Result<Vec<_>, BrokerError>>()?;
            let records = copies
                .iter()
                .map(|(stored, state)| state.record(stored.stored(), stored.group()))
                .collect();
            let count = ids.len() as u64;
            let finish = Box::new(move |_: &mut Core, result: Result<(), BrokerError>| {
                result.map(|()| count)
            });
            (self.submit(&mut core, records, finish), taken)
        };
        pending.wait().map(|n| Some((n, taken)))
    }

    fn copy_of(&self, core: &Core, id: u64) -> Result<(StoredBytes, Current), BrokerError> {
        let event = core.state.events[&id];
        let dead = matches!(event.status, Status::Dead | Status::DeadSettling);
        let current = Current {
            failures: event.failures(),
            dead_at: dead.then_some(event.time),
            visible_at: (!dead).then_some(event.time),
            last_error: core.state.errors.get(&id).map(|e| e.to_string()),
            extra: Extra {
                priority: event.priority,
                expires_at: core.state.expires.get(&id).copied(),
            },
        };
        Ok((StoredBytes::read(&self.wal, &event)?, current))
    }
}

/// An event's state besides its record.
struct Current {
    failures: u32,
    dead_at: Option<u64>,
    visible_at: Option<u64>,
    last_error: Option<String>,
    extra: Extra,
}

impl Current {
    fn record<'a>(
        &'a self,
        mut event: super::record::Stored<'a>,
        group: Option<&'a str>,
    ) -> Record<'a> {
        if let Some(visible_at) = self.visible_at {
            event.visible_at = visible_at;
        }
        Record::relocated(
            event,
            self.failures,
            self.dead_at,
            self.last_error.as_deref().map(Cow::Borrowed),
            (self.extra, group.map(Cow::Borrowed)),
        )
    }
}
