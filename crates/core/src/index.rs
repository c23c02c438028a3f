//! The id index: every live event by id, in pages of consecutive ids.
//!
//! Ids are the broker's own, dense and increasing, so an event's place is
//! its id's offset: a lookup is two array reads, with no hashing. The index
//! grows a page at a time and never moves what it holds, so no request waits
//! for a table to be rebuilt, as a hash map makes one wait each time it
//! doubles (at 7 M events that was two seconds with every request stalled).
//!
//! Events are mostly acked in about the order they came, and a page is freed
//! once it empties. A page whose events linger (dead events, retries with a
//! long backoff) would keep the room of all its slots for them, so once it
//! holds fewer than [`SPARSE_BELOW`], a quarter of its slots, they move to
//! a B-tree of stragglers, which also grows node by node, and the page
//! goes: a page never costs more than 160 bytes a live event, however its
//! events are acked, and a straggler about 60. An id whose page is gone,
//! such as a relocated copy of an old event replayed after the page was
//! freed, goes there too.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Index;

use super::state::Event;

/// Ids per page, a power of two: a page is 40 KiB.
const PAGE_IDS: u64 = 1024;

/// A page that holds fewer live events than this gives them to the stragglers.
const SPARSE_BELOW: u32 = (PAGE_IDS / 4) as u32;

/// The events of `PAGE_IDS` consecutive ids.
pub(crate) struct Page {
    slots: Box<[Option<Event>]>,
    live: u32,
}

impl Page {
    /// An empty page, its memory written once, so that the system has given
    /// the thread that makes it every byte of it.
    pub fn new() -> Self {
        Page {
            slots: vec![None; PAGE_IDS as usize].into_boxed_slice(),
            live: 0,
        }
    }
}

/// Every live event by id.
#[derive(Default)]
pub(crate) struct EventIndex {
    /// Page `first_page + i` holds ids `(first_page + i) * PAGE_IDS ..`;
    /// `None` once freed. Never starts with `None`.
    pages: VecDeque<Option<Page>>,
    first_page: u64,
    /// Events whose page is gone.
    stragglers: BTreeMap<u64, Event>,
    len: usize,
    /// Empty pages made ahead by another thread, taken before new ones.
    spare: Vec<Page>,
}

impl std::fmt::Debug for EventIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventIndex")
            .field("len", &self.len)
            .field("pages", &self.pages.iter().flatten().count())
            .field("stragglers", &self.stragglers.len())
            .field("spare", &self.spare.len())
            .finish()
    }
}

fn split(id: u64) -> (u64, usize) {
    (id / PAGE_IDS, (id % PAGE_IDS) as usize)
}

/// The page an id is in.
pub(crate) fn page_of(id: u64) -> u64 {
    split(id).0
}

impl EventIndex {
    /// Live events.
    pub fn len(&self) -> usize {
        self.len
    }

    fn page(&self, page: u64) -> Option<&Page> {
        let i = usize::try_from(page.checked_sub(self.first_page)?).ok()?;
        self.pages.get(i)?.as_ref()
    }

    fn page_mut(&mut self, page: u64) -> Option<&mut Page> {
        let i = usize::try_from(page.checked_sub(self.first_page)?).ok()?;
        self.pages.get_mut(i)?.as_mut()
    }

