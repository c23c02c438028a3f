//! The broker's side, driven over HTTP by the project's own bench client
//! (`event_broker_bench`): each worker owns one keep-alive connection of
//! the lean client and sends one request at a time, through the same
//! `Producer` and `Consumer` that `event-broker bench` uses.
//!
//! - W1, W2: `POST /api/queues/{q}/events` with one event, or an array of
//!   a batch.
//! - W3: a prefill in arrays of 1000 (untimed), then `lease` with `max`
//!   and `wait_ms: 0`, then one `ack` of the batch's receipts, until a
//!   lease comes back empty.
//! - W4: a producer on one connection sends on the schedule, the events
//!   that fell due while its last request was out as one array; consumers
//!   long-poll with `wait_ms` and ack each batch.
//!
//! A run fails when any request failed or was throttled (429), or when an
//! event is missing: a figure measured with failures would mislead.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use event_broker_bench::client::Target;
use event_broker_bench::consumer::Consumer;
use event_broker_bench::payload::Stamp;
use event_broker_bench::preflight::{self, Limits};
use event_broker_bench::producer::{self, closed_loop, Producer, Until};
use event_broker_bench::schedule::Schedule;
use event_broker_bench::tally::Tally;
use event_broker_bench::worker::{histogram, join_all, merged, record, Worker};
use event_broker_bench::{cleanup, BenchError, Setup, PATIENCE};
use event_broker_clock::{monotonic_now, unix_nanos};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::cpu::Meter;
use crate::workload::{
    Finish, Measured, Params, Publish, Workload, LONG_POLL_MS, W4_READ_MAX, W4_SEND_MAX,
};
use crate::PeerError;

/// A running broker and the meter of its process.
pub struct BrokerSide {
    target: Target,
    limits: Limits,
    meter: Meter,
}

impl BrokerSide {
    /// Checks that `url` answers as a broker and reads its limits.
    pub async fn connect(url: &str, meter: Meter) -> Result<BrokerSide, PeerError> {
        let target = Target::new(url, None)?;
        let limits = preflight::check(&target, "peers").await?;
        Ok(BrokerSide {
            target,
            limits,
            meter,
        })
    }

    /// Runs `workload` on the queue `queue`.
    pub async fn run(
        &self,
        workload: Workload,
        queue: &str,
        p: &Params,
    ) -> Result<Measured, PeerError> {
        let setup = self.setup(queue, p.size);
        match workload {
            Workload::W1 => {
                self.publish(&setup, "--w1-count", p.publish(workload))
                    .await
            }
            Workload::W2 => {
                self.publish(&setup, "--w2-count", p.publish(workload))
                    .await
            }
            Workload::W3 => self.consume(&setup, p).await,
            Workload::W4 => self.e2e(&setup, p).await,
        }
    }

    /// Leases and acks what a run left in `queue`, untimed.
    pub async fn clean(&self, queue: &str) -> Result<(), PeerError> {
        let drained = cleanup::drain(&self.setup(queue, 0)).await?;
        if let Some(left) = drained.left.filter(|&n| n > 0) {
            eprintln!("event-broker: {left} events of {queue} are still leased after the run");
        }
        Ok(())
    }

    fn setup(&self, queue: &str, size: usize) -> Setup {
        Setup {
            target: self.target.clone(),
            limits: self.limits,
            queue: queue.to_string(),
            own_queue: true,
            size,
            halt: Arc::default(),
        }
    }

    /// W1 and W2: closed loops; `flag` names the count for a queue too
    /// small to hold it.
    async fn publish(
        &self,
        setup: &Setup,
        flag: &'static str,
        shape: Publish,
    ) -> Result<Measured, PeerError> {
        let Publish {
            producers,
            batch,
            count,
        } = shape;
        setup.limits.check_fits(flag, count)?;
        if setup.limits.batch(batch) < batch {
            return Err(PeerError::Failed {
                what: format!("batches of {batch} are more than the broker's MAX_BATCH"),
            });
        }
        let tally = Arc::new(Tally::default());
        let producers = producer::connect(setup, &tally, producers, batch > 1).await?;
        let next = Arc::new(AtomicU64::new(0));
        let phase = self.meter.start()?;
        let mut tasks = JoinSet::new();
        for producer in producers {
            tasks.spawn(closed_loop(
                producer,
                next.clone(),
                batch,
                Until::Count(count),
            ));
        }
        let latency = merged(join_all(tasks, &setup.halt).await);
        let usage = phase.finish()?;
        verify(setup, &tally, count)?;
        Ok(Measured {
            events: count,
            usage,
            latency,
        })
    }

