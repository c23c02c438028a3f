//! Ordering groups: a queue's events that carry the same `group` are
//! delivered in id order, at most `group_concurrency` at once, and a lease
//! takes turns across the groups that have an event to give.
//!
//! - A group's next event is its lowest id waiting; at a concurrency of
//!   one it waits for the event before it to be acked, dead-lettered,
//!   cancelled or expired, and an event waiting for a retry keeps its
//!   group waiting, so the order holds through retries. Above one, order
//!   is not promised: the group's next event is its lowest id ready.
//! - Turns go to the group served longest ago (one never served since the
//!   broker opened first), by the serial of its last lease, then by its
//!   next event's visible time and id; priority comes before turns. The
//!   events without a group take turns as one more group.
//! - A group is kept while any event of it is live, dead ones included;
//!   it goes with its last event, and its turn with it.
//! - A group whose next event is past its expiry gives nothing until the
//!   reaper has expired that event (within one of its rounds): the event
//!   holds its place in the group until it is gone, like any other.
//!
//! Each group that has an event to give has one current entry in the
//! queue's candidates, keyed by its turn. Entries are checked lazily, like
//! the queue's other orders: one that no longer matches its group is
//! dropped when it comes to the top, and every change that could give a
//! group a new key offers it again.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::order::{first_is_left, Order};
use super::queue::Status;
use super::state::State;

/// A group's turn: (priority, highest first; serial of its last lease;
/// its next event's visible time; that event's id), and the group.
pub(crate) type Turn = (Reverse<u8>, u64, u64, u64, u32);

/// One group of a queue.
#[derive(Debug)]
pub(crate) struct Group {
    pub name: Arc<str>,
    /// Live events of the group, dead ones included.
    refs: u64,
    /// Ready and delayed events, by id.
    pub waiting: BTreeSet<u64>,
    /// Ready events, by id.
    pub ready: BTreeSet<u64>,
    /// Leased events, and those whose ack or failure is being written.
    pub in_flight: u32,
    /// Serial of the group's newest lease; 0 if none since the broker opened.
    pub last_served: u64,
    /// The group's newest entry in the candidates, if any.
    pub offered: Option<Turn>,
}

/// A queue's groups.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    by_name: BTreeMap<Arc<str>, u32>,
    /// Boxed, so that growing the vector copies a pointer a group, not
    /// the group, with the state locked.
    slots: Vec<Option<Box<Group>>>,
    free: Vec<u32>,
    /// Groups that may have an event to give, by turn; checked lazily.
    pub candidates: Candidates,
}

/// Turns in two orders: of groups not served since the broker opened
/// (serial 0) and of the others. Each order's keys come nearly in order,
/// new groups' by their first event and served ones' by their newest
/// serial, so each stays a run; in one order every new group would go to
/// its out-of-order heap, which copies itself whole as it grows.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    fresh: Order<Turn>,
    served: Order<Turn>,
}

impl Candidates {
    pub fn push(&mut self, turn: Reverse<Turn>) {
        match turn.0 .1 {
            0 => self.fresh.push(turn),
            _ => self.served.push(turn),
        }
    }

    /// Whether the first turn is a fresh group's (else a served one's).
    fn first_is_fresh(&self) -> Option<bool> {
        first_is_left(self.fresh.peek(), self.served.peek())
    }

    pub fn peek(&self) -> Option<&Reverse<Turn>> {
        match self.first_is_fresh()? {
            true => self.fresh.peek(),
            false => self.served.peek(),
        }
    }

    pub fn pop(&mut self) -> Option<Reverse<Turn>> {
        match self.first_is_fresh()? {
            true => self.fresh.pop(),
            false => self.served.pop(),
        }
    }

    pub fn shrink(&mut self, above: usize) {
        self.fresh.shrink(above);
        self.served.shrink(above);
    }

    /// Room held in the out-of-order heaps.
    #[cfg(test)]
    fn heap_capacity(&self) -> usize {
        self.fresh.heap_capacity() + self.served.heap_capacity()
    }
}

