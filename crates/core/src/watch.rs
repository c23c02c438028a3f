//! The per-queue notifications long polls wait on.
//!
//! A notification exists only while a long poll waits on it. Any name can be
//! polled, the names of queues that do not exist included, so keeping one per
//! name ever polled would let anyone who can reach the API grow the process
//! without bound; and a [`Notify`] woken with `notify_waiters` keeps nothing
//! for later waiters, so one nobody waits on carries nothing worth keeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The notifications of the queues long polls wait on, by queue name.
#[derive(Debug, Default)]
pub(crate) struct Notifiers {
    map: Mutex<HashMap<Arc<str>, Arc<Notify>>>,
}

/// One long poll's hold on its queue's notification; the notification goes
/// when the last hold on it is dropped, however the poll ended (an answer,
/// an error, or a client that went away and dropped the request).
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    notifiers: &'a Notifiers,
    name: Arc<str>,
    notify: Arc<Notify>,
}

impl Notifiers {
    /// Holds `queue`'s notification, made if nobody waits on it yet.
    pub fn watch(&self, queue: &str) -> Watch<'_> {
        let mut map = self.map.lock().expect("notifier lock");
        let (name, notify) = match map.get_key_value(queue) {
            Some((name, notify)) => (name.clone(), notify.clone()),
            None => {
                let (name, notify) = (Arc::<str>::from(queue), Arc::new(Notify::new()));
                map.insert(name.clone(), notify.clone());
                (name, notify)
            }
        };
        Watch {
            notifiers: self,
            name,
            notify,
        }
    }

    /// Wakes every long poll waiting on one of `queues`.
    pub fn wake(&self, queues: &[Arc<str>]) {
        if queues.is_empty() {
            return;
        }
        let map = self.map.lock().expect("notifier lock");
        for q in queues {
            if let Some(n) = map.get(q) {
                n.notify_waiters();
            }
        }
    }

    /// Queues with at least one long poll waiting.
    pub fn watched(&self) -> usize {
        self.map.lock().expect("notifier lock").len()
    }
}

impl Watch<'_> {
    /// The notification, to wait on.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut map = self.notifiers.map.lock().expect("notifier lock");
        // Holds are only taken under this lock, so a count of two (the map's
        // and this one) cannot grow before the entry is removed.
        let last = map
            .get(&self.name)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify) && Arc::strong_count(n) == 2);
        if last {
            map.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_lasts_as_long_as_someone_holds_it() {
        let notifiers = Notifiers::default();
        let first = notifiers.watch("orders");
        let second = notifiers.watch("orders");
        let other = notifiers.watch("other");
        assert!(Arc::ptr_eq(&first.notify, &second.notify), "one per queue");
        assert_eq!(notifiers.watched(), 2);
        drop(first);
        assert_eq!(notifiers.watched(), 2, "the second poll still waits");
        drop(second);
        assert_eq!(notifiers.watched(), 1);
        drop(other);
        assert_eq!(notifiers.watched(), 0);
    }
}
