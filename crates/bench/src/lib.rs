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
//! `produce`, `consume` and `mixed` take `--queues N`: their workers are
//! spread round-robin over N queues loaded in parallel ([`spread`]).
//!
//! A run first asks the broker for its status and the queue ([`preflight`]):
//! a `--url` that names no broker, a refused queue name, or more events than
//! `QUEUE_MAX_SIZE` lets a queue hold with nothing draining it stop the run
//! before any load. Every worker owns one keep-alive connection and sends its
//! requests one after the other ([`client`]). Latency is per request answered
//! 2xx, from its send to its whole answer, in an HDR histogram of
//! microseconds. A non-2xx answer is a failure, counted (the first few
//! printed), and the run goes on; a run in which every request failed
//! fails. A 429 is retried after a pause of at most 100 ms and counted apart:
//! up to the end of a run of a set duration, for [`PATIENCE`] otherwise,
//! after which the run ends ([`halt`]). The broker's CPU time and memory come
//! from its own metrics ([`scrape`]), read at the start and end of the timed
//! phase ([`phase`]). The summary goes to stdout, a table or one JSON object
//! ([`report`] lists the keys), whenever the timed phase began, even if the
//! run ended early; progress goes to stderr once a second. At the end, the
//! events left in the queues the run named itself are acked ([`cleanup`]).

pub mod bitset;
pub mod cleanup;
pub mod client;
pub mod consume;
pub mod consumer;
pub mod e2e;
mod error;
pub mod halt;
pub mod mixed;
pub mod payload;
pub mod phase;
pub mod preflight;
pub mod produce;
pub mod producer;
pub mod report;
pub mod schedule;
pub mod scrape;
pub mod spread;
pub mod tally;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use error::BenchError;

use client::Target;
use event_broker_client::Token;
use event_broker_clock::{Clock, SystemClock};
use halt::Halt;
use preflight::Limits;
use report::Report;

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

/// Flags of every workload. The broker's own settings (`PORT`, `DATA_DIR`,
/// ...) are not among them: the bench reaches the broker at `--url` only.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of the broker, http://host[:port][/prefix]; a trailing /api
    /// names the API itself and may be left out.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Bearer token, when the broker has BROKER_TOKEN set.
    #[arg(long, env = "BROKER_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// Queue to use; default bench-<workload>-<unix ms>, so that runs do not
    /// collide. Only a queue named by default is emptied after the run.
    #[arg(long)]
    pub queue: Option<String>,
    /// Leave the events of the run in its queue instead of acking them at the end.
    #[arg(long)]
    pub keep: bool,
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
    /// The broker's limits, as far as it shows them.
    pub limits: Limits,
    /// The queue of the run; with `--queues` above 1, the name the run's
    /// queues are numbered after ([`spread::names`]).
    pub queue: String,
    /// Whether the run named the queue itself (and so empties it at the end).
    pub own_queue: bool,
    /// Payload bytes per event.
    pub size: usize,
    /// Ends the run early; shared by its workers.
    pub halt: Arc<Halt>,
}

impl Setup {
    /// The `n` queues of the run.
    pub fn queues(&self, n: u32) -> Vec<String> {
        spread::names(&self.queue, n)
    }
}

impl Common {
    async fn setup(&self, workload: &str, queues: u32) -> Result<Setup, BenchError> {
        let target = Target::new(&self.url, self.token.as_ref())?;
        let queue = self
            .queue
            .clone()
            .unwrap_or_else(|| format!("bench-{workload}-{}", SystemClock.unix_ms()));
        Ok(Setup {
            limits: preflight::check_all(&target, &spread::names(&queue, queues)).await?,
            target,
            queue,
            own_queue: self.queue.is_none(),
            size: self.size as usize,
            halt: Arc::default(),
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

    /// `--queues`, where the workload has it.
    fn queues(&self) -> u32 {
        match self {
            Workload::Produce(a) => a.queues,
            Workload::Consume(a) => a.queues,
            Workload::E2e(_) => 1,
            Workload::Mixed(a) => a.queues,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Workload::Produce(_) => "produce",
            Workload::Consume(_) => "consume",
            Workload::E2e(_) => "e2e",
            Workload::Mixed(_) => "mixed",
        }
    }

    async fn run(&self, setup: &Setup) -> Result<Report, BenchError> {
        match self {
            Workload::Produce(a) => produce::run(a, setup).await,
            Workload::Consume(a) => consume::run(a, setup).await,
            Workload::E2e(a) => e2e::run(a, setup).await,
            Workload::Mixed(a) => mixed::run(a, setup).await,
        }
    }
}

/// How long a request may be throttled (429) before a run with consumers
/// gives up; enough for them to drain a full queue a little.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Runs the workload on a runtime of its own, prints the summary, empties
/// the run's queues, and fails when the run ended early, every request
/// failed, or events went missing.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    let common = args.workload.common().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(common.threads))
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let result = runtime.block_on(async {
        let queues = args.workload.queues();
        let setup = common.setup(args.workload.name(), queues).await?;
        tokio::spawn(stop_on_ctrl_c(setup.halt.clone()));
        let report = args.workload.run(&setup).await;
        if let Ok(report) = &report {
            report
                .write(&mut std::io::stdout().lock(), common.json)
                .map_err(BenchError::Output)?;
        }
        if setup.own_queue && !common.keep {
            for queue in setup.queues(queues) {
                clean_up(&Setup {
                    queue,
                    ..setup.clone()
                })
                .await;
            }
        }
        let report = report?;
        match setup.halt.take() {
            Some(why) => Err(why),
            None => verdict(&report),
        }
    });
    // Workers still blocked in a long poll are not waited for.
    runtime.shutdown_background();
    result
}

/// The first Ctrl-C ends the run early, with its summary and cleanup; a
/// second one ends the process at once.
async fn stop_on_ctrl_c(halt: Arc<Halt>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("interrupted: ending the run; Ctrl-C again to quit at once");
    halt.stop(BenchError::Interrupted);
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

async fn clean_up(setup: &Setup) {
    match cleanup::drain(setup).await {
        Ok(drained) => {
            if let Some(left) = drained.left.filter(|&n| n > 0) {
                eprintln!(
                    "cleanup: {left} events of {} are still leased; they are ready again once their lease expires",
                    setup.queue
                );
            }
        }
        Err(e) => eprintln!(
            "cleanup: could not empty {}: {}",
            setup.queue,
            DisplayChain(&e)
        ),
    }
}

/// Whether a run that went to its end passes.
fn verdict(report: &Report) -> Result<(), BenchError> {
    if let Some((missing, expected)) = report.missing().filter(|(missing, _)| *missing > 0) {
        return Err(BenchError::Missing { missing, expected });
    }
    if report.requests == 0 && report.errors > 0 {
        return Err(BenchError::AllFailed {
            failed: report.errors,
        });
    }
    if report.throttled > 0 {
        eprintln!(
            "note: {} requests were answered 429 and retried: the queue was full (QUEUE_MAX_SIZE) \
             for part of the run, so the rates above are below what the broker takes",
            report.throttled
        );
    }
    Ok(())
}

/// An error and its sources on one line.
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
