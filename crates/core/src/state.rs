//! The broker's in-memory state: an index of every live event (where its
//! record is, its status, failures and visible time), the queues' orders,
//! leases and idempotency keys. No payload is kept here.
//!
//! [`State::apply`] is the one way a logged record changes the state: the
//! live path calls it once a record is durable, and recovery calls it for
//! every record in the log. Everything else here changes only what is not
//! logged (leases) or marks an event while a change to it is being written.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::idempotency::Idempotency;
use super::index::EventIndex;
use super::lease::Lease;
use super::queue::{Queue, QueueStats, Status};
use super::record::{Extra, Flow, OwnSettings, Record, Stored, Subscribed};
use event_broker_wal::format::MAX_BODY_LEN;
use event_broker_wal::Position;

/// Cancelled ids remembered for their receipts' answers; the lowest are
/// forgotten first past this many (under 1 MiB).
const CANCELLED_KEPT: usize = 32_768;

/// Collections with room for fewer entries than this are left alone.
const SHRINK_ABOVE: usize = 4096;

/// A moment, on both clocks: monotonic for leases, wall time for what is
/// logged or shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Wall time in Unix ms.
    pub wall: u64,
}

/// One event in the index, in 32 bytes: every pending event has one, and
/// a restart has to be given and fill that memory for each. The few events
/// with an expiry or a group keep it beside the index ([`State::expires`],
/// [`State::event_groups`]), so that the others do not pay for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    /// Segment of the event's newest full record (enqueue or relocation).
    pub segment: u64,
    /// That record's offset in the segment and its length.
    place: Place,
    /// Visible time while waiting, death time when dead (Unix ms).
    pub time: u64,
    pub queue: u32,
    /// Failures so far; at most `MAX_RETRIES` + 1, which is at most 1,001.
    failures: u16,
    pub status: Status,
    /// Higher is delivered first.
    pub priority: u8,
}

/// A record's offset in its segment and its body's length, in one word.
/// A body is at most [`MAX_BODY_LEN`] bytes, and a segment holds at most
/// one batch past its size; a batch lives in memory whole, so no offset
/// comes near the 128 GiB that the bits left give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place(u64);

const LEN_BITS: u32 = MAX_BODY_LEN.ilog2() + 1;

impl Place {
    fn new(offset: u64, len: u32) -> Place {
        debug_assert!(offset < 1 << (64 - LEN_BITS) && u64::from(len) < 1 << LEN_BITS);
        Place(offset << LEN_BITS | u64::from(len))
    }

    fn offset(self) -> u64 {
        self.0 >> LEN_BITS
    }

    fn len(self) -> u32 {
        (self.0 & ((1 << LEN_BITS) - 1)) as u32
    }
}

impl Event {
    pub fn new(pos: &Position, time: u64, queue: u32, status: Status, priority: u8) -> Event {
        Event {
            segment: pos.segment,
            place: Place::new(pos.offset, pos.len),
            time,
            queue,
            failures: 0,
            status,
            priority,
        }
    }

    /// Segment, offset and body length of the event's newest full record.
    pub fn position(&self) -> (u64, u64, u32) {
        (self.segment, self.place.offset(), self.place.len())
    }

    /// Moves the event to the record at `pos`.
    pub fn set_position(&mut self, pos: &Position) {
        self.segment = pos.segment;
        self.place = Place::new(pos.offset, pos.len);
    }

    pub fn len(&self) -> u32 {
        self.place.len()
    }

    pub fn failures(&self) -> u32 {
        u32::from(self.failures)
    }

    pub fn set_failures(&mut self, failures: u32) {
        self.failures = u16::try_from(failures).unwrap_or(u16::MAX);
    }
}

const _: () = assert!(std::mem::size_of::<Option<Event>>() == 32);

/// Live full records in one segment: what cleanup has to relocate to delete it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    /// Events whose newest full record is in the segment.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The lowest and highest id a record in the segment was written for.
    pub first_id: u64,
    pub last_id: u64,
}

