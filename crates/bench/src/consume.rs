//! `bench consume`: fill a queue (untimed), then drain it with consumers
//! that lease and ack, checking that every event comes back exactly once.
//! With `--queues`, each queue is filled with its share of `--prefill`,
//! drained by its own consumers and checked on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::consumer::{Consumer, Ledger};
use super::phase::Phase;
use super::producer::{closed_loop, Producer, Until};
use super::report::{Detail, Measured, Report};
use super::spread;
use super::tally::Tally;
use super::worker::{join_all, merged, Worker};
use super::{BenchError, Common, Setup, PATIENCE};
use event_broker_clock::monotonic_now;

/// Producers (at least one a queue) and events per request of the prefill:
/// few large batches fill a queue fastest.
const PREFILL_PRODUCERS: usize = 4;
const PREFILL_BATCH: u64 = 1000;

/// How long consumers go on finding the queue empty while events are still
/// unacked before they stop: a lost ack comes back only when its lease
/// expires, which the run does not wait for.
const STALL: Duration = Duration::from_secs(10);

/// How long a consumer that found the queue empty, while others still hold
/// events, waits on the broker for one to become ready again: the broker
/// answers as soon as one is, so an idle consumer neither polls nor sleeps.
const EMPTY_WAIT_MS: u64 = 1000;

/// Flags of `bench consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Flags of every workload.
    #[command(flatten)]
    pub common: Common,
    /// Consumers, each with its own connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
    /// Most events per lease.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max: u32,
    /// Events to enqueue before the timed phase; no more than the broker's
    /// QUEUE_MAX_SIZE, as the queue holds them all at once.
    #[arg(long, default_value_t = DEFAULT_PREFILL, value_parser = clap::value_parser!(u64).range(1..))]
    pub prefill: u64,
    /// Queues drained in parallel: the consumers round-robin over
    /// <queue>-0 .. <queue>-<N-1> when more than 1, each queue prefilled
    /// with its share of --prefill.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: u32,
}

/// Half the default `QUEUE_MAX_SIZE`, so that a run with the defaults fits a
/// broker with its defaults.
pub const DEFAULT_PREFILL: u64 = 50_000;

/// Runs `bench consume`.
pub async fn run(args: &ConsumeArgs, setup: &Setup) -> Result<Report, BenchError> {
    spread::check_workers("--consumers", args.consumers, args.queues)?;
    let n = args.prefill;
    setup.limits.check_fits_each("--prefill", n, args.queues)?;
    let queues = setup.queues(args.queues);
    let shares = spread::shares(n, queues.len());
    let prefill_seconds = prefill(setup, &queues, &shares).await?;
    eprintln!(
        "prefill: {n} events in {prefill_seconds:.2} s ({:.0} events/s)",
        n as f64 / prefill_seconds
    );
    let tally = Arc::new(Tally::default());
    let mut consumers = Vec::new();
    for j in 0..args.consumers as usize {
        let worker = Worker::connect(setup, tally.clone(), PATIENCE).await?;
        let queue = &queues[spread::queue_of(j, queues.len())];
        consumers.push(Consumer::new(worker, queue, args.max));
    }
    let drained: Vec<Arc<Drained>> = shares.iter().map(|&n| Drained::new(n)).collect();
    let phase = Phase::start(&setup.target, vec![("acked", tally.clone())], false).await?;
    let mut tasks = JoinSet::new();
    for (j, consumer) in consumers.into_iter().enumerate() {
        let queue = &drained[spread::queue_of(j, queues.len())];
        tasks.spawn(drain(consumer, queue.clone()));
    }
    let latency = merged(join_all(tasks, &setup.halt).await);
    let counts = tally.counts();
    let end = phase.finish(&queues, counts.events).await?;
    let acked = drained.iter().map(|d| d.ledger.acked()).sum();
    let detail = Detail::Consume {
        prefill_seconds,
        acked,
        missing: n - acked,
        duplicates: drained.iter().map(|d| d.ledger.duplicates()).sum(),
    };
    let measured = Measured {
        counts,
        latency: &latency,
        end: &end,
    };
    Ok(Report::new(
        "consume",
        &setup.queue,
        queues.len(),
        measured,
        detail,
    ))
}

/// Enqueues events `0..shares[q]` to each queue `q`; how long it took. Any
/// failure ends the run: a drain of an incomplete queue would report
/// missing events that were never sent. The run has no summary then, as its
/// timed phase never began.
async fn prefill(setup: &Setup, queues: &[String], shares: &[u64]) -> Result<f64, BenchError> {
    let batch = setup.limits.batch(PREFILL_BATCH);
    let tally = Arc::new(Tally::default());
    let mut tasks = JoinSet::new();
    let nexts: Vec<Arc<AtomicU64>> = queues.iter().map(|_| Arc::default()).collect();
    let start = monotonic_now();
    for j in 0..PREFILL_PRODUCERS.max(queues.len()) {
        // Nothing drains the queue yet: a full queue stays full, so the
        // first 429 ends the run.
        let worker = Worker::connect(setup, tally.clone(), Duration::ZERO).await?;
        let q = spread::queue_of(j, queues.len());
        let producer = Producer::new(worker, &queues[q], setup.size, true);
        let until = Until::Count(shares[q]);
        tasks.spawn(closed_loop(producer, nexts[q].clone(), batch, until));
    }
    join_all(tasks, &setup.halt).await;
    if let Some(why) = setup.halt.take() {
        return Err(why);
    }
    let failed = tally.counts().errors;
    if failed > 0 {
        return Err(BenchError::Prefill { failed });
    }
    Ok((monotonic_now() - start).as_secs_f64())
}

/// When any consumer last acked, shared so that one consumer finding the
/// queue empty can tell a stall from others still at work.
struct LastAck {
    start: Instant,
    last_ms: AtomicU64,
}

impl LastAck {
    fn new() -> LastAck {
        LastAck {
            start: monotonic_now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        (monotonic_now() - self.start).as_millis() as u64
    }

    fn mark(&self) {
        self.last_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        self.now_ms() - self.last_ms.load(Ordering::Relaxed) > STALL.as_millis() as u64
    }
}

/// What the consumers of one queue share to know when it is drained.
struct Drained {
    ledger: Ledger,
    last_ack: LastAck,
    /// Cancelled once all `n` events are acked: ends the others' long polls.
    done: CancellationToken,
    n: u64,
}

impl Drained {
    /// A queue prefilled with events `0..n`, none acked yet.
    fn new(n: u64) -> Arc<Drained> {
        Arc::new(Drained {
            ledger: Ledger::new(n),
            last_ack: LastAck::new(),
            done: CancellationToken::new(),
            n,
        })
    }
}

/// Leases until all `n` events of the consumer's queue are acked, or
/// nothing was acked there for [`STALL`]; without waiting while there are
/// events, with a long poll once the queue looks empty.
async fn drain(
    mut consumer: Consumer,
    run: Arc<Drained>,
) -> Result<hdrhistogram::Histogram<u64>, BenchError> {
    let mut wait_ms = 0;
    while !consumer.halted() {
        let round = tokio::select! {
            biased;
            () = run.done.cancelled() => break,
            round = consumer.round(wait_ms, Some(&run.ledger), |_| {}) => round?,
        };
        if round.acked > 0 {
            run.last_ack.mark();
        }
        if run.ledger.acked() >= run.n {
            run.done.cancel();
            break;
        }
        if round.leased == 0 && run.last_ack.stalled() {
            break;
        }
        wait_ms = if round.leased == 0 { EMPTY_WAIT_MS } else { 0 };
    }
    Ok(consumer.into_latency())
}
