//! Enqueueing: one request of one or more events, and the closed loop of a
//! producer that sends its next request when the previous one is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::payload::{events_body, Enqueued, EnqueuedBatch, Stamp};
use super::spread;
use super::tally::Tally;
use super::worker::Worker;
use super::{BenchError, Setup, PATIENCE};
use event_broker_clock::{monotonic_now, unix_nanos};

/// A worker that enqueues to one queue.
pub struct Producer {
    worker: Worker,
    path: String,
    size: usize,
    /// Send an array (and expect `ids`) rather than one object (and `id`).
    array: bool,
}

impl Producer {
    /// A producer of `size`-byte payloads to `queue`; `array` sends every
    /// request as a JSON array, even of one event.
    pub fn new(worker: Worker, queue: &str, size: usize, array: bool) -> Producer {
        Producer {
            worker,
            path: format!("/api/queues/{queue}/events"),
            size,
            array,
        }
    }

    /// Enqueues one event per stamp in one request: how many the broker
    /// stored, all of them or none (a failure is counted, not returned).
    pub async fn send(&mut self, stamps: &[Stamp]) -> Result<u64, BenchError> {
        let body = events_body(stamps.iter().copied(), self.size, self.array);
        let Some(answer) = self.worker.post(&self.path, body.into()).await? else {
            return Ok(0);
        };
        let stored = if self.array {
            serde_json::from_slice::<EnqueuedBatch>(&answer).map(|a| a.ids.len())
        } else {
            serde_json::from_slice::<Enqueued>(&answer).map(|_| 1)
        };
        let tally = self.worker.tally();
        match stored {
            Ok(n) if n == stamps.len() => {
                tally.add_events(n as u64);
                Ok(n as u64)
            }
            Ok(n) => {
                tally.error(|| format!("{} events sent, {n} ids answered", stamps.len()));
                Ok(0)
            }
            Err(e) => {
                tally
                    .error(|| format!("enqueue answer: {e}: {}", String::from_utf8_lossy(&answer)));
                Ok(0)
            }
        }
    }

    /// The latency of every request answered 2xx.
    pub fn into_latency(self) -> Histogram<u64> {
        self.worker.into_latency()
    }

    /// Gives up throttled requests at `deadline`, when the run ends.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.worker.set_deadline(deadline);
    }

    /// Whether the run is ending early.
    pub fn halted(&self) -> bool {
        self.worker.halted()
    }
}

/// `count` producers of the run's queue, each on a connection of its own,
/// counting into `tally`; `array` as for [`Producer::new`].
pub async fn connect(
    setup: &Setup,
    tally: &Arc<Tally>,
    count: u64,
    array: bool,
) -> Result<Vec<Producer>, BenchError> {
    connect_over(
        setup,
        std::slice::from_ref(&setup.queue),
        tally,
        count,
        array,
    )
    .await
}

/// The same spread over `queues`: producer `j` enqueues to the queue
/// [`spread::queue_of`] `j`.
pub async fn connect_over(
    setup: &Setup,
    queues: &[String],
    tally: &Arc<Tally>,
    count: u64,
    array: bool,
) -> Result<Vec<Producer>, BenchError> {
    let mut producers = Vec::new();
    for j in 0..count as usize {
        let worker = Worker::connect(setup, tally.clone(), PATIENCE).await?;
        let queue = &queues[spread::queue_of(j, queues.len())];
        producers.push(Producer::new(worker, queue, setup.size, array));
    }
    Ok(producers)
}

/// When a closed-loop producer stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Once the shared counter has handed out this many events.
    Count(u64),
    /// Once this time has passed; the request in flight then is finished.
    Deadline(Instant),
}

/// Sends requests of `batch` events, each when the previous one is
/// answered, numbering events from the counter `next` that all producers of
/// the run share; the last request of a count may be shorter. Stops early
/// when the run does.
pub async fn closed_loop(
    mut producer: Producer,
    next: Arc<AtomicU64>,
    batch: u64,
    until: Until,
) -> Result<Histogram<u64>, BenchError> {
    let mut stamps = Vec::with_capacity(batch as usize);
    if let Until::Deadline(at) = until {
        producer.set_deadline(at);
    }
    loop {
        if producer.halted() {
            break;
        }
        if let Until::Deadline(at) = until {
            if monotonic_now() >= at {
                break;
            }
        }
        let first = next.fetch_add(batch, Ordering::Relaxed);
        let n = match until {
            Until::Count(count) if first >= count => break,
            Until::Count(count) => batch.min(count - first),
            Until::Deadline(_) => batch,
        };
        let t = unix_nanos();
        stamps.clear();
        stamps.extend((first..first + n).map(|seq| Stamp { seq, t }));
        producer.send(&stamps).await?;
    }
    Ok(producer.into_latency())
}