/// What a test or status page sees of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventView {
    /// Event id.
    pub id: u64,
    /// Where it is in its lifecycle.
    pub status: ViewStatus,
    /// Failed deliveries so far.
    pub failures: u32,
    /// Visible time while waiting, death time when dead (Unix ms); 0 in flight.
    pub time: u64,
    /// Higher is delivered first.
    pub priority: u8,
    /// When it expires (Unix ms), if it does.
    pub expires_at: Option<u64>,
}

/// [`Status`] without the transient states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViewStatus {
    /// Waiting to be visible or visible (ready and delayed alike).
    Waiting,
    /// Leased.
    InFlight,
    /// Dead-lettered.
    Dead,
}

#[derive(Debug)]
pub(crate) struct State {
    pub queues: Vec<Queue>,
    by_name: HashMap<Arc<str>, u32>,
    /// The queue [`State::intern`] last named.
    last_interned: u32,
    pub events: EventIndex,
    /// Last error of events whose last delivery failed with one. Like every
    /// map here that can grow large, a B-tree: it grows node by node, where
    /// a hash map would rebuild itself whole with the state locked.
    pub errors: BTreeMap<u64, Box<str>>,
    pub leases: BTreeMap<u64, Lease>,
    /// When each event that expires does (Unix ms). Dead events have none.
    pub expires: BTreeMap<u64, u64>,
    /// The group of each event that has one, in its queue's groups.
    pub event_groups: BTreeMap<u64, u32>,
    live: BTreeMap<u64, Live>,
    /// Per segment, until when an idempotency key enqueued in it is in its
    /// window (Unix ms): the segment must stay so a restart still knows the key.
    keys_until: BTreeMap<u64, u64>,
    pub idempotency: Idempotency,
    /// One past the highest id ever applied.
    pub next_id: u64,
    /// The segment of the newest record of the highest id: it must stay, or
    /// a restart would hand out ids again once that event is acked.
    newest_id_segment: Option<u64>,
    pub next_serial: u64,
    /// Webhook subscriptions by queue name, with the segment of each one's record.
    pub subscriptions: BTreeMap<Box<str>, (Subscribed<'static>, u64)>,
    /// The newest [`CANCELLED_KEPT`] ids cancelled since the broker opened,
    /// so that a receipt of one is answered `not_found`, not `lease_lost`.
    /// Not logged: receipts do not outlive a restart either.
    cancelled: BTreeSet<u64>,
}

impl State {
    pub fn new(idempotency_window_ms: u64, first_serial: u64) -> Self {
        State {
            queues: Vec::new(),
            by_name: HashMap::new(),
            last_interned: 0,
            events: EventIndex::default(),
            errors: BTreeMap::new(),
            leases: BTreeMap::new(),
            expires: BTreeMap::new(),
            event_groups: BTreeMap::new(),
            live: BTreeMap::new(),
            keys_until: BTreeMap::new(),
            idempotency: Idempotency::new(idempotency_window_ms),
            next_id: 0,
            newest_id_segment: None,
            next_serial: first_serial,
            subscriptions: BTreeMap::new(),
            cancelled: BTreeSet::new(),
        }
    }

    /// The index of the queue of this name, unless there is none or it was
    /// deleted and not named since.
    pub fn queue_id(&self, name: &str) -> Option<u32> {
        self.slot(name)
            .filter(|q| !self.queues[*q as usize].deleted)
    }