    /// W3: prefill, then consumers lease and ack until the queue is empty.
    async fn consume(&self, setup: &Setup, p: &Params) -> Result<Measured, PeerError> {
        let n = p.w3_count;
        setup.limits.check_fits("--w3-count", n)?;
        let prefill = p.prefill();
        let filled = Arc::new(Tally::default());
        let next = Arc::new(AtomicU64::new(0));
        let batch = setup.limits.batch(prefill.batch);
        let mut tasks = JoinSet::new();
        for _ in 0..prefill.producers {
            // Nothing drains the queue yet: the first 429 ends the prefill.
            let worker = Worker::connect(setup, filled.clone(), Duration::ZERO).await?;
            let producer = Producer::new(worker, &setup.queue, setup.size, true);
            tasks.spawn(closed_loop(producer, next.clone(), batch, Until::Count(n)));
        }
        join_all(tasks, &setup.halt).await;
        verify(setup, &filled, n)?;

        let acked = Arc::new(Tally::default());
        let mut consumers = Vec::new();
        for _ in 0..p.w3_consumers {
            let worker = Worker::connect(setup, acked.clone(), PATIENCE).await?;
            consumers.push(Consumer::new(worker, &setup.queue, p.w3_batch as u32));
        }
        let phase = self.meter.start()?;
        let mut tasks = JoinSet::new();
        for consumer in consumers {
            tasks.spawn(drain(consumer));
        }
        join_all(tasks, &setup.halt).await;
        let usage = phase.finish()?;
        verify(setup, &acked, n)?;
        Ok(Measured {
            events: n,
            usage,
            latency: histogram(),
        })
    }

    /// W4: one producer on the schedule, consumers long-polling.
    async fn e2e(&self, setup: &Setup, p: &Params) -> Result<Measured, PeerError> {
        let n = p.w4_count();
        let finish = Arc::new(Finish::default());
        let received = Arc::new(Tally::default());
        let mut consumers = JoinSet::new();
        for _ in 0..p.w4_consumers {
            let worker = Worker::connect(setup, received.clone(), PATIENCE).await?;
            let consumer = Consumer::new(worker, &setup.queue, W4_READ_MAX as u32);
            consumers.spawn(receive(consumer, finish.clone()));
        }
        let sent = Arc::new(Tally::default());
        let mut producers = producer::connect(setup, &sent, 1, true).await?;
        let producer = producers.pop().expect("one producer was connected");
        let phase = self.meter.start()?;
        produce(producer, &finish, p).await?;
        finish.producer_done();
        finish.wait().await;
        let latency = merged(join_all(consumers, &setup.halt).await);
        let usage = phase.finish()?;
        verify(setup, &sent, n)?;
        let (sent, acked) = finish.counts();
        if acked < sent {
            let missing = sent - acked;
            return Err(PeerError::Failed {
                what: format!("{missing} of {sent} events were not received"),
            });
        }
        verify(setup, &received, n)?;
        Ok(Measured {
            events: n,
            usage,
            latency,
        })
    }
}

/// Leases and acks until a lease finds the queue empty: the events still
/// leased then are another consumer's, which acks them.
async fn drain(mut consumer: Consumer) -> Result<Histogram<u64>, BenchError> {
    while !consumer.halted() {
        if consumer.round(0, None, |_| {}).await?.leased == 0 {
            break;
        }
    }
    Ok(consumer.into_latency())
}

/// Sends W4's events on its schedule: each request carries every event
/// due by the time it leaves, stamped with the time it was due.
async fn produce(mut producer: Producer, finish: &Finish, p: &Params) -> Result<(), PeerError> {
    let n = p.w4_count();
    let schedule = Schedule::new(p.w4_rate as f64);
    let mut stamps = Vec::new();
    let mut next = 0;
    while next < n && !producer.halted() {
        schedule.wait_for(next).await;
        let due = schedule.due_by(monotonic_now()).clamp(next + 1, n);
        stamps.clear();
        stamps.extend((next..due).take(W4_SEND_MAX as usize).map(|seq| Stamp {
            seq,
            t: schedule.due_unix_nanos(seq),
        }));
        finish.sent(producer.send(&stamps).await?);
        next += stamps.len() as u64;
    }
    Ok(())
}

/// Long-polls and acks until the run is over; the time from each event's
/// due time to its arrival.
async fn receive(
    mut consumer: Consumer,
    finish: Arc<Finish>,
) -> Result<Histogram<u64>, BenchError> {
    let mut latency = histogram();
    while !consumer.halted() {
        let got = |stamp: Stamp| {
            let nanos = unix_nanos().saturating_sub(stamp.t);
            record(&mut latency, Duration::from_nanos(nanos));
        };
        tokio::select! {
            biased;
            () = finish.done.cancelled() => break,
            round = consumer.round(LONG_POLL_MS, None, got) => finish.acked(round?.acked as u64),
        }
    }
    Ok(latency)
}

/// Fails a run that ended early, had a failed or throttled request, or did
/// not get `expected` events through.
fn verify(setup: &Setup, tally: &Tally, expected: u64) -> Result<(), PeerError> {
    if let Some(why) = setup.halt.take() {
        return Err(why.into());
    }
    let counts = tally.counts();
    if counts.errors > 0 || counts.throttled > 0 {
        return Err(PeerError::Failed {
            what: format!(
                "{} requests failed and {} were answered 429 (the first failures are shown above)",
                counts.errors, counts.throttled
            ),
        });
    }
    if counts.events != expected {
        return Err(PeerError::Failed {
            what: format!("{} of {expected} events went through", counts.events),
        });
    }
    Ok(())
}
