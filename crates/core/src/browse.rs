//! Browsing a queue without leasing, and cancelling one event.
//!
//! A page walks the id index in id order from `after`, keeping the events of
//! the queue (and state) asked for, and reads each one's record from the log
//! under the state lock, as a dead-letter listing does. The index is global,
//! so a page costs a scan of every live id between its first and last event,
//! whatever their queue.
//!
//! A cancel is written as a [`Record::Purge`] of the one event, whose apply
//! removes an event in any state. While it is written the event is marked
//! settling, as a redrive or purge marks dead events, so that no ack, nack,
//! lease or expiry of it can race the cancel; an event already settling is
//! refused. Receipts are not logged, so which ids were cancelled is kept in
//! memory only, for `not_found` answers to their receipts (`State::cancel`).

use super::delivery::StoredBytes;
use super::queue::Status;
use super::record::Record;
use super::rules::DLQ_LIMIT;
use super::state::Event;
use super::{check_queue_name, Broker, BrokerError, Core, Pending};

/// Where an event is in its lifecycle, as browsing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// Visible now.
    Ready,
    /// Visible later (a delay or a retry backoff).
    Delayed,
    /// Leased.
    InFlight,
    /// In the dead-letter queue.
    Dead,
}

impl EventState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Ready => "ready",
            EventState::Delayed => "delayed",
            EventState::InFlight => "in_flight",
            EventState::Dead => "dead",
        }
    }

    /// The state of that name.
    pub fn from_name(name: &str) -> Option<EventState> {
        [
            EventState::Ready,
            EventState::Delayed,
            EventState::InFlight,
            EventState::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    fn of(status: Status) -> EventState {
        match status {
            Status::Ready => EventState::Ready,
            Status::Delayed => EventState::Delayed,
            Status::InFlight | Status::Settling => EventState::InFlight,
            Status::Dead | Status::DeadSettling => EventState::Dead,
        }
    }
}

/// One event as browsing shows it.
#[derive(Debug, Clone)]
pub struct BrowsedEvent {
    /// Event id.
    pub id: u64,
    /// Where it is in its lifecycle.
    pub state: EventState,
    /// Deliveries so far, the current lease included.
    pub attempt: u32,
    /// Higher is delivered first.
    pub priority: u8,
    /// When it expires (Unix ms), if it does.
    pub expires_at: Option<u64>,
    /// When it is visible (Unix ms): its visible time while waiting, the end
    /// of its lease in flight; `None` when dead.
    pub visible_at: Option<u64>,
    /// When it died (Unix ms), if dead.
    pub dead_at: Option<u64>,
    /// Why its last delivery failed, if it said.
    pub last_error: Option<String>,
    /// When it was enqueued (Unix ms).
    pub enqueued_at: u64,
    pub(crate) stored: StoredBytes,
}

impl BrowsedEvent {
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

/// One page of a browse.
#[derive(Debug, Clone)]
pub struct BrowsePage {
    /// Events by id.
    pub events: Vec<BrowsedEvent>,
    /// The id to pass as `after` for the next page; none on the last page.
    pub next: Option<u64>,
}

impl Broker {
    /// Events of `queue` (in `state` only, when given) with ids above
    /// `after`, up to `limit`, by id, without leasing them.
    pub fn browse(
        &self,
        queue: &str,
        state: Option<EventState>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<BrowsePage, BrokerError> {
        check_queue_name(queue)?;
        DLQ_LIMIT.check("limit", limit as u64)?;
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = self.queue_of(&core, queue)?;
        // Due delayed events are ready, as a lease would find them.
        core.state.promote(q, now.wall);
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut found = core
            .state
            .events
            .range(start, u64::MAX)
            .filter(|(_, e)| e.queue == q)
            .filter(|(_, e)| state.is_none_or(|s| EventState::of(e.status) == s));
        let page: Vec<(u64, Event)> = found.by_ref().take(limit).map(|(id, e)| (id, *e)).collect();
        let next = match found.next() {
            Some(_) => page.last().map(|(id, _)| *id),
            None => None,
        };
        let events = page
            .into_iter()
            .map(|(id, event)| self.browsed(&core, id, &event))
            .collect::<Result<_, _>>()?;
        Ok(BrowsePage { events, next })
    }

    /// One live event of `queue`, without leasing it.
    pub fn browse_one(&self, queue: &str, id: u64) -> Result<BrowsedEvent, BrokerError> {
        check_queue_name(queue)?;
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = self.queue_of(&core, queue)?;
        core.state.promote(q, now.wall);
        let event = *core
            .state
            .events
            .get(&id)
            .filter(|e| e.queue == q)
            .ok_or_else(|| unknown_event(queue, id))?;
        self.browsed(&core, id, &event)
    }

    /// Cancels one event of `queue` in any state: it is gone once durable,
    /// and a receipt of it is answered `not_found` from then on.
    pub fn cancel(&self, queue: &str, id: u64) -> Result<Pending<()>, BrokerError> {
        check_queue_name(queue)?;
        self.check_writable()?;
        let mut core = self.shared.lock();
        let q = self.queue_of(&core, queue)?;
        let from = match core.state.events.get(&id) {
            Some(e) if e.queue == q => e.status,
            _ => return Err(unknown_event(queue, id)),
        };
        let marked = match from {
            Status::Ready | Status::Delayed | Status::InFlight => Status::Settling,
            Status::Dead => Status::DeadSettling,
            Status::Settling | Status::DeadSettling => {
                return Err(BrokerError::EventBusy {
                    queue: queue.to_string(),
                    id,
                })
            }
        };
        core.state.set_status(id, marked);
        let records = vec![Record::Purge { ids: vec![id] }];
        let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
            match result {
                Ok(()) => core.state.cancel(id),
                // The write failed: the event is as it was.
                Err(_) => core.state.set_status(id, from),
            }
            result
        });
        Ok(self.submit(&mut core, records, finish))
    }

    fn queue_of(&self, core: &Core, queue: &str) -> Result<u32, BrokerError> {
        core.state
            .queue_id(queue)
            .ok_or_else(|| BrokerError::UnknownQueue(queue.to_string()))
    }

    /// An event as browsing shows it, its record read from the log; under
    /// the lock, so that cleanup cannot delete the segment being read.
    fn browsed(&self, core: &Core, id: u64, event: &Event) -> Result<BrowsedEvent, BrokerError> {
        let stored = StoredBytes::read(&self.wal, event)?;
        let state = EventState::of(event.status);
        let in_flight = state == EventState::InFlight;
        let (visible_at, dead_at) = match state {
            EventState::Ready | EventState::Delayed => (Some(event.time), None),
            EventState::InFlight => (core.state.leases.get(&id).map(|l| l.expires_wall), None),
            EventState::Dead => (None, Some(event.time)),
        };
        Ok(BrowsedEvent {
            id,
            state,
            attempt: event.failures() + u32::from(in_flight),
            priority: event.priority,
            expires_at: core.state.expires.get(&id).copied(),
            visible_at,
            dead_at,
            last_error: core.state.errors.get(&id).map(|e| e.to_string()),
            enqueued_at: stored.enqueued_at,
            stored,
        })
    }
}

fn unknown_event(queue: &str, id: u64) -> BrokerError {
    BrokerError::UnknownEvent {
        queue: queue.to_string(),
        id,
    }
}
