//! `bench produce`: closed-loop producers, as many requests in flight as
//! producers, each sent when the previous one of its producer is answered;
//! with `--queues`, spread over several queues, each given its share of
//! `--count`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::task::JoinSet;

use super::phase::Phase;
use super::producer::{self, closed_loop, Until};
use super::report::{Detail, Measured, Report};
use super::spread;
use super::tally::Tally;
use super::worker::{join_all, merged};
use super::{BenchError, Common, Setup};
use event_broker_clock::monotonic_now;

/// Flags of `bench produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Flags of every workload.
    #[command(flatten)]
    pub common: Common,
    /// Producers, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub producers: u32,
    /// Events per request: 1 sends an event object, more send an array.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Events to enqueue in all; no more than the broker's QUEUE_MAX_SIZE,
    /// as nothing consumes them during the run.
    #[arg(long, default_value_t = DEFAULT_COUNT, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Run this long instead (e.g. 10s); wins over --count. A queue that
    /// fills up is retried until then, and the run ends on time.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Queues loaded in parallel: the producers round-robin over
    /// <queue>-0 .. <queue>-<N-1> when more than 1, each queue given its
    /// share of --count.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: u32,
}

/// Half the default `QUEUE_MAX_SIZE`, so that a run with the defaults fits a
/// broker with its defaults.
pub const DEFAULT_COUNT: u64 = 50_000;

/// Runs `bench produce`.
pub async fn run(args: &ProduceArgs, setup: &Setup) -> Result<Report, BenchError> {
    spread::check_workers("--producers", args.producers, args.queues)?;
    if args.duration.is_none() {
        setup
            .limits
            .check_fits_each("--count", args.count, args.queues)?;
    }
    let queues = setup.queues(args.queues);
    let tally = Arc::new(Tally::default());
    let array = args.batch > 1;
    let producers =
        producer::connect_over(setup, &queues, &tally, args.producers.into(), array).await?;
    let phase = Phase::start(&setup.target, vec![("events", tally.clone())], false).await?;
    let deadline = args.duration.map(|d| monotonic_now() + d);
    // Each queue numbers its own events and stops at its own share.
    let shares = spread::shares(args.count, queues.len());
    let nexts: Vec<Arc<AtomicU64>> = queues.iter().map(|_| Arc::default()).collect();
    let mut tasks = JoinSet::new();
    for (j, producer) in producers.into_iter().enumerate() {
        let q = spread::queue_of(j, queues.len());
        let until = match deadline {
            Some(at) => Until::Deadline(at),
            None => Until::Count(shares[q]),
        };
        let batch = u64::from(args.batch);
        tasks.spawn(closed_loop(producer, nexts[q].clone(), batch, until));
    }
    let latency = merged(join_all(tasks, &setup.halt).await);
    let counts = tally.counts();
    let end = phase.finish(&queues, counts.events).await?;
    let measured = Measured {
        counts,
        latency: &latency,
        end: &end,
    };
    Ok(Report::new(
        "produce",
        &setup.queue,
        queues.len(),
        measured,
        Detail::Produce {},
    ))
}