    pub fn get(&self, id: &u64) -> Option<&Event> {
        let (page, slot) = split(*id);
        match self.page(page) {
            Some(p) => p.slots[slot].as_ref(),
            None => self.stragglers.get(id),
        }
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Event> {
        let (page, slot) = split(*id);
        if self.page(page).is_some() {
            return self.page_mut(page).and_then(|p| p.slots[slot].as_mut());
        }
        self.stragglers.get_mut(id)
    }

    /// Puts `event` at `id`; the event it replaces, if any.
    pub fn insert(&mut self, id: u64, event: Event) -> Option<Event> {
        let (page, slot) = split(id);
        if page >= self.end() {
            self.grow_to(page);
        }
        let old = match self.page_mut(page) {
            Some(p) => {
                let old = p.slots[slot].replace(event);
                if old.is_none() {
                    p.live += 1;
                }
                old
            }
            None => self.stragglers.insert(id, event),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Takes the event at `id` out.
    pub fn remove(&mut self, id: &u64) -> Option<Event> {
        let (page, slot) = split(*id);
        let Some(p) = self.page_mut(page) else {
            let old = self.stragglers.remove(id);
            self.len -= usize::from(old.is_some());
            return old;
        };
        let old = p.slots[slot].take()?;
        p.live -= 1;
        let live = p.live;
        self.len -= 1;
        if live < SPARSE_BELOW && !self.is_last_page(page) {
            self.retire(page);
        }
        Some(old)
    }

    /// One past the newest page.
    fn end(&self) -> u64 {
        self.first_page + self.pages.len() as u64
    }

    /// Adds pages up to `page`, a new id's, which becomes the newest; pages
    /// between stay unallocated, and the one that was newest may now be
    /// retired like any other.
    fn grow_to(&mut self, page: u64) {
        if let Some(last) = self.end().checked_sub(1) {
            if self.page(last).is_some_and(|p| p.live < SPARSE_BELOW) {
                self.retire(last);
            }
        }
        if self.pages.is_empty() {
            self.first_page = page;
        }
        while self.end() < page {
            self.pages.push_back(None);
        }
        let fresh = self.spare.pop().unwrap_or_else(Page::new);
        self.pages.push_back(Some(fresh));
    }

    /// Keeps empty pages to take before making new ones. Replay has them
    /// made on its decoding thread: a page's memory, written for the first
    /// time, is most of what inserting the events of a page costs.
    pub fn add_spare(&mut self, pages: Vec<Page>) {
        self.spare.extend(pages);
    }

    /// Gives back the spare pages left.
    pub fn drop_spare(&mut self) {
        self.spare = Vec::new();
    }

    /// Whether `page` is the newest, where new ids still go.
    fn is_last_page(&self, page: u64) -> bool {
        page + 1 == self.end()
    }

    /// Frees a page, moving the events left in it to the stragglers.
    fn retire(&mut self, page: u64) {
        let i = (page - self.first_page) as usize;
        let Some(p) = self.pages[i].take() else {
            return;
        };
        let base = page * PAGE_IDS;
        for (slot, event) in p.slots.iter().enumerate() {
            if let Some(event) = event {
                self.stragglers.insert(base + slot as u64, *event);
            }
        }
        while matches!(self.pages.front(), Some(None)) {
            self.pages.pop_front();
            self.first_page += 1;
        }
    }

    /// Every event with an id in `from..to`, by id.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &Event)> {
        let pages = split(from).0.max(self.first_page)..(to / PAGE_IDS + 1).min(self.end());
        let paged = pages
            .filter_map(move |page| Some((page, self.page(page)?)))
            .flat_map(move |(page, p)| {
                p.slots.iter().enumerate().filter_map(move |(slot, e)| {
                    let id = page * PAGE_IDS + slot as u64;
                    e.as_ref()
                        .filter(|_| (from..to).contains(&id))
                        .map(|e| (id, e))
                })
            });
        let mut paged = paged.peekable();
        let mut stragglers = self.stragglers.range(from..to).peekable();
        std::iter::from_fn(move || match (paged.peek(), stragglers.peek()) {
            (Some((a, _)), Some((b, _))) if a < *b => paged.next(),
            (Some(_), Some(_)) | (None, Some(_)) => stragglers.next().map(|(id, e)| (*id, e)),
            (Some(_), None) => paged.next(),
            (None, None) => None,
        })
    }

    /// Every event, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Event)> {
        self.range(0, u64::MAX)
    }

    /// Pages allocated.
    #[cfg(test)]
    pub fn pages(&self) -> usize {
        self.pages.iter().flatten().count()
    }
}

impl Index<&u64> for EventIndex {
    type Output = Event;
    fn index(&self, id: &u64) -> &Event {
        self.get(id).expect("event in the index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Status;
    use event_broker_wal::Position;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn event(n: u64) -> Event {
        let at = Position {
            seq: n,
            segment: n,
            offset: n,
            len: 1,
        };
        Event::new(&at, n, 0, Status::Ready, 0)
    }

    #[test]
    fn pages_left_with_a_few_events_are_freed_and_the_events_kept() {
        let mut index = EventIndex::default();
        for id in 0..10 * PAGE_IDS {
            index.insert(id, event(id));
        }
        assert_eq!(index.pages(), 10);
        // Ack all but one event of each of the first nine pages.
        for id in 0..9 * PAGE_IDS {
            if id % PAGE_IDS != 7 {
                index.remove(&id);
            }
        }
        assert_eq!(index.pages(), 1, "only the newest page is left");
        assert_eq!(index.len(), 9 + PAGE_IDS as usize);
        for page in 0..9 {
            let id = page * PAGE_IDS + 7;
            assert_eq!(index.get(&id), Some(&event(id)));
        }
        let ids: Vec<u64> = index.iter().map(|(id, _)| id).take(10).collect();
        let mut expected: Vec<u64> = (0..9).map(|p| p * PAGE_IDS + 7).collect();
        expected.push(9 * PAGE_IDS);
        assert_eq!(ids, expected, "in id order across stragglers and pages");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Touch(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..5_000).prop_map(Op::Insert),
            3 => (0u64..5_000).prop_map(Op::Remove),
            1 => (0u64..5_000).prop_map(Op::Touch),
        ]
    }

    proptest! {
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..600), from in 0u64..5_000, span in 0u64..5_000) {
            let mut index = EventIndex::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(id) => prop_assert_eq!(index.insert(id, event(id)), model.insert(id, event(id))),
                    Op::Remove(id) => prop_assert_eq!(index.remove(&id), model.remove(&id)),
                    Op::Touch(id) => {
                        if let Some(e) = index.get_mut(&id) {
                            e.set_failures(e.failures() + 1);
                        }
                        if let Some(e) = model.get_mut(&id) {
                            e.set_failures(e.failures() + 1);
                        }
                    }
                }
                prop_assert_eq!(index.len(), model.len());
            }
            let all: Vec<(u64, Event)> = index.iter().map(|(id, e)| (id, *e)).collect();
            let expected: Vec<(u64, Event)> = model.iter().map(|(id, e)| (*id, *e)).collect();
            prop_assert_eq!(all, expected);
            let to = from + span;
            let part: Vec<u64> = index.range(from, to).map(|(id, _)| id).collect();
            let expected: Vec<u64> = model.range(from..to).map(|(id, _)| *id).collect();
            prop_assert_eq!(part, expected);
            for id in 0..5_000 {
                prop_assert_eq!(index.get(&id), model.get(&id));
            }
        }
    }
}