impl Groups {
    /// Whether the queue has no live grouped event: its leases take the
    /// path of a queue without groups.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, g: u32) -> Option<&Group> {
        self.slots.get(g as usize)?.as_deref()
    }

    pub fn get_mut(&mut self, g: u32) -> Option<&mut Group> {
        self.slots.get_mut(g as usize)?.as_deref_mut()
    }

    /// The group named `name`, made if it has no live event yet, with one
    /// more live event counted.
    pub fn join(&mut self, name: &str) -> u32 {
        if let Some(&g) = self.by_name.get(name) {
            self.slots[g as usize].as_mut().expect("named").refs += 1;
            return g;
        }
        let name: Arc<str> = Arc::from(name);
        let group = Box::new(Group {
            name: name.clone(),
            refs: 1,
            waiting: BTreeSet::new(),
            ready: BTreeSet::new(),
            in_flight: 0,
            last_served: 0,
            offered: None,
        });
        let g = match self.free.pop() {
            Some(g) => {
                self.slots[g as usize] = Some(group);
                g
            }
            None => {
                self.slots.push(Some(group));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_name.insert(name, g);
        g
    }

    /// One live event of group `g` fewer; the group goes with its last.
    pub fn leave(&mut self, g: u32) {
        let slot = &mut self.slots[g as usize];
        let group = slot.as_mut().expect("a live event's group");
        group.refs -= 1;
        if group.refs == 0 {
            self.by_name.remove(&group.name);
            *slot = None;
            self.free.push(g);
        }
    }

    /// Every live group.
    pub fn ids(&self) -> Vec<u32> {
        self.by_name.values().copied().collect()
    }

    /// Groups, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.slots.iter().flatten().map(|g| &**g)
    }
}

impl Group {
    /// The event the group would give next, at `concurrency`, if it has
    /// room for one: its lowest id waiting, which must be ready, or above
    /// one its lowest id ready.
    pub fn next(&self, concurrency: u32) -> Option<u64> {
        if self.in_flight >= concurrency {
            return None;
        }
        let first_ready = self.ready.first().copied()?;
        if concurrency == 1 && self.waiting.first() != Some(&first_ready) {
            return None;
        }
        Some(first_ready)
    }
}

/// What the state does with groups.
impl State {
    /// Keeps event `id`'s group in step with its move from `from` to `to`
    /// (`None`: not live), and offers the group its turn again.
    #[inline(always)]
    pub(super) fn regroup(&mut self, id: u64, q: u32, from: Option<Status>, to: Option<Status>) {
        // Inlined down to this check: every status change of every event
        // passes here, and most queues have no group.
        if !self.queues[q as usize].groups.is_empty() {
            self.regroup_in(id, q, from, to);
        }
    }

    #[inline(never)]
    fn regroup_in(&mut self, id: u64, q: u32, from: Option<Status>, to: Option<Status>) {
        let Some(&g) = self.event_groups.get(&id) else {
            return;
        };
        let groups = &mut self.queues[q as usize].groups;
        let group = groups.get_mut(g).expect("a live event's group");
        let waiting = |s: Option<Status>| matches!(s, Some(Status::Ready | Status::Delayed));
        let flying = |s: Option<Status>| matches!(s, Some(Status::InFlight | Status::Settling));
        let ready = |s: Option<Status>| s == Some(Status::Ready);
        match (waiting(from), waiting(to)) {
            (true, false) => {
                group.waiting.remove(&id);
            }
            (false, true) => {
                group.waiting.insert(id);
            }
            _ => {}
        }
        match (ready(from), ready(to)) {
            (true, false) => {
                group.ready.remove(&id);
            }
            (false, true) => {
                group.ready.insert(id);
            }
            _ => {}
        }
        match (flying(from), flying(to)) {
            (true, false) => group.in_flight -= 1,
            (false, true) => group.in_flight += 1,
            _ => {}
        }
        if to.is_none() {
            self.event_groups.remove(&id);
            groups.leave(g);
        }
        self.offer(q, g);
    }

