//! `bench mixed`: producers and consumers on one queue (or, with
//! `--queues`, each spread over several) together for a while, the
//! producers optionally held to a total rate; the broker's memory is read
//! every second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::consumer::Consumer;
use super::payload::Stamp;
use super::phase::Phase;
use super::producer::{self, closed_loop, Producer, Until};
use super::report::{Detail, Measured, Percentiles, Report};
use super::schedule::Schedule;
use super::spread;
use super::tally::Tally;
use super::worker::{join_all, merged, Worker};
use super::{BenchError, Common, Setup, PATIENCE};
use event_broker_clock::{monotonic_now, unix_nanos};

/// Longest long poll of a consumer, so that it notices the end of the run.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Flags of `bench mixed`.
#[derive(Debug, Args)]
pub struct MixedArgs {
    /// Flags of every workload.
    #[command(flatten)]
    pub common: Common,
    /// Producers, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub producers: u32,
    /// Events per produce request: 1 sends an event object, more send an array.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Consumers, each with its own connection, long-polling.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
    /// Most events per lease.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max: u32,
    /// Total events per second of all producers; unset, as fast as answered.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// How long to run (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Queues loaded in parallel: producers and consumers each round-robin
    /// over <queue>-0 .. <queue>-<N-1> when more than 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: u32,
}

/// Runs `bench mixed`.
pub async fn run(args: &MixedArgs, setup: &Setup) -> Result<Report, BenchError> {
    spread::check_workers("--producers", args.producers, args.queues)?;
    spread::check_workers("--consumers", args.consumers, args.queues)?;
    let queues = setup.queues(args.queues);
    let (produced, consumed) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let array = args.batch > 1;
    let producers =
        producer::connect_over(setup, &queues, &produced, args.producers.into(), array).await?;
    let mut consumers = Vec::new();
    for j in 0..args.consumers as usize {
        let worker = Worker::connect(setup, consumed.clone(), PATIENCE).await?;
        let queue = &queues[spread::queue_of(j, queues.len())];
        consumers.push(Consumer::new(worker, queue, args.max));
    }
    let sides = vec![
        ("produced", produced.clone()),
        ("consumed", consumed.clone()),
    ];
    let phase = Phase::start(&setup.target, sides, true).await?;
    let deadline = monotonic_now() + args.duration;
    let next = Arc::new(AtomicU64::new(0));
    let batch = u64::from(args.batch);
    let mut producing = JoinSet::new();
    for producer in producers {
        match args.rate {
            Some(rate) => {
                let rate = rate as f64 / f64::from(args.producers);
                producing.spawn(paced(producer, next.clone(), batch, rate, deadline))
            }
            None => producing.spawn(closed_loop(
                producer,
                next.clone(),
                batch,
                Until::Deadline(deadline),
            )),
        };
    }
    let mut consuming = JoinSet::new();
    for consumer in consumers {
        consuming.spawn(consume(consumer, deadline));
    }
    let produce_latency = merged(join_all(producing, &setup.halt).await);
    let consume_latency = merged(join_all(consuming, &setup.halt).await);
    let (p, c) = (produced.counts(), consumed.counts());
    let end = phase.finish(&queues, p.events).await?;
    let detail = Detail::Mixed {
        produced: p.events,
        consumed: c.events,
        consume_events_per_sec: c.events as f64 / end.seconds,
        consume_latency_ms: Percentiles::of(&consume_latency),
        max_rss_bytes: end.max_rss_bytes,
        depth: end.depth,
    };
    let measured = Measured {
        counts: p.with_failures_of(c),
        latency: &produce_latency,
        end: &end,
    };
    Ok(Report::new(
        "mixed",
        &setup.queue,
        queues.len(),
        measured,
        detail,
    ))
}

/// Sends requests of `batch` events at `rate` events per second on an
/// absolute schedule until `deadline`.
async fn paced(
    mut producer: Producer,
    next: Arc<AtomicU64>,
    batch: u64,
    rate: f64,
    deadline: Instant,
) -> Result<Histogram<u64>, BenchError> {
    let schedule = Schedule::new(rate);
    let mut stamps = Vec::with_capacity(batch as usize);
    let mut sent = 0;
    producer.set_deadline(deadline);
    while !producer.halted() {
        // The request carrying events sent..sent+batch leaves when its last
        // is due; a producer behind its schedule stops at the deadline all
        // the same, without catching up.
        let last = sent + batch - 1;
        if schedule.due_at(last) >= deadline || monotonic_now() >= deadline {
            break;
        }
        schedule.wait_for(last).await;
        let first = next.fetch_add(batch, Ordering::Relaxed);
        let t = unix_nanos();
        stamps.clear();
        stamps.extend((first..first + batch).map(|seq| Stamp { seq, t }));
        producer.send(&stamps).await?;
        sent += batch;
    }
    Ok(producer.into_latency())
}

/// Long-polls and acks until `deadline`; a round under way then is
/// finished, so that every event leased is acked and none is left in flight.
async fn consume(mut consumer: Consumer, deadline: Instant) -> Result<Histogram<u64>, BenchError> {
    while !consumer.halted() {
        let now = monotonic_now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(MAX_WAIT);
        consumer
            .round(wait.as_millis() as u64, None, |_| {})
            .await?;
    }
    Ok(consumer.into_latency())
}
