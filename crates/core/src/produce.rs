//! Enqueueing: validation, idempotency, the queue size limit, and the
//! all-or-nothing write of a batch.

use std::borrow::Cow;
use std::collections::HashMap;

use tokio::sync::oneshot;

use super::record::{Extra, Record, Stored};
use super::rules;
use super::{check_queue_name, Broker, BrokerError, Core, Pending};

/// The longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
/// The longest delay: 30 days.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

/// An event to enqueue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    /// The payload as the exact JSON text received.
    pub payload: Vec<u8>,
    /// Headers as a JSON object's text; empty for none.
    pub headers: Vec<u8>,
    /// Not deliverable before now + this.
    pub delay_ms: u64,
    /// Same key on the same queue within the window: the first event's id, nothing stored.
    pub idempotency_key: Option<String>,
    /// Higher is delivered first.
    pub priority: u8,
    /// Expires this long after it is enqueued; `None`: as its queue's
    /// `message_ttl_ms` says.
    pub ttl_ms: Option<u64>,
    /// Its ordering group: the group's events are delivered in id order,
    /// `group_concurrency` at a time.
    pub group: Option<String>,
}

/// The answer for one enqueued event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's id (the first event's, for a duplicate).
    pub id: u64,
    /// True when the idempotency key named an earlier event and nothing was stored.
    pub duplicate: bool,
    /// When the event expires (Unix ms), if it does.
    pub expires_at: Option<u64>,
}

/// An enqueue decided: written, or waiting for an enqueue of the same key.
enum Attempt {
    Submitted(Pending<Vec<Enqueued>>),
    /// An earlier enqueue with one of the keys is being written; try again once it is done.
    Wait(oneshot::Receiver<()>),
}

impl Broker {
    /// Enqueues events on `queue` (created on first use), all or none.
    pub async fn enqueue(
        &self,
        queue: &str,
        events: &[NewEvent],
    ) -> Result<Vec<Enqueued>, BrokerError> {
        loop {
            match self.try_enqueue(queue, events)? {
                Attempt::Submitted(pending) => return pending.result().await,
                Attempt::Wait(done) => {
                    let _settled = done.await;
                }
            }
        }
    }

    /// [`Broker::enqueue`] for plain threads.
    pub fn enqueue_blocking(
        &self,
        queue: &str,
        events: &[NewEvent],
    ) -> Result<Vec<Enqueued>, BrokerError> {
        loop {
            match self.try_enqueue(queue, events)? {
                Attempt::Submitted(pending) => return pending.wait(),
                Attempt::Wait(done) => {
                    let _settled = done.blocking_recv();
                }
            }
        }
    }

