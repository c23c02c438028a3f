//! Consuming: lease (with long polling), ack, nack and extend.

use std::borrow::Cow;
use std::time::Duration;

use super::delivery::{Delivery, StoredBytes};
use super::expiry::expire_record;
use super::lease::{Receipt, ReceiptStatus};
use super::queue::Status;
use super::record::Record;
use super::rules;
use super::state::Now;
use super::{check_queue_name, Broker, BrokerError, Core, Pending};

/// The longest lease a consumer may ask for: 12 hours.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// The longest error text a nack may keep with a failed delivery.
pub const MAX_ERROR_CHARS: usize = 4096;

/// The outcome for one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptResult {
    /// The receipt as given.
    pub receipt: String,
    /// What happened.
    pub status: ReceiptStatus,
}

/// What the reaper and nack write for a failed delivery.
pub(crate) struct Failure<'a> {
    pub id: u64,
    pub failures_before: u32,
    pub delay_ms: Option<u64>,
    pub error: Option<&'a str>,
}

impl Broker {
    /// Leases up to `max` ready events of `queue` for `visibility`
    /// (the queue's timeout when `None`); empty when none is ready or the
    /// queue is paused.
    pub fn lease(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
    ) -> Result<Vec<Delivery>, BrokerError> {
        check_queue_name(queue)?;
        self.limits.lease_max().check("max", max as u64)?;
        check_lease_length(visibility)?;
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let Some(q) = core.state.queue_id(queue) else {
            return Ok(Vec::new());
        };
        let settings = self.settings_of(&core, q);
        if settings.paused {
            return Ok(Vec::new());
        }
        let timeout = visibility.unwrap_or(settings.visibility_timeout());
        core.state.fit_limiters(q, &self.shared.clock);
        let leased = core.state.lease(q, max, timeout, now);
        let name = core.state.queues[q as usize].name.clone();
        // Read under the lock: cleanup cannot delete a segment being read.
        let read = leased
            .into_iter()
            .map(|l| Ok((l, StoredBytes::read(&self.wal, &l.event)?)))
            .collect::<Result<Vec<_>, BrokerError>>()?;
        drop(core);
        // Signed after: a MAC per event would lengthen the lock's hold.
        Ok(read
            .into_iter()
            .map(|(l, stored)| Delivery {
                id: l.id,
                queue: name.clone(),
                attempt: l.event.failures() + 1,
                priority: l.event.priority,
                enqueued_at: stored.enqueued_at,
                expires_at: l.expires_at,
                receipt: self.receipts.sign(l.id, l.serial),
                lease_expires_at: l.expires_wall,
                stored,
            })
            .collect())
    }

    /// Like [`Broker::lease`], but when nothing is ready (or the queue is
    /// paused) waits up to `wait` for an event to become ready (or the
    /// queue to be resumed), without polling; answers empty once the queue
    /// is deleted.
    pub async fn lease_wait(
        &self,
        queue: &str,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        // Before the wait is registered: a bad name must leave nothing behind.
        check_queue_name(queue)?;
        let until = tokio::time::Instant::now() + wait;
        let watch = self.shared.notifiers.watch(queue);
        let deletions = self.shared.lock().state.deletions(queue);
        loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake between the look and the wait is kept.
            notified.as_mut().enable();
            let got = self.lease(queue, max, visibility)?;
            let now = tokio::time::Instant::now();
            // A poll of a queue deleted meanwhile answers empty at once.
            let deleted = self.shared.lock().state.deletions(queue) != deletions;
            if !got.is_empty() || now >= until || deleted {
                return Ok(got);
            }
            let wake_at = self
                .next_visible(queue)
                .map_or(until, |d| until.min(now + d));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Queues that long polls wait on now: a queue has a notification only
    /// while at least one waits on it.
    pub fn long_polled_queues(&self) -> usize {
        self.shared.notifiers.watched()
    }

    /// How long until the queue's next delayed event is due, or a rate
    /// limit that held back the last lease has room; `None` while it is
    /// paused, as nothing can be leased until a resume wakes the poll.
    /// Room under `max_in_flight` or in a group comes with an ack or a
    /// failure, which wakes the poll.
    fn next_visible(&self, queue: &str) -> Option<Duration> {
        let now = self.shared.now();
        let core = self.shared.lock();
        let q = core.state.queue_id(queue)?;
        let queue = &core.state.queues[q as usize];
        if queue.settings.paused {
            return None;
        }
        let due = queue
            .delayed
            .peek()
            .map(|std::cmp::Reverse((at, _))| Duration::from_millis(at.saturating_sub(now.wall)));
        let room = queue
            .rate_wait
            .map(|at| at.saturating_duration_since(now.mono));
        due.into_iter().chain(room).min()
    }

    /// Acks by receipt: the events are gone once the answer is there.
    pub fn ack(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> Result<Pending<Vec<ReceiptResult>>, BrokerError> {
        self.settle(queue, receipts, false, |_core, ids, _now| {
            vec![Record::Ack { ids: ids.to_vec() }]
        })
    }

    /// Fails deliveries by receipt: each event is retried after `delay_ms`
    /// (its backoff when `None`), or dead-lettered past its queue's
    /// `max_retries`.
    pub fn nack(
        &self,
        queue: &str,
        receipts: &[String],
        delay_ms: Option<u64>,
        error: Option<&str>,
    ) -> Result<Pending<Vec<ReceiptResult>>, BrokerError> {
        if let Some(error) = error {
            rules::NACK_ERROR.check("error", error)?;
        }
        if let Some(delay) = delay_ms {
            rules::DELAY_MS.check("delay_ms", delay)?;
        }
        self.settle(queue, receipts, true, |core, ids, now| {
            ids.iter()
                .map(|&id| {
                    let failure = Failure {
                        id,
                        failures_before: core.state.events[&id].failures(),
                        delay_ms,
                        error,
                    };
                    self.failure_record(core, &failure, now)
                })
                .collect()
        })
    }

    /// The record for a failed delivery: a retry, or death past the
    /// `max_retries` of the event's queue, by the queue's settings now; an
    /// expiry once the event is past its TTL.
    pub(super) fn failure_record<'a>(&self, core: &Core, f: &Failure<'a>, now: Now) -> Record<'a> {
        let q = core.state.events[&f.id].queue;
        let settings = self.settings_of(core, q);
        // A lease may outlive its event's expiry, but no retry does.
        if core.state.is_expired(f.id, q, now.wall) {
            return expire_record(vec![f.id], settings.dead_letter_expired, now.wall);
        }
        let failures = f.failures_before + 1;
        let error = f.error.map(Cow::Borrowed);
        if failures > settings.max_retries {
            return Record::Dead {
                id: f.id,
                failures,
                dead_at: now.wall,
                error,
            };
        }
        let delay = f.delay_ms.unwrap_or_else(|| {
            let backoff = settings.backoff(self.limits.backoff.seed);
            backoff.delay_ms(f.id, failures)
        });
        Record::Fail {
            id: f.id,
            failures,
            visible_at: now.wall + delay,
            error,
        }
    }

