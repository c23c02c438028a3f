//! Side by side with Redis streams: the same four workloads against a
//! running event-broker and a running Redis, alternating, from one program
//! on one tokio runtime, and one table of the medians at the end.
//!
//! `benches/peers/run.sh` builds, starts both servers (the broker with
//! `WAL_FSYNC=always`, Redis with `appendfsync always`), runs this with
//! their addresses and pids, and stops them; `benches/peers/README.md` says
//! what each workload does. Run without `--broker-url` and `--redis-url`
//! (as `cargo bench` would), it says so and does nothing.
//!
//! The runs interleave: for each repetition, each workload runs against the
//! broker and then against Redis, so each pair runs minutes apart at most
//! and the machine's drift touches both alike. Every run has a queue or
//! stream of its own; after it, untimed, the broker's queue is drained and
//! Redis's stream deleted and its AOF rewritten, so no run starts with
//! another's backlog. Each timed phase reads the server's CPU time before
//! and after ([`cpu`]).
//!
//! Files: [`broker`] and [`redis_streams`] drive each server (with
//! [`redis_group`] for Redis's consumers), [`workload`] holds what they
//! share, [`table`] the medians and the output, [`cpu`] the CPU times.

mod broker;
mod cpu;
mod redis_group;
mod redis_streams;
mod table;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use event_broker_bench::payload::MIN_SIZE;
use event_broker_bench::BenchError;
use event_broker_clock::{Clock, SystemClock};

use broker::BrokerSide;
use cpu::Meter;
use redis_streams::RedisSide;
use table::{Figures, Row};
use workload::{Params, Workload};

/// W1–W4 against event-broker and Redis streams, alternating.
#[derive(Debug, Parser)]
#[command(name = "peers")]
struct Args {
    /// The broker's base URL (http://127.0.0.1:PORT).
    #[arg(long)]
    broker_url: Option<String>,
    /// Redis's URL (redis://127.0.0.1:PORT).
    #[arg(long)]
    redis_url: Option<String>,
    /// The broker's pid, for its CPU time per event.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Redis's pid, for its CPU time per event.
    #[arg(long)]
    redis_pid: Option<u32>,
    /// Repetitions of every workload on each server [default: 3, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    reps: Option<u32>,
    /// A smoke check: a tenth of the counts, 2 s of W4, one repetition;
    /// a flag given explicitly still wins.
    #[arg(long)]
    quick: bool,
    /// The workloads to run, comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Workload::ALL)]
    workloads: Vec<Workload>,
    /// Bytes of each event's body (its JSON text).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(MIN_SIZE as i64..=1_048_576))]
    size: u32,
    /// Worker threads of the driver's tokio runtime, shared by both sides.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// W1: producers, each waiting for its answer.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    w1_producers: u64,
    /// W1: events in all [default: 200000, 20000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    w1_count: Option<u64>,
    /// W2: producers, each waiting for its batch's answer.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    w2_producers: u64,
    /// W2: events per batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=1000))]
    w2_batch: u64,
    /// W2: events in all [default: 300000, 30000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    w2_count: Option<u64>,
    /// W2 on Redis: MULTI/EXEC around each pipeline, atomic like the broker's batch.
    #[arg(long)]
    w2_redis_multi: bool,
    /// W3: events prefilled, untimed, then consumed [default: 200000, 20000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    w3_count: Option<u64>,
    /// W3: consumers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    w3_consumers: u64,
    /// W3: most events per lease or XREADGROUP.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    w3_batch: u64,
    /// W4: events per second, on a fixed schedule.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    w4_rate: u64,
    /// W4: how long the producer sends [default: 10s, 2s with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    w4_duration: Option<Duration>,
    /// W4: long-polling consumers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    w4_consumers: u64,
    /// W3 and W4 on Redis: XDEL the entries acked, in the XACK's pipeline.
    #[arg(long)]
    redis_xdel: bool,
    /// Print one JSON object of every run and the medians instead of the tables.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn params(&self) -> Params {
        let count = |given: Option<u64>, full: u64| given.unwrap_or(full / self.scale());
        let w4_default = Duration::from_secs(if self.quick { 2 } else { 10 });
        Params {
            size: self.size as usize,
            w1_producers: self.w1_producers,
            w1_count: count(self.w1_count, 200_000),
            w2_producers: self.w2_producers,
            w2_batch: self.w2_batch,
            w2_count: count(self.w2_count, 300_000),
            w2_redis_multi: self.w2_redis_multi,
            w3_count: count(self.w3_count, 200_000),
            w3_consumers: self.w3_consumers,
            w3_batch: self.w3_batch,
            w4_rate: self.w4_rate,
            w4_duration: self.w4_duration.unwrap_or(w4_default),
            w4_consumers: self.w4_consumers,
            redis_xdel: self.redis_xdel,
        }
    }

    fn scale(&self) -> u64 {
        if self.quick {
            10
        } else {
            1
        }
    }

    fn reps(&self) -> u32 {
        self.reps.unwrap_or(if self.quick { 1 } else { 3 })
    }
}

