//! CPU time of lease and ack on the calling thread, per event: one consumer
//! leases 100 events at a time and acks them, `WAL_FSYNC=never`, 256-byte
//! payloads. Thread CPU time, the best of 15 rounds of 20,000 events, so
//! that neighbours on a shared machine move the figure less than they move
//! wall-clock benchmarks. The log's completion thread (which applies the
//! acks) is not counted.
//!
//! `cargo run --release --example lease_ack_cpu`

use std::sync::Arc;

use event_broker_clock::SystemClock;
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent};
use event_broker_wal::{FsyncPolicy, WalOptions};

const ROUNDS: usize = 15;
const PER_ROUND: usize = 20_000;
const PER_LEASE: usize = 100;

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = BrokerOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::Never,
            ..WalOptions::new(dir.path())
        },
        limits: Limits {
            queue_max_size: 10_000_000,
            ..Limits::default()
        },
        clock: Arc::new(SystemClock),
    };
    let broker = Broker::open(options).expect("open broker").0;
    let payload = format!("\"{}\"", "x".repeat(254)).into_bytes();
    let batch: Vec<NewEvent> = (0..1_000)
        .map(|_| NewEvent {
            payload: payload.clone(),
            ..NewEvent::default()
        })
        .collect();
    let mut best = u64::MAX;
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND / batch.len() {
            broker.enqueue_blocking("q", &batch).expect("enqueue");
        }
        let started = thread_cpu_ns();
        let mut acked = 0;
        loop {
            let leased = broker.lease("q", PER_LEASE, None).expect("lease");
            if leased.is_empty() {
                break;
            }
            let receipts: Vec<String> = leased.iter().map(|d| d.receipt.to_string()).collect();
            let results = broker.ack("q", &receipts).expect("ack").wait();
            acked += results.expect("ack written").len();
        }
        best = best.min((thread_cpu_ns() - started) / acked as u64);
    }
    println!("lease + ack: {best} ns of CPU an event on the calling thread (best of {ROUNDS} rounds of {PER_ROUND})");
}
