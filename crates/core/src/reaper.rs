//! The reaper step: expired leases become failed deliveries, due delayed
//! events become ready, waiting events past their TTL expire, idempotency
//! keys past their window are forgotten.
//! A task calls it every `REAPER_INTERVAL_MS` or at the next due moment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::consume::Failure;
use super::expiry::expire_record;
use super::queue::Status;
use super::{Broker, BrokerError, Core, Pending};

/// What one reaper step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapReport {
    /// Leases that had expired and were failed.
    pub expired: usize,
    /// Delayed events made ready.
    pub promoted: usize,
    /// Waiting events past their TTL, dropped or dead-lettered.
    pub ttl_expired: usize,
    /// The next moment a lease expires or a delayed event is due, on the broker's clock.
    pub next_due: Option<Instant>,
}

/// The error recorded for a delivery whose lease ran out.
pub const LEASE_EXPIRED: &str = "lease expired";

impl Broker {
    /// Runs one reaper step; the answer comes once the failures are durable.
    pub fn reap(&self) -> Pending<ReapReport> {
        let now = self.shared.now();
        let mut core = self.shared.lock();
        let mut promoted = 0;
        let mut woken = Vec::new();
        for q in 0..core.state.queues.len() as u32 {
            let n = core.state.promote(q, now.wall);
            if n > 0 {
                promoted += n;
                woken.push(q);
            }
        }
        core.state.idempotency.expire(now.wall);
        core.state.shrink();
        core.state.forget_full_buckets(now.mono);
        let woken = core.ready_queues(woken);
        self.shared.wake(&woken);
        if let Err(e) = self.check_writable() {
            return Pending::done(Err(e));
        }
        let expired = core.state.expire(now.mono);
        let ttl = core.state.take_expired(now.wall);
        let next_due = core.state.next_due(now);
        let report = ReapReport {
            expired: expired.len(),
            promoted,
            ttl_expired: ttl.len(),
            next_due,
        };
        if expired.is_empty() && ttl.is_empty() {
            return Pending::done(Ok(report));
        }
        let mut records: Vec<_> = expired
            .iter()
            .map(|&(id, failures_before)| {
                let failure = Failure {
                    id,
                    failures_before,
                    delay_ms: None,
                    error: Some(LEASE_EXPIRED),
                };
                self.failure_record(&core, &failure, now)
            })
            .collect();
        // One record per queue: the expired come out of the reaper's pass
        // queue by queue.
        for run in ttl.chunk_by(|a, b| a.queue == b.queue) {
            let ids = run.iter().map(|e| e.id).collect();
            let dead_letter = self.settings_of(&core, run[0].queue).dead_letter_expired;
            records.push(expire_record(ids, dead_letter, now.wall));
        }
        let finish = Box::new(move |core: &mut Core, result: Result<(), BrokerError>| {
            if result.is_err() {
                for e in &ttl {
                    core.state.restore_expired(e, now.wall);
                }
            }
            for (id, _) in &expired {
                if result.is_err() {
                    // Still expired: the next step tries again.
                    core.state.set_status(*id, Status::InFlight);
                } else if let Some(event) = core.state.events.get(id) {
                    let q = event.queue as usize;
                    core.state.queues[q].stats.expired_total += 1;
                }
            }
            result.map(|()| report)
        });
        self.submit(&mut core, records, finish)
    }
}

impl Broker {
    /// Runs reaper steps until `shutdown`: every `interval`, or sooner when a
    /// lease expires or a delayed event is due, each followed by a cleanup
    /// pass (on a blocking thread: it waits for log writes).
    pub async fn run_reaper(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            let next_due = match self.reap().result().await {
                Ok(report) => report.next_due,
                Err(e) => {
                    tracing::warn!(error = %e, "reaper step failed");
                    None
                }
            };
            let broker = self.clone();
            match tokio::task::spawn_blocking(move || broker.cleanup()).await {
                Ok(Ok(r)) if r.deleted > 0 => {
                    tracing::info!(
                        deleted = r.deleted,
                        relocated = r.relocated,
                        "log cleaned up"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "log cleanup failed"),
                Err(e) => tracing::error!(error = %e, "log cleanup panicked"),
            }
            let now = self.shared.clock.now();
            let wait = next_due.map_or(interval, |due| {
                due.saturating_duration_since(now).min(interval)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}