    /// The index of the slot of this name, deleted or not: receipts of a
    /// deleted queue are checked against it.
    pub fn slot(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// How many times queue `name` was deleted.
    pub fn deletions(&self, name: &str) -> u64 {
        self.slot(name)
            .map_or(0, |q| self.queues[q as usize].deletions)
    }

    /// Indexes of the queues there are, deleted ones left out, oldest first.
    pub fn live_queues(&self) -> Vec<u32> {
        (0..self.queues.len() as u32)
            .filter(|q| !self.queues[*q as usize].deleted)
            .collect()
    }

    /// The queue's index, creating the queue on first use. A deleted queue
    /// named again gets its slot back, empty and with default settings, as
    /// the deletion left it.
    pub fn intern(&mut self, name: &str) -> u32 {
        // Records of one queue come in runs: replay looks the name up once
        // a run, not once a record.
        let last = self.last_interned as usize;
        let q = match self.queues.get(last) {
            Some(queue) if &*queue.name == name => self.last_interned,
            _ => match self.slot(name) {
                Some(q) => q,
                None => {
                    let name: Arc<str> = Arc::from(name);
                    let q = self.queues.len() as u32;
                    self.queues.push(Queue::new(name.clone()));
                    self.by_name.insert(name, q);
                    q
                }
            },
        };
        self.last_interned = q;
        self.queues[q as usize].deleted = false;
        q
    }

    /// Deletes queue `name` with all its events, its settings and its
    /// subscription. Its slot stays, reset and marked deleted; the events'
    /// ids stay used, and their receipts are answered `not_found`.
    fn delete_queue(&mut self, name: &str) -> Option<u32> {
        let q = self.queue_id(name)?;
        // Every event is looked at once: a deletion costs a pass over the
        // index, where keeping a set of ids per queue would cost memory for
        // every event.
        let ids: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, e)| e.queue == q)
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.remove(id);
        }
        self.subscriptions.remove(name);
        self.idempotency.forget_queue(q);
        let old = &mut self.queues[q as usize];
        let mut fresh = Queue::new(old.name.clone());
        // Enqueues being written when the deletion applied still count
        // against the queue they will create again.
        fresh.reserved = old.reserved;
        fresh.deleted = true;
        fresh.deleted_below = self.next_id;
        fresh.deletions = old.deletions + 1;
        *old = fresh;
        Some(q)
    }

    /// Applies a durable record found at `pos`; returns the queue it changed.
    pub fn apply(&mut self, record: &Record<'_>, pos: &Position, now: u64) -> Option<u32> {
        match record {
            Record::Enqueue(stored) => {
                self.apply_stored(stored, (Extra::default(), None), pos, None, now)
            }
            Record::EnqueueWith(stored, extra) => {
                self.apply_stored(stored, (*extra, None), pos, None, now)
            }
            Record::EnqueueGrouped {
                event,
                extra,
                group,
            } => self.apply_stored(event, (*extra, Some(group)), pos, None, now),
            Record::Ack { ids } => self.remove_all(ids, |s| Some(&mut s.acked_total)),
            Record::Purge { ids } => self.remove_all(ids, |_| None),
            Record::Fail {
                id,
                failures,
                visible_at,
                error,
            } => {
                let q = self.fail(*id, *failures, *visible_at, now)?;
                self.set_error(*id, error.as_deref());
                Some(q)
            }
            Record::Dead {
                id,
                failures,
                dead_at,
                error,
            } => {
                let q = self.kill(*id, *failures, *dead_at)?;
                self.set_error(*id, error.as_deref());
                Some(q)
            }
            Record::Redrive { ids, at } => {
                let mut touched = None;
                for id in ids {
                    let status = self.events.get(id).map(|e| e.status);
                    if !matches!(status, Some(Status::Dead | Status::DeadSettling)) {
                        continue;
                    }
                    let q = self.fail(*id, 0, *at, now)?;
                    self.errors.remove(id);
                    self.queues[q as usize].stats.redriven_total += 1;
                    touched = Some(q);
                }
                touched
            }
            Record::Relocated {
                event,
                failures,
                dead_at,
                last_error,
            } => {
                let copy = Relocation::of(*failures, *dead_at, last_error);
                self.apply_stored(event, (Extra::default(), None), pos, Some(copy), now)
            }
            Record::RelocatedWith {
                event,
                failures,
                dead_at,
                last_error,
                extra,
            } => {
                let copy = Relocation::of(*failures, *dead_at, last_error);
                self.apply_stored(event, (*extra, None), pos, Some(copy), now)
            }
            Record::RelocatedGrouped {
                event,
                failures,
                dead_at,
                last_error,
                extra,
                group,
            } => {
                let copy = Relocation::of(*failures, *dead_at, last_error);
                self.apply_stored(event, (*extra, Some(group)), pos, Some(copy), now)
            }
            Record::Expire { ids, dead_at } => self.expire_all(ids, *dead_at),
            Record::Subscribe(subscribed) => {
                let kept = (subscribed.clone().into_owned(), pos.segment);
                self.subscriptions
                    .insert(Box::from(&*subscribed.queue), kept);
                None
            }
            Record::Unsubscribe { queue } => {
                self.subscriptions.remove(&**queue);
                None
            }
            Record::Settings { queue, settings } => {
                Some(self.set_settings(queue, *settings, Flow::default(), pos, now))
            }
            Record::SettingsWith {
                queue,
                settings,
                flow,
            } => Some(self.set_settings(queue, *settings, *flow, pos, now)),
            Record::DeleteQueue { queue } => self.delete_queue(queue),
        }
    }

    fn set_settings(
        &mut self,
        queue: &str,
        settings: OwnSettings,
        flow: Flow,
        pos: &Position,
        now: u64,
    ) -> u32 {
        let q = self.intern(queue);
        let entry = &mut self.queues[q as usize];
        entry.settings = settings;
        entry.flow = flow;
        entry.settings_at = Some(pos.segment);
        // Due events are ready, so a resume wakes the polls waiting.
        self.promote(q, now);
        // A new concurrency may give groups room, or take it.
        for g in self.queues[q as usize].groups.ids() {
            self.offer(q, g);
        }
        q
    }

    fn apply_stored(
        &mut self,
        stored: &Stored<'_>,
        (extra, group): (Extra, Option<&Cow<'_, str>>),
        pos: &Position,
        relocated: Option<Relocation<'_>>,
        now: u64,
    ) -> Option<u32> {
        if stored.id + 1 >= self.next_id {
            self.newest_id_segment = Some(pos.segment);
        }
        if let Some(event) = self.events.get_mut(&stored.id) {
            // A relocation of a live event: only where its record is changes.
            let old = (event.segment, event.len());
            event.set_position(pos);
            let q = event.queue;
            self.unlive(old.0, old.1);
            self.add_live(pos.segment, pos.len, stored.id);
            return Some(q);
        }
        let q = self.intern(&stored.queue);
        let Relocation {
            failures,
            dead_at,
            last_error,
        } = relocated.unwrap_or_default();
        let (status, time) = match dead_at {
            Some(at) => (Status::Dead, at),
            None => (waiting_status(stored.visible_at, now), stored.visible_at),
        };
        let mut event = Event::new(pos, time, q, status, extra.priority);
        event.set_failures(failures);
        self.events.insert(stored.id, event);
        if let Some(at) = extra.expires_at.filter(|_| status != Status::Dead) {
            self.set_expiry(stored.id, q, at);
        }
        if let Some(group) = group {
            let g = self.queues[q as usize].groups.join(group);
            self.event_groups.insert(stored.id, g);
        }
        self.queues[q as usize].count(None, Some(status));
        self.regroup(stored.id, q, None, Some(status));
        self.push(stored.id, &event);
        self.add_live(pos.segment, pos.len, stored.id);
        self.set_error(stored.id, last_error);
        if let Some(key) = &stored.idempotency_key {
            self.idempotency
                .insert(q, key, stored.id, stored.enqueued_at, now);
            let until = stored
                .enqueued_at
                .saturating_add(self.idempotency.window_ms());
            let kept = self.keys_until.entry(pos.segment).or_default();
            *kept = (*kept).max(until);
        }
        self.next_id = self.next_id.max(stored.id + 1);
        if relocated.is_none() {
            self.queues[q as usize].stats.enqueued_total += 1;
        }
        Some(q)
    }

    fn remove_all(
        &mut self,
        ids: &[u64],
        total: fn(&mut QueueStats) -> Option<&mut u64>,
    ) -> Option<u32> {
        let mut touched = None;
        for id in ids {
            if let Some(event) = self.remove(*id) {
                let q = event.queue;
                if let Some(counter) = total(&mut self.queues[q as usize].stats) {
                    *counter += 1;
                }
                touched = Some(q);
            }
        }
        touched
    }

    /// Takes an event out of the index.
    pub(super) fn remove(&mut self, id: u64) -> Option<Event> {
        let event = self.events.remove(&id)?;
        self.regroup(id, event.queue, Some(event.status), None);
        let queue = &mut self.queues[event.queue as usize];
        queue.count(Some(event.status), None);
        queue.dead.remove(&id);
        self.unlive(event.segment, event.len());
        self.errors.remove(&id);
        self.leases.remove(&id);
        self.clear_expiry(id, event.queue);
        Some(event)
    }

    /// Makes an event wait for `visible_at` after `failures` failures.
    fn fail(&mut self, id: u64, failures: u32, visible_at: u64, now: u64) -> Option<u32> {
        let event = self.events.get_mut(&id)?;
        event.set_failures(failures);
        event.time = visible_at;
        let event = *event;
        self.leases.remove(&id);
        self.set_status(id, waiting_status(visible_at, now));
        Some(event.queue)
    }

    pub(super) fn kill(&mut self, id: u64, failures: u32, dead_at: u64) -> Option<u32> {
        let event = self.events.get_mut(&id)?;
        event.set_failures(failures);
        event.time = dead_at;
        let q = event.queue;
        self.leases.remove(&id);
        // The dead-letter queue keeps an event until it is redriven or
        // purged, and a redriven one is wanted again: neither expires.
        self.clear_expiry(id, q);
        self.set_status(id, Status::Dead);
        self.queues[q as usize].stats.dead_lettered_total += 1;
        Some(q)
    }

    pub(super) fn set_error(&mut self, id: u64, error: Option<&str>) {
        match error {
            Some(e) => {
                self.errors.insert(id, Box::from(e));
            }
            None => {
                self.errors.remove(&id);
            }
        }
    }

    /// Moves an event to `to`, keeping counts, heaps and the dead set in step.
    pub fn set_status(&mut self, id: u64, to: Status) {
        let Some(event) = self.events.get_mut(&id) else {
            return;
        };
        let from = event.status;
        event.status = to;
        let event = *event;
        self.regroup(id, event.queue, Some(from), Some(to));
        let queue = &mut self.queues[event.queue as usize];
        queue.count(Some(from), Some(to));
        if matches!(from, Status::Dead | Status::DeadSettling)
            && !matches!(to, Status::Dead | Status::DeadSettling)
        {
            queue.dead.remove(&id);
        }
        // Back to waiting: the expiry order may have dropped the event
        // while it was leased or being written.
        if is_waiting(to) && !is_waiting(from) {
            if let Some(&at) = self.expires.get(&id) {
                queue.expiring.push(Reverse((at, id)));
            }
        }
        self.push(id, &event);
    }

    /// Puts an event where its status says it belongs; a ready event of a
    /// group is in its group's order instead ([`State::regroup`]).
    #[inline]
    fn push(&mut self, id: u64, event: &Event) {
        let queue = &mut self.queues[event.queue as usize];
        match event.status {
            Status::Ready => {
                if queue.groups.is_empty() || !self.event_groups.contains_key(&id) {
                    queue.ready.push(event.priority, (event.time, id));
                }
            }
            Status::Delayed => queue.delayed.push(Reverse((event.time, id))),
            Status::Dead => {
                queue.dead.insert(id);
            }
            Status::InFlight => {
                if let Some(lease) = self.leases.get(&id) {
                    queue
                        .deadlines
                        .push(Reverse((lease.deadline, id, lease.serial)));
                }
            }
            Status::Settling | Status::DeadSettling => {}
        }
    }

    fn add_live(&mut self, segment: u64, len: u32, id: u64) {
        let live = self.live.entry(segment).or_insert(Live {
            first_id: id,
            last_id: id,
            ..Live::default()
        });
        live.events += 1;
        live.bytes += u64::from(len);
        live.first_id = live.first_id.min(id);
        live.last_id = live.last_id.max(id);
    }

    fn unlive(&mut self, segment: u64, len: u32) {
        if let Some(live) = self.live.get_mut(&segment) {
            live.events -= 1;
            live.bytes -= u64::from(len);
            if live.events == 0 {
                self.live.remove(&segment);
            }
        }
    }

    /// Live events whose newest record is in `segment`.
    pub fn live_in(&self, segment: u64) -> Live {
        self.live.get(&segment).copied().unwrap_or_default()
    }

    /// Until when `segment` holds an idempotency key still in its window (Unix ms).
    pub fn keys_until(&self, segment: u64) -> u64 {
        self.keys_until.get(&segment).copied().unwrap_or(0)
    }

    /// Whether `segment` holds the newest record of the highest id.
    pub fn holds_newest_id(&self, segment: u64) -> bool {
        self.newest_id_segment == Some(segment)
    }

    /// Forgets what was kept of segments before `segment`, once they are deleted.
    pub fn forget_segments_before(&mut self, segment: u64) {
        self.keys_until = self.keys_until.split_off(&segment);
    }

    /// Gives back the room of the out-of-order heaps that shrank to under
    /// a quarter of it, so that a burst of retries does not keep its peak
    /// memory for good; halving at most, the cost stays in proportion. The
    /// index and the runs of the orders free their pages as they empty.
    pub fn shrink(&mut self) {
        for queue in &mut self.queues {
            queue.ready.shrink(SHRINK_ABOVE);
            queue.delayed.shrink(SHRINK_ABOVE);
            queue.deadlines.shrink(SHRINK_ABOVE);
            queue.expiring.shrink(SHRINK_ABOVE);
            queue.groups.candidates.shrink(SHRINK_ABOVE);
        }
    }

    /// Drops the group rate buckets that are full again (`flow` module).
    pub fn forget_full_buckets(&mut self, now: Instant) {
        for queue in &mut self.queues {
            if let Some(limiters) = &mut queue.limiters {
                limiters.forget_full(now);
            }
        }
    }

    /// Subscriptions whose record is in `segment`.
    pub fn subscriptions_in(&self, segment: u64) -> Vec<Subscribed<'static>> {
        self.subscriptions
            .values()
            .filter(|(_, at)| *at == segment)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Ids of the events whose newest record is in `segment`, by id: a
    /// scan of the ids its records were written for, not of every event.
    pub fn events_in(&self, segment: u64) -> Vec<u64> {
        let Some(live) = self.live.get(&segment) else {
            return Vec::new();
        };
        self.events
            .range(live.first_id, live.last_id + 1)
            .filter(|(_, e)| e.segment == segment)
            .map(|(id, _)| id)
            .collect()
    }

    /// Remembers that `id` was cancelled, forgetting the lowest id
    /// remembered once there are more than [`CANCELLED_KEPT`].
    pub fn cancel(&mut self, id: u64) {
        self.cancelled.insert(id);
        if self.cancelled.len() > CANCELLED_KEPT {
            self.cancelled.pop_first();
        }
    }

    /// Whether `id` was cancelled (among the newest remembered).
    pub fn was_cancelled(&self, id: u64) -> bool {
        self.cancelled.contains(&id)
    }

    /// Makes due delayed events of queue `q` ready; how many became ready.
    pub fn promote(&mut self, q: u32, now: u64) -> usize {
        let mut promoted = 0;
        loop {
            let queue = &mut self.queues[q as usize];
            let Some(&Reverse((time, id))) = queue.delayed.peek() else {
                return promoted;
            };
            if time > now {
                return promoted;
            }
            queue.delayed.pop();
            let current = self.events.get(&id);
            if current.is_some_and(|e| e.status == Status::Delayed && e.time == time) {
                self.set_status(id, Status::Ready);
                promoted += 1;
            }
        }
    }

    /// The visible time (Unix ms) of queue `q`'s ready event that has waited
    /// longest: the head of the ready order, once the stale entries above it
    /// are dropped, as leasing would drop them.
    ///
    /// That is the event's enqueue time unless it was delayed, retried or
    /// redriven, and then the time it became visible again. The index keeps
    /// no enqueue time (it would grow every event by 8 bytes) and the ready
    /// order is by visible time, so the event enqueued first may sit deeper
    /// in the heap; time spent visible and unleased is also what shows
    /// consumers falling behind, which is what the figure is for.
    pub fn oldest_ready(&mut self, q: u32) -> Option<u64> {
        let mut stale = Vec::new();
        loop {
            stale.clear();
            let mut oldest: Option<u64> = None;
            for (level, (time, id)) in self.queues[q as usize].ready.fronts() {
                let current = self.events.get(&id);
                if current.is_some_and(|e| e.status == Status::Ready && e.time == time) {
                    oldest = Some(oldest.map_or(time, |o| o.min(time)));
                } else {
                    stale.push(level);
                }
            }
            if stale.is_empty() {
                let queue = &self.queues[q as usize];
                let grouped = queue.groups.iter().filter_map(|group| {
                    let id = group.ready.first()?;
                    self.events.get(id).map(|e| e.time)
                });
                return oldest.into_iter().chain(grouped).min();
            }
            for &level in &stale {
                self.queues[q as usize].ready.pop_at(level);
            }
        }
    }

    /// Every event of queue `q`, by id.
    pub fn contents(&self, q: u32) -> Vec<EventView> {
        let mut out: Vec<EventView> = self
            .events
            .iter()
            .filter(|(_, e)| e.queue == q)
            .map(|(id, e)| EventView {
                id,
                status: match e.status {
                    Status::Ready | Status::Delayed => ViewStatus::Waiting,
                    Status::InFlight | Status::Settling => ViewStatus::InFlight,
                    Status::Dead | Status::DeadSettling => ViewStatus::Dead,
                },
                failures: e.failures(),
                time: match e.status {
                    Status::InFlight | Status::Settling => 0,
                    _ => e.time,
                },
                priority: e.priority,
                expires_at: self.expires.get(&id).copied(),
            })
            .collect();
        out.sort_unstable();
        out
    }
}