/// The server a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// event-broker over HTTP.
    Broker,
    /// Redis streams.
    Redis,
}

impl Side {
    /// How the tables name it.
    pub fn name(self) -> &'static str {
        match self {
            Side::Broker => "event-broker",
            Side::Redis => "Redis",
        }
    }
}

/// Why the comparison stopped.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The broker's side: its client, or the broker's answers.
    #[error("event-broker")]
    Broker(#[from] BenchError),
    /// The Redis side: a connection or a command failed.
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    /// A server's CPU time could not be read.
    #[error("reading /proc/{pid}/stat")]
    Proc {
        /// The server's pid.
        pid: u32,
        /// The read's error.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/<pid>/stat` did not hold the CPU times where they belong.
    #[error("/proc/{pid}/stat has no CPU times where expected")]
    ProcFormat {
        /// The server's pid.
        pid: u32,
    },
    /// A run finished, but not with every event through and every request
    /// answered: its figures would mislead.
    #[error("{what}")]
    Failed {
        /// What went wrong.
        what: String,
    },
    /// A stream entry came back without the body field the driver wrote.
    #[error("a stream entry has no body field")]
    NoBody,
    /// A body read back is not the JSON the driver wrote.
    #[error("a stream entry's body is not a bench payload")]
    Payload(#[source] serde_json::Error),
    /// A driver task panicked.
    #[error("a driver task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A run of one workload against one server failed.
    #[error("{workload} against {side}")]
    Run {
        /// `w1` ... `w4`.
        workload: &'static str,
        /// The server.
        side: &'static str,
        /// What failed.
        #[source]
        source: Box<PeerError>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (Some(broker_url), Some(redis_url)) = (&args.broker_url, &args.redis_url) else {
        eprintln!(
            "peers: no --broker-url and --redis-url, nothing to run; \
             benches/peers/run.sh starts both servers and runs this"
        );
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("peers: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(compare(&args, broker_url, redis_url));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs every repetition and prints the tables.
async fn compare(args: &Args, broker_url: &str, redis_url: &str) -> Result<(), PeerError> {
    let broker = BrokerSide::connect(broker_url, Meter::new(args.broker_pid)).await?;
    let redis = RedisSide::connect(redis_url, Meter::new(args.redis_pid)).await?;
    let params = args.params();
    let reps = args.reps();
    let started = SystemClock.unix_ms();
    let mut rows = Vec::new();
    for rep in 1..=reps {
        for &workload in &args.workloads {
            for side in [Side::Broker, Side::Redis] {
                let name = format!("peers-{}-{started}-{rep}", workload.key());
                let measured = match side {
                    Side::Broker => broker.run(workload, &name, &params).await,
                    Side::Redis => redis.run(workload, &name, &params).await,
                };
                let in_run = |e: PeerError| PeerError::Run {
                    workload: workload.key(),
                    side: side.name(),
                    source: Box::new(e),
                };
                let figures = Figures::of(&measured.map_err(in_run)?);
                eprintln!(
                    "rep {rep}/{reps} {} {:<12} {}{}",
                    workload.key(),
                    side.name(),
                    figures.cell(workload),
                    figures
                        .cpu_us
                        .map_or(String::new(), |us| format!(", server CPU {us:.1} µs/event")),
                );
                rows.push(Row {
                    workload,
                    side,
                    rep,
                    figures,
                });
                match side {
                    Side::Broker => broker.clean(&name).await,
                    Side::Redis => redis.clean(&name).await,
                }
                .map_err(in_run)?;
            }
        }
    }
    if args.json {
        println!("{}", table::json(&rows, &args.workloads, &params, reps));
    } else {
        print!("{}", table::tables(&rows, &args.workloads, &params, reps));
    }
    Ok(())
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
