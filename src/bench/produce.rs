//! `bench produce`: closed-loop producers, as many requests in flight as
//! producers, each sent when the previous one of its producer is answered.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::task::JoinSet;

use super::phase::Phase;
use super::producer::{self, closed_loop, Until};
use super::report::{Detail, Measured, Report};
use super::tally::Tally;
use super::worker::{join_all, merged};
use super::{BenchError, Common, Setup};
use crate::clock::monotonic_now;

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
}

/// Half the default `QUEUE_MAX_SIZE`, so that a run with the defaults fits a
/// broker with its defaults.
pub const DEFAULT_COUNT: u64 = 50_000;

/// Runs `bench produce`.
pub async fn run(args: &ProduceArgs, setup: &Setup) -> Result<Report, BenchError> {
    if args.duration.is_none() {
        setup.limits.check_fits("--count", args.count)?;
    }
    let tally = Arc::new(Tally::default());
    let producers = producer::connect(setup, &tally, args.producers.into(), args.batch > 1).await?;
    let phase = Phase::start(&setup.target, vec![("events", tally.clone())], false).await?;
    let until = match args.duration {
        Some(d) => Until::Deadline(monotonic_now() + d),
        None => Until::Count(args.count),
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for producer in producers {
        tasks.spawn(closed_loop(
            producer,
            next.clone(),
            u64::from(args.batch),
            until,
        ));
    }
    let latency = merged(join_all(tasks, &setup.halt).await);
    let counts = tally.counts();
    let end = phase.finish(&setup.queue, counts.events).await?;
    let measured = Measured {
        counts,
        latency: &latency,
        end: &end,
    };
    Ok(Report::new(
        "produce",
        &setup.queue,
        measured,
        Detail::Produce {},
    ))
}
