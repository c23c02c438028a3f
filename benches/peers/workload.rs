//! The four workloads, their sizes, and what both drivers share: the
//! payload bytes, what a run measured, and how a publish → receive run
//! knows it is over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::ValueEnum;
use event_broker_bench::payload::{push_event, Stamp};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::cpu::Usage;

/// One workload of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Single publish, closed loop.
    W1,
    /// Batch publish, closed loop.
    W2,
    /// Consume + ack of a prefilled queue or stream.
    W3,
    /// Publish → receive at a fixed rate, consumers long-polling.
    W4,
}

impl Workload {
    /// Every workload, in the order of the table.
    pub const ALL: [Workload; 4] = [Workload::W1, Workload::W2, Workload::W3, Workload::W4];

    /// `w1` ... `w4`, for names and JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
        }
    }
}

/// The sizes of a run, the same for both servers.
#[derive(Debug, Clone)]
pub struct Params {
    /// Bytes of each event's body.
    pub size: usize,
    /// W1: producers, each with one request in flight.
    pub w1_producers: u64,
    /// W1: events in all.
    pub w1_count: u64,
    /// W2: producers, each with one batch in flight.
    pub w2_producers: u64,
    /// W2: events per batch.
    pub w2_batch: u64,
    /// W2: events in all.
    pub w2_count: u64,
    /// W2 on Redis: the batch as `MULTI`/`EXEC` rather than a plain pipeline.
    pub w2_redis_multi: bool,
    /// W3: events prefilled (untimed), then consumed.
    pub w3_count: u64,
    /// W3: consumers.
    pub w3_consumers: u64,
    /// W3: most events per lease or read.
    pub w3_batch: u64,
    /// W4: events per second the producer sends.
    pub w4_rate: u64,
    /// W4: how long the producer sends.
    pub w4_duration: Duration,
    /// W4: long-polling consumers.
    pub w4_consumers: u64,
    /// W3 and W4 on Redis: `XDEL` the entries acked, in the same pipeline.
    pub redis_xdel: bool,
}

impl Params {
    /// Events the W4 producer sends.
    pub fn w4_count(&self) -> u64 {
        ((self.w4_rate as f64 * self.w4_duration.as_secs_f64()).round() as u64).max(1)
    }

    /// How W1 or W2 publishes (any other workload: W1).
    pub fn publish(&self, workload: Workload) -> Publish {
        match workload {
            Workload::W2 => Publish {
                producers: self.w2_producers,
                batch: self.w2_batch,
                count: self.w2_count,
            },
            _ => Publish {
                producers: self.w1_producers,
                batch: 1,
                count: self.w1_count,
            },
        }
    }

    /// How W3's prefill publishes.
    pub fn prefill(&self) -> Publish {
        Publish {
            producers: PREFILL_PRODUCERS,
            batch: PREFILL_BATCH,
            count: self.w3_count,
        }
    }

    /// The sizes as JSON, for `--json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "body_bytes": self.size,
            "w1": {"producers": self.w1_producers, "count": self.w1_count},
            "w2": {"producers": self.w2_producers, "batch": self.w2_batch,
                   "count": self.w2_count, "redis_multi": self.w2_redis_multi},
            "w3": {"count": self.w3_count, "consumers": self.w3_consumers,
                   "batch": self.w3_batch},
            "w4": {"rate": self.w4_rate, "seconds": self.w4_duration.as_secs_f64(),
                   "consumers": self.w4_consumers},
            "redis_xdel": self.redis_xdel,
        })
    }
}

/// How a closed-loop publishing run sends: W1, W2, and W3's prefill.
#[derive(Debug, Clone, Copy)]
pub struct Publish {
    /// Connections, each with one request in flight.
    pub producers: u64,
    /// Events per request.
    pub batch: u64,
    /// Events in all.
    pub count: u64,
}

/// Events per request of a W3 prefill; the broker's default `MAX_BATCH`.
pub const PREFILL_BATCH: u64 = 1000;
/// Connections of a W3 prefill.
pub const PREFILL_PRODUCERS: u64 = 4;
/// Longest wait of one long poll in W4 (`wait_ms`, `BLOCK`), milliseconds.
pub const LONG_POLL_MS: u64 = 1000;
/// Most events one W4 consumer takes at a time.
pub const W4_READ_MAX: u64 = 100;
/// Most events of one W4 publish that fell due together.
pub const W4_SEND_MAX: u64 = 1000;
/// How long W4 consumers wait for the last events once the producer is done.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The JSON text of an event's body, exactly `size` bytes: the broker's
/// bench payload (`{"seq":..,"t":..,"pad":"xx.."}`), so that both servers
/// store the same bytes and a consumer of either reads the same stamp.
pub fn body(stamp: Stamp, size: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"payload\":";
    let mut event = Vec::with_capacity(size + HEAD.len() + 1);
    push_event(&mut event, stamp, size);
    event.truncate(event.len() - 1);
    event.split_off(HEAD.len())
}

/// What one run of a workload against one server measured.
#[derive(Debug)]
pub struct Measured {
    /// Events published (W1, W2, W4) or acked (W3) in the timed phase.
    pub events: u64,
    /// The timed phase.
    pub usage: Usage,
    /// Microseconds: per request (W1), per batch (W2), from due to received
    /// (W4); empty for W3.
    pub latency: Histogram<u64>,
}

/// The shared end of a W4 run: once the producer is done and every event it
/// sent is acked, or [`DRAIN`] after it finished, `done` is cancelled and the
/// consumers' long polls are abandoned.
#[derive(Debug, Default)]
pub struct Finish {
    sent: AtomicU64,
    acked: AtomicU64,
    producer_done: AtomicBool,
    /// Cancelled at the end of the run.
    pub done: CancellationToken,
}

impl Finish {
    /// Counts `n` events published.
    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::SeqCst);
    }

    /// Counts `n` events acked and ends the run if they were the last.
    pub fn acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::SeqCst);
        self.check();
    }

    /// The producer sent its last event.
    pub fn producer_done(&self) {
        self.producer_done.store(true, Ordering::SeqCst);
        self.check();
    }

    /// Waits for the consumers to ack the rest, at most [`DRAIN`].
    pub async fn wait(&self) {
        tokio::select! {
            () = self.done.cancelled() => {}
            () = tokio::time::sleep(DRAIN) => self.done.cancel(),
        }
    }

    /// Events sent and acked.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::SeqCst),
            self.acked.load(Ordering::SeqCst),
        )
    }

    // Each side calls this after its last step, so whichever comes second
    // sees the other's.
    fn check(&self) {
        let (sent, acked) = self.counts();
        if self.producer_done.load(Ordering::SeqCst) && acked >= sent {
            self.done.cancel();
        }
    }
}
