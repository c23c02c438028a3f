//! Deleting a queue: its events in every state, its settings and its
//! subscription go in one [`Record::DeleteQueue`], applied like any record,
//! so a replay deletes the queue where the live path did.
//!
//! While the record is written, the queue is marked deleting: cleanup
//! copies none of its events forward (a copy after the record would bring
//! the event back) and a second deletion is refused. A deletion is refused
//! while an event of the queue is settling (an ack, nack, expiry, redrive,
//! purge or cancel being written), as a cancel is: the client tries again.

use std::borrow::Cow;
use std::sync::Arc;

use super::queue::Status;
use super::record::Record;
use super::{check_queue_name, Broker, BrokerError, Core};

impl Broker {
    /// Deletes `queue` with all its events, its settings and its
    /// subscription; done once the deletion is durable. Long polls waiting
    /// on it answer empty, and receipts of its events `not_found`.
    pub async fn delete_queue(&self, queue: &str) -> Result<(), BrokerError> {
        check_queue_name(queue)?;
        self.check_writable()?;
        // Held until the record is applied: cleanup writes none of the
        // queue's settings or subscription forward after the deletion.
        let _one_at_a_time = self.forwarded.lock().await;
        let pending = {
            let mut core = self.shared.lock();
            let q = core
                .state
                .queue_id(queue)
                .ok_or_else(|| BrokerError::UnknownQueue(queue.to_string()))?;
            let busy = core.state.queues[q as usize].deleting
                || core.state.events.iter().any(|(_, e)| {
                    e.queue == q && matches!(e.status, Status::Settling | Status::DeadSettling)
                });
            if busy {
                return Err(BrokerError::QueueBusy(queue.to_string()));
            }
            core.state.queues[q as usize].deleting = true;
            let record = Record::DeleteQueue {
                queue: Cow::Owned(queue.to_string()),
            };
            let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
                core.state.queues[q as usize].deleting = false;
                result
            });
            self.submit(&mut core, vec![record], finish)
        };
        pending.result().await?;
        // Its waiting polls look again and find no queue; webhook workers
        // find no subscription.
        self.shared.wake(&[Arc::from(queue)]);
        self.subscriptions_changed.send_modify(|n| *n += 1);
        Ok(())
    }
}