/// The state a relocated record carries besides the event itself.
#[derive(Debug, Clone, Copy, Default)]
struct Relocation<'a> {
    failures: u32,
    dead_at: Option<u64>,
    last_error: Option<&'a str>,
}

impl<'a> Relocation<'a> {
    fn of(failures: u32, dead_at: Option<u64>, last_error: &'a Option<Cow<'_, str>>) -> Self {
        Relocation {
            failures,
            dead_at,
            last_error: last_error.as_deref(),
        }
    }
}

fn is_waiting(status: Status) -> bool {
    matches!(status, Status::Ready | Status::Delayed)
}

pub(crate) fn waiting_status(visible_at: u64, now: u64) -> Status {
    if visible_at <= now {
        Status::Ready
    } else {
        Status::Delayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_left_by_a_burst_of_retries_is_given_back_but_not_room_in_use() {
        let mut state = State::new(0, 0);
        let q = state.intern("q") as usize;
        // Falling keys: every one but the first comes out of order.
        for i in (0..10_000).rev() {
            state.queues[q].ready.push(0, (i, i));
        }
        state.shrink();
        assert!(
            state.queues[q].ready.heap_capacity() >= 9_999,
            "in use: kept"
        );

        while state.queues[q].ready.len() > 2 {
            state.queues[q].ready.pop();
        }
        state.shrink();
        assert!(state.queues[q].ready.heap_capacity() < 100);
        assert_eq!(state.queues[q].ready.pop(), Some((0, (9_998, 9_998))));
    }
}