    fn try_enqueue(&self, queue: &str, events: &[NewEvent]) -> Result<Attempt, BrokerError> {
        check_queue_name(queue)?;
        self.check_events(events)?;
        self.check_writable()?;
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = core.state.intern(queue);
        let mut answers = Vec::with_capacity(events.len());
        let mut new_keys: HashMap<&str, (u64, Option<u64>)> = HashMap::new();
        let settings = self.settings_of(&core, q);
        let queue_ttl = settings.message_ttl_ms;
        let ttl_ms = |event: &NewEvent| event.ttl_ms.or(queue_ttl);
        let mut fresh = Vec::new();
        core.next_id = core.next_id.max(core.state.next_id);
        let first_id = core.next_id;
        for event in events {
            let expires_at = ttl_ms(event).map(|ttl| now.wall + ttl);
            let Some(key) = event.idempotency_key.as_deref() else {
                fresh.push((event, expires_at));
                answers.push((first_id + fresh.len() as u64 - 1, false, expires_at));
                continue;
            };
            if let Some(id) = core.state.idempotency.get(q, key, now.wall) {
                let expires_at = core.state.expires.get(&id).copied();
                answers.push((id, true, expires_at));
            } else if let Some(waiters) = core.pending_keys.get_mut(&(q, Box::from(key))) {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                return Ok(Attempt::Wait(rx));
            } else if let Some(&(id, expires_at)) = new_keys.get(key) {
                answers.push((id, true, expires_at));
            } else {
                fresh.push((event, expires_at));
                let id = first_id + fresh.len() as u64 - 1;
                new_keys.insert(key, (id, expires_at));
                answers.push((id, false, expires_at));
            }
        }
        let answers: Vec<Enqueued> = answers
            .into_iter()
            .map(|(id, duplicate, expires_at)| Enqueued {
                id,
                duplicate,
                expires_at,
            })
            .collect();
        if fresh.is_empty() {
            return Ok(Attempt::Submitted(Pending::done(Ok(answers))));
        }
        let adding = fresh.len() as u64;
        let max = settings.max_size;
        if adding > max {
            return Err(BrokerError::BatchOverQueueSize { adding, max });
        }
        let pending = core.state.queues[q as usize].pending();
        if pending + adding > max {
            return Err(BrokerError::QueueFull {
                queue: queue.to_string(),
                pending,
                adding,
                max,
            });
        }
        core.next_id += adding;
        core.state.queues[q as usize].reserved += adding;
        let keys: Vec<(u32, Box<str>)> = new_keys.keys().map(|k| (q, Box::from(*k))).collect();
        for key in &keys {
            core.pending_keys.insert(key.clone(), Vec::new());
        }
        let records = fresh
            .iter()
            .enumerate()
            .map(|(i, (event, expires_at))| {
                let stored = Stored {
                    id: first_id + i as u64,
                    queue: Cow::Borrowed(queue),
                    enqueued_at: now.wall,
                    visible_at: now.wall + event.delay_ms,
                    idempotency_key: event.idempotency_key.as_deref().map(Cow::Borrowed),
                    headers: Cow::Borrowed(&event.headers),
                    payload: Cow::Borrowed(&event.payload),
                };
                let extra = Extra {
                    priority: event.priority,
                    expires_at: *expires_at,
                };
                Record::enqueue(stored, extra, event.group.as_deref().map(Cow::Borrowed))
            })
            .collect();
        let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
            core.state.queues[q as usize].reserved -= adding;
            for key in keys {
                for waiter in core.pending_keys.remove(&key).unwrap_or_default() {
                    let _gone = waiter.send(());
                }
            }
            result.map(|()| answers)
        });
        Ok(Attempt::Submitted(self.submit(&mut core, records, finish)))
    }

    fn check_events(&self, events: &[NewEvent]) -> Result<(), BrokerError> {
        self.limits.events().check("events", events.len())?;
        for (i, event) in events.iter().enumerate() {
            if event.payload.len() > self.limits.max_payload_bytes {
                return Err(BrokerError::PayloadTooLarge {
                    field: format!("events[{i}].payload"),
                    len: event.payload.len(),
                    max: self.limits.max_payload_bytes,
                });
            }
            if !rules::DELAY_MS.contains(event.delay_ms) {
                let field = format!("events[{i}].delay_ms");
                return Err(rules::DELAY_MS.refuse(field, event.delay_ms));
            }
            if let Some(ttl) = event.ttl_ms {
                if !rules::MESSAGE_TTL_MS.contains(ttl) {
                    return Err(rules::MESSAGE_TTL_MS.refuse(format!("events[{i}].ttl_ms"), ttl));
                }
            }
            if let Some(group) = &event.group {
                if !rules::GROUP.allows(group) {
                    return Err(rules::GROUP.refuse(format!("events[{i}].group"), group));
                }
            }
            if let Some(key) = &event.idempotency_key {
                if !rules::IDEMPOTENCY_KEY.allows(key) {
                    let field = format!("events[{i}].idempotency_key");
                    return Err(rules::IDEMPOTENCY_KEY.refuse(field, key));
                }
            }
        }
        Ok(())
    }
}
