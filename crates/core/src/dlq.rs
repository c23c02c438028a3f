//! Dead-letter queues: listing, redrive and purge.

use super::delivery::{DeadEvent, DlqPage, StoredBytes};
use super::queue::Status;
use super::record::Record;
use super::rules;
use super::{check_queue_name, Broker, BrokerError, Core, Pending};

/// The largest page of a dead-letter listing.
pub const MAX_DLQ_PAGE: usize = 1_000;

impl Broker {
    /// Dead events of `queue` with ids above `after`, up to `limit`, by id.
    pub fn dlq(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<DlqPage, BrokerError> {
        check_queue_name(queue)?;
        rules::DLQ_LIMIT.check("limit", limit as u64)?;
        let core = self.shared.lock();
        let q = self.existing(&core, queue)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut ids = core.state.queues[q as usize].dead.range(start..);
        let page: Vec<u64> = ids.by_ref().take(limit).copied().collect();
        let next = match ids.next() {
            Some(_) => page.last().copied(),
            None => None,
        };
        let events = page
            .into_iter()
            .map(|id| {
                let event = core.state.events[&id];
                let stored = StoredBytes::read(&self.wal, &event)?;
                Ok(DeadEvent {
                    id,
                    attempts: event.failures(),
                    last_error: core.state.errors.get(&id).map(|e| e.to_string()),
                    dead_at: event.time,
                    priority: event.priority,
                    enqueued_at: stored.enqueued_at,
                    stored,
                })
            })
            .collect::<Result<_, BrokerError>>()?;
        Ok(DlqPage { events, next })
    }

    /// Sends dead events (the given ones, or all when `None`) back to ready
    /// with their failures forgotten; answers how many went.
    pub fn redrive(&self, queue: &str, ids: Option<&[u64]>) -> Result<Pending<u64>, BrokerError> {
        self.take_dead(queue, ids, |ids, at| Record::Redrive { ids, at })
    }

    /// Deletes dead events (the given ones, or all when `None`); answers how many went.
    pub fn purge(&self, queue: &str, ids: Option<&[u64]>) -> Result<Pending<u64>, BrokerError> {
        self.take_dead(queue, ids, |ids, _| Record::Purge { ids })
    }

    fn existing(&self, core: &Core, queue: &str) -> Result<u32, BrokerError> {
        core.state
            .queue_id(queue)
            .ok_or_else(|| BrokerError::UnknownQueue(queue.to_string()))
    }

    fn take_dead(
        &self,
        queue: &str,
        ids: Option<&[u64]>,
        record: impl FnOnce(Vec<u64>, u64) -> Record<'static>,
    ) -> Result<Pending<u64>, BrokerError> {
        check_queue_name(queue)?;
        self.check_writable()?;
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = self.existing(&core, queue)?;
        let dead = &core.state.queues[q as usize].dead;
        let mut chosen: Vec<u64> = match ids {
            Some(ids) => ids.iter().copied().filter(|id| dead.contains(id)).collect(),
            None => dead.iter().copied().collect(),
        };
        chosen.sort_unstable();
        chosen.dedup();
        chosen.retain(|id| core.state.events[id].status == Status::Dead);
        if chosen.is_empty() {
            return Ok(Pending::done(Ok(0)));
        }
        for id in &chosen {
            core.state.set_status(*id, Status::DeadSettling);
        }
        let count = chosen.len() as u64;
        let records = vec![record(chosen.clone(), now.wall)];
        let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
            if result.is_err() {
                for id in &chosen {
                    core.state.set_status(*id, Status::Dead);
                }
            }
            result.map(|()| count)
        });
        Ok(self.submit(&mut core, records, finish))
    }
}
