//! `event-broker bench`: a load generator that drives a running broker over
//! its HTTP API, in the spirit of `nats bench` and `redis-benchmark`. It is a
//! client like any other; it uses none of the broker's layers.
//!
//! Workloads:
//!
//! - `produce`: closed-loop producers, each waiting for its answer before the
//!   next request; one event per request, or arrays of `--batch`.
//! - `consume`: a prefilled queue (untimed) drained by consumers that lease
//!   and ack; every event must come back, each `seq` acked exactly once.
//! - `e2e`: one open-loop producer on an absolute schedule
//!   ([`schedule`]) and long-polling consumers; latency from when an event
//!   was due to be sent to when a consumer had it.
//! - `mixed`: producers and consumers together for a while, the producers
//!   optionally capped to a total rate.
//!
//! Every worker owns one keep-alive connection and sends its requests one
//! after the other ([`client`]). Latency is per request answered 2xx, from
//! its send to its whole answer, in an HDR histogram of microseconds. A
//! non-2xx answer is a failure, counted (the first few printed), and the run
//! goes on; a 429 is retried after a pause of at most 100 ms and counted
//! apart. The broker's CPU time and memory come from its own metrics
//! ([`scrape`]), read at the start and end of the timed phase ([`phase`]).
//! The summary goes to stdout, a table or one JSON object ([`report`] lists
//! the keys); progress goes to stderr once a second.

pub mod bitset;
pub mod client;
pub mod consume;
pub mod consumer;
pub mod e2e;
mod error;
pub mod mixed;
pub mod payload;
pub mod phase;
pub mod produce;
pub mod producer;
pub mod report;
pub mod schedule;
pub mod scrape;
pub mod tally;
pub mod worker;

use std::time::Duration;

use clap::{Args, Subcommand};

pub use error::BenchError;

use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use client::Target;

/// Drive a running broker over HTTP and report what it sustained.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload.
    #[command(subcommand)]
    pub workload: Workload,
}

/// The workloads.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Producers enqueue, each waiting for its answer before the next request.
    Produce(produce::ProduceArgs),
    /// Consumers lease and ack a prefilled queue; every event must come back once.
    Consume(consume::ConsumeArgs),
    /// One producer at a fixed rate, consumers long-polling: publish-to-receive latency.
    E2e(e2e::E2eArgs),
    /// Producers and consumers together for a while.
    Mixed(mixed::MixedArgs),
}

/// Flags of every workload.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of the broker.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Bearer token, when the broker has BROKER_TOKEN set.
    #[arg(long, env = "BROKER_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// Queue to use; default bench-<workload>-<unix ms>, so that runs do not collide.
    #[arg(long)]
    pub queue: Option<String>,
    /// Bytes of each event's payload (its JSON text).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=16_777_216))]
    pub size: u32,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of the bench's own runtime.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// What every workload starts from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The broker.
    pub target: Target,
    /// The queue of the run.
    pub queue: String,
    /// Payload bytes per event.
    pub size: usize,
}

impl Common {
    fn setup(&self, workload: &str) -> Result<Setup, BenchError> {
        Ok(Setup {
            target: Target::new(&self.url, self.token.as_ref())?,
            queue: self
                .queue
                .clone()
                .unwrap_or_else(|| format!("bench-{workload}-{}", SystemClock.unix_ms())),
            size: self.size as usize,
        })
    }
}

impl Workload {
    fn common(&self) -> &Common {
        match self {
            Workload::Produce(a) => &a.common,
            Workload::Consume(a) => &a.common,
            Workload::E2e(a) => &a.common,
            Workload::Mixed(a) => &a.common,
        }
    }
}

/// How long a request may be throttled (429) before a run with consumers
/// gives up; enough for them to drain a full queue a little.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Runs the workload on a runtime of its own, prints the summary, and fails
/// when events went missing.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    let common = args.workload.common().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(common.threads))
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let report = runtime.block_on(async {
        match &args.workload {
            Workload::Produce(a) => produce::run(a, &a.common.setup("produce")?).await,
            Workload::Consume(a) => consume::run(a, &a.common.setup("consume")?).await,
            Workload::E2e(a) => e2e::run(a, &a.common.setup("e2e")?).await,
            Workload::Mixed(a) => mixed::run(a, &a.common.setup("mixed")?).await,
        }
    })?;
    // Workers still blocked in a long poll are not waited for.
    runtime.shutdown_background();
    report
        .write(&mut std::io::stdout().lock(), common.json)
        .map_err(BenchError::Output)?;
    match report.missing() {
        Some((missing, expected)) if missing > 0 => Err(BenchError::Missing { missing, expected }),
        _ => Ok(()),
    }
}
