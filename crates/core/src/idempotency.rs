//! Idempotency keys: within the window after an enqueue, the same key on the
//! same queue names the same event.

use std::collections::BTreeMap;

use super::chunked::ChunkedDeque;

#[derive(Debug)]
pub(crate) struct Idempotency {
    window_ms: u64,
    /// queue → key → (event id, expiry in Unix ms); nested so that a
    /// lookup by `&str` needs no allocation. B-trees and a chunked queue,
    /// which grow a node or a chunk at a time: a hash map or a `VecDeque`
    /// of millions of keys would copy itself whole, with the state locked.
    keys: BTreeMap<u32, BTreeMap<Box<str>, (u64, u64)>>,
    /// Keys in the order they were added, to expire them without a scan.
    order: ChunkedDeque<(u64, u32, Box<str>)>,
}

impl Idempotency {
    pub fn new(window_ms: u64) -> Self {
        Idempotency {
            window_ms,
            keys: BTreeMap::new(),
            order: ChunkedDeque::default(),
        }
    }

    /// How long a key names its event.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The event a key names, if its window is still open.
    pub fn get(&self, queue: u32, key: &str, now: u64) -> Option<u64> {
        let (id, expires) = self.keys.get(&queue)?.get(key)?;
        (*expires > now).then_some(*id)
    }

    /// Remembers a key of an event enqueued at `enqueued_at`, unless its window has passed.
    pub fn insert(&mut self, queue: u32, key: &str, id: u64, enqueued_at: u64, now: u64) {
        let expires = enqueued_at.saturating_add(self.window_ms);
        if expires <= now || self.get(queue, key, now).is_some() {
            return;
        }
        self.keys
            .entry(queue)
            .or_default()
            .insert(Box::from(key), (id, expires));
        self.order.push_back((expires, queue, Box::from(key)));
    }

    /// Forgets every key of `queue`, which was deleted; the entries of the
    /// expiry order go as they come due.
    pub fn forget_queue(&mut self, queue: u32) {
        self.keys.remove(&queue);
    }

    /// Forgets keys whose window has passed; the earliest expiry left, if any.
    pub fn expire(&mut self, now: u64) -> Option<u64> {
        while let Some((expires, _, _)) = self.order.front() {
            if *expires > now {
                return Some(*expires);
            }
            let (expires, queue, key) = self.order.pop_front().expect("front exists");
            if let Some(keys) = self.keys.get_mut(&queue) {
                if keys.get(&key).is_some_and(|(_, e)| *e == expires) {
                    keys.remove(&key);
                }
            }
        }
        None
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_its_event_until_the_window_closes() {
        let mut keys = Idempotency::new(1_000);
        keys.insert(0, "k", 7, 10_000, 10_000);
        assert_eq!(keys.get(0, "k", 10_999), Some(7));
        assert_eq!(keys.get(1, "k", 10_999), None, "keys are per queue");
        assert_eq!(keys.get(0, "k", 11_000), None);
        assert_eq!(keys.expire(11_000), None);
        assert_eq!(keys.len(), 0);
        keys.insert(0, "k", 9, 11_000, 11_000);
        assert_eq!(keys.get(0, "k", 11_500), Some(9));
    }

    #[test]
    fn a_key_older_than_the_window_is_not_remembered() {
        let mut keys = Idempotency::new(1_000);
        keys.insert(0, "k", 7, 10_000, 11_000);
        assert_eq!(keys.get(0, "k", 10_500), None);
    }
}
