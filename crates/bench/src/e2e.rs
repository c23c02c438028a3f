//! `bench e2e`: one producer on a fixed schedule, consumers long-polling;
//! latency from when each event was due to be sent to when a consumer had it.
//!
//! The producer is open-loop: event `n` is due at `n / rate` seconds
//! ([`Schedule`]) and goes out on connection `n % connections`, so that an
//! answer slower than the gap between two events does not hold the next one
//! back. Events that fall due on a connection while its request is in flight
//! go out together in its next one, as a batch, so one slow answer does not
//! thin out the load, and each event's payload carries the time it was due,
//! not the time it left: a stall counts against every event that waited for it.
//! Producer and consumers read the same machine's wall clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::consumer::{Consumer, Ledger};
use super::payload::Stamp;
use super::phase::Phase;
use super::producer::{self, Producer};
use super::report::{Detail, Measured, Percentiles, Report};
use super::schedule::Schedule;
use super::tally::{Counts, Tally};
use super::worker::{histogram, join_all, merged, record, Worker};
use super::{BenchError, Common, Setup, PATIENCE};
use event_broker_clock::{monotonic_now, unix_nanos};

/// Most events in one request of the producer (the broker's default `MAX_BATCH`).
const MAX_BATCH: u64 = 1000;

/// How long consumers wait for the last events once the producer is done.
const DRAIN: Duration = Duration::from_secs(10);

/// Long-poll wait and lease size of the consumers.
const WAIT_MS: u64 = 1000;
const LEASE_MAX: u32 = 100;

/// Flags of `bench e2e`.
#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Flags of every workload.
    #[command(flatten)]
    pub common: Common,
    /// Events per second the producer sends.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Connections the producer sends on, each with one request in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Consumers, each with its own connection, long-polling.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
    /// How long the producer runs (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Events to send instead; wins over --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// What producer and consumers share.
struct Run {
    ledger: Ledger,
    sent: Arc<Tally>,
    producer_done: AtomicBool,
    /// Cancelled once every event sent is acked, or [`DRAIN`] after the
    /// producer finished.
    done: CancellationToken,
}

impl Run {
    /// Ends the run when the producer is done and every event it sent is
    /// acked. Called by each side after its last step, so whichever comes
    /// second sees the other's.
    fn check_done(&self) {
        if self.producer_done.load(Ordering::SeqCst)
            && self.ledger.acked() >= self.sent.counts().events
        {
            self.done.cancel();
        }
    }
}

/// Runs `bench e2e`.
pub async fn run(args: &E2eArgs, setup: &Setup) -> Result<Report, BenchError> {
    let total = args.count.unwrap_or_else(|| {
        (args.rate as f64 * args.duration.as_secs_f64())
            .round()
            .max(1.0) as u64
    });
    let received = Arc::new(Tally::default());
    let run = Arc::new(Run {
        ledger: Ledger::new(total),
        sent: Arc::new(Tally::default()),
        producer_done: AtomicBool::new(false),
        done: CancellationToken::new(),
    });
    let mut consumers = JoinSet::new();
    for _ in 0..args.consumers {
        let worker = Worker::connect(setup, received.clone(), PATIENCE).await?;
        let consumer = Consumer::new(worker, &setup.queue, LEASE_MAX);
        consumers.spawn(consume(consumer, run.clone()));
    }
    let sides = vec![("sent", run.sent.clone()), ("acked", received.clone())];
    let phase = Phase::start(&setup.target, sides, false).await?;
    let producers = producer::connect(setup, &run.sent, args.connections.min(total), true).await?;
    // The schedule starts once every connection is open.
    let schedule = Arc::new(Schedule::new(args.rate as f64));
    let mut producing = JoinSet::new();
    for (first, producer) in (0..).zip(producers) {
        let lane = Lane {
            first,
            stride: args.connections,
            total,
        };
        producing.spawn(produce(producer, schedule.clone(), lane));
    }
    let produce_latency = merged(join_all(producing, &setup.halt).await);
    run.producer_done.store(true, Ordering::SeqCst);
    run.check_done();
    tokio::select! {
        () = run.done.cancelled() => {}
        () = tokio::time::sleep(DRAIN) => run.done.cancel(),
        () = setup.halt.stopped() => run.done.cancel(),
    }
    let e2e_latency = merged(join_all(consumers, &setup.halt).await);
    let sent = run.sent.counts();
    let end = phase
        .finish(std::slice::from_ref(&setup.queue), sent.events)
        .await?;
    let delivered = run.ledger.delivered();
    let detail = Detail::E2e {
        sent: sent.events,
        received: delivered,
        missing: sent.events.saturating_sub(run.ledger.acked()),
        duplicates: run.ledger.duplicates(),
        e2e_latency_ms: Percentiles::of(&e2e_latency),
    };
    let counts = received.counts();
    let measured = Measured {
        // The produce side's requests and latency, the consumers' events.
        counts: Counts {
            events: delivered,
            ..sent.with_failures_of(counts)
        },
        latency: &produce_latency,
        end: &end,
    };
    Ok(Report::new("e2e", &setup.queue, 1, measured, detail))
}

/// The events one producer connection sends: `first`, `first + stride`, ...
/// below `total`.
struct Lane {
    first: u64,
    stride: u64,
    total: u64,
}

/// Sends the lane's events on the schedule; the produce requests' latency.
async fn produce(
    mut producer: Producer,
    schedule: Arc<Schedule>,
    lane: Lane,
) -> Result<Histogram<u64>, BenchError> {
    let mut stamps = Vec::new();
    let mut next = lane.first;
    while next < lane.total && !producer.halted() {
        schedule.wait_for(next).await;
        let due = schedule.due_by(monotonic_now()).min(lane.total);
        stamps.clear();
        stamps.extend(
            (next..due.max(next + 1))
                .step_by(lane.stride as usize)
                .take(MAX_BATCH as usize)
                .map(|seq| Stamp {
                    seq,
                    t: schedule.due_unix_nanos(seq),
                }),
        );
        producer.send(&stamps).await?;
        next = stamps.last().map_or(next, |s| s.seq) + lane.stride;
    }
    Ok(producer.into_latency())
}

/// Long-polls and acks until the run is done; the publish-to-receive latency.
async fn consume(mut consumer: Consumer, run: Arc<Run>) -> Result<Histogram<u64>, BenchError> {
    let mut latency = histogram();
    loop {
        let got = |stamp: Stamp| {
            let nanos = unix_nanos().saturating_sub(stamp.t);
            record(&mut latency, Duration::from_nanos(nanos));
        };
        tokio::select! {
            biased;
            () = run.done.cancelled() => break,
            round = consumer.round(WAIT_MS, Some(&run.ledger), got) => {
                if round?.acked > 0 {
                    run.check_done();
                }
            }
        }
    }
    Ok(latency)
}