    /// Gives current leases a new deadline `visibility` from now (the
    /// queue's timeout when `None`).
    pub fn extend(
        &self,
        queue: &str,
        receipts: &[String],
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceiptResult>, BrokerError> {
        check_queue_name(queue)?;
        self.check_receipt_count(receipts)?;
        check_lease_length(visibility)?;
        let named = self.read_receipts(receipts);
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = core.state.slot(queue);
        let timeout = match (visibility, q) {
            (Some(asked), _) => asked,
            (None, Some(q)) => self.settings_of(&core, q).visibility_timeout(),
            // No queue, so no lease to extend.
            (None, None) => self.limits.visibility_timeout,
        };
        Ok(receipts
            .iter()
            .zip(named)
            .map(|(text, named)| {
                let status = match (q, named) {
                    (Some(q), Some((id, Some(serial)))) => {
                        core.state.extend(q, (id, serial), timeout, now)
                    }
                    (q, Some((id, serial))) => core.state.check_receipt(q, id, serial),
                    (_, None) => ReceiptStatus::NotFound,
                };
                ReceiptResult {
                    receipt: text.clone(),
                    status,
                }
            })
            .collect())
    }

    fn check_receipt_count(&self, receipts: &[String]) -> Result<(), BrokerError> {
        self.limits.receipts().check("receipts", receipts.len())
    }

    /// For each receipt, the event it names and, when this broker wrote it,
    /// the lease; `None` for text that is no receipt. Checked before the
    /// state is locked, so the MACs do not lengthen the lock's hold.
    fn read_receipts(&self, receipts: &[String]) -> Vec<Option<(u64, Option<u64>)>> {
        receipts
            .iter()
            .map(|text| {
                let receipt = text.parse::<Receipt>().ok()?;
                let serial = self.receipts.verify(&receipt).then_some(receipt.serial);
                Some((receipt.id, serial))
            })
            .collect()
    }

    /// Checks receipts, marks their events settling, writes what `records`
    /// makes of them, and answers per receipt once that is durable.
    fn settle<'r>(
        &self,
        queue: &str,
        receipts: &[String],
        nack: bool,
        records: impl FnOnce(&Core, &[u64], Now) -> Vec<Record<'r>>,
    ) -> Result<Pending<Vec<ReceiptResult>>, BrokerError> {
        check_queue_name(queue)?;
        self.check_receipt_count(receipts)?;
        self.check_writable()?;
        let named = self.read_receipts(receipts);
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let q = core.state.slot(queue);
        let mut ids = Vec::new();
        let results: Vec<ReceiptResult> = receipts
            .iter()
            .zip(named)
            .map(|(text, named)| {
                let status = match named {
                    Some((id, serial)) => {
                        let status = core.state.check_receipt(q, id, serial);
                        if status == ReceiptStatus::Ok {
                            core.state.set_status(id, Status::Settling);
                            ids.push(id);
                        }
                        status
                    }
                    None => ReceiptStatus::NotFound,
                };
                ReceiptResult {
                    receipt: text.clone(),
                    status,
                }
            })
            .collect();
        if ids.is_empty() {
            return Ok(Pending::done(Ok(results)));
        }
        let records = records(&core, &ids, now);
        let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
            match (&result, q) {
                (Err(_), _) => {
                    for id in &ids {
                        core.state.set_status(*id, Status::InFlight);
                    }
                }
                (Ok(()), Some(q)) if nack => {
                    core.state.queues[q as usize].stats.nacked_total += ids.len() as u64;
                }
                _ => {}
            }
            result.map(|()| results)
        });
        Ok(self.submit(&mut core, records, finish))
    }
}

/// Checks a lease length a consumer asked for; a queue's own is checked
/// when it is set.
fn check_lease_length(visibility: Option<Duration>) -> Result<(), BrokerError> {
    if let Some(timeout) = visibility {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        rules::VISIBILITY_TIMEOUT_MS.check("visibility_timeout_ms", ms)?;
    }
    Ok(())
}