    /// Group `g`'s turn now, if it has an event to give.
    fn turn_of(&self, q: u32, g: u32) -> Option<Turn> {
        let queue = &self.queues[q as usize];
        let group = queue.groups.get(g)?;
        let id = group.next(queue.flow.group_concurrency.unwrap_or(1))?;
        let event = self.events.get(&id)?;
        Some((
            Reverse(event.priority),
            group.last_served,
            event.time,
            id,
            g,
        ))
    }

    /// Puts group `g` among the candidates at its turn now, unless it has
    /// nothing to give or is there at that turn already.
    pub(super) fn offer(&mut self, q: u32, g: u32) {
        let Some(turn) = self.turn_of(q, g) else {
            return;
        };
        let groups = &mut self.queues[q as usize].groups;
        let group = groups.get_mut(g).expect("a group with a turn");
        if group.offered != Some(turn) {
            group.offered = Some(turn);
            groups.candidates.push(Reverse(turn));
        }
    }

    /// The candidate whose turn it is: the top entry once the stale ones
    /// above it are dropped, and those of groups whose next event is past
    /// its expiry.
    pub(super) fn first_turn(&mut self, q: u32, now: u64) -> Option<Turn> {
        loop {
            let &Reverse(turn) = self.queues[q as usize].groups.candidates.peek()?;
            let (_, _, _, id, g) = turn;
            let current = self.turn_of(q, g) == Some(turn);
            let expired = current && self.is_expired(id, q, now);
            if current && !expired {
                return Some(turn);
            }
            let groups = &mut self.queues[q as usize].groups;
            groups.candidates.pop();
            let Some(group) = groups.get_mut(g) else {
                continue;
            };
            if group.offered == Some(turn) {
                group.offered = None;
                // An event past its expiry keeps its place, so that order
                // holds, until the reaper takes it, which offers the group
                // again; any other change of the group is offered now.
                if !expired {
                    self.offer(q, g);
                }
            }
        }
    }

    /// Takes the top candidate, which [`State::first_turn`] named.
    pub(super) fn take_turn(&mut self, q: u32, g: u32) {
        let groups = &mut self.queues[q as usize].groups;
        groups.candidates.pop();
        if let Some(group) = groups.get_mut(g) {
            group.offered = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_goes_with_its_last_event_and_its_slot_is_used_again() {
        let mut groups = Groups::default();
        let a = groups.join("a");
        assert_eq!(groups.join("a"), a);
        let b = groups.join("b");
        groups.leave(a);
        assert!(groups.get(a).is_some(), "one event of a is left");
        groups.leave(a);
        assert!(groups.get(a).is_none());
        assert_eq!(groups.ids(), vec![b]);
        assert_eq!(groups.join("c"), a, "the freed slot");
    }

    #[test]
    fn new_groups_among_served_ones_keep_to_the_runs() {
        let mut candidates = Candidates::default();
        let turn = |served: u64, id: u64| Reverse((Reverse(0), served, id, id, id as u32));
        // Served groups come back with rising serials while new groups,
        // never served, arrive by rising ids: each order stays a run.
        for i in 1..=10_000u64 {
            candidates.push(turn(100 + i, i));
            candidates.push(turn(0, 50_000 + i));
        }
        assert_eq!(candidates.heap_capacity(), 0);
        assert_eq!(candidates.pop(), Some(turn(0, 50_001)), "new groups first");
        for _ in 1..10_000 {
            candidates.pop();
        }
        assert_eq!(candidates.peek(), Some(&turn(101, 1)));
    }

    #[test]
    fn at_one_at_a_time_a_waiting_event_holds_back_the_ready_ones_after_it() {
        let mut groups = Groups::default();
        let g = groups.join("g");
        let group = groups.get_mut(g).unwrap();
        group.waiting.extend([3, 5]);
        group.ready.insert(5);
        assert_eq!(group.next(1), None, "3 waits for a retry");
        assert_eq!(group.next(2), Some(5));
        group.in_flight = 2;
        assert_eq!(group.next(2), None, "no room");
    }
}
