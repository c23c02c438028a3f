//! Group-commit statistics of the log under load: appenders as tokio tasks
//! (as the broker appends), each waiting for its append before the next.
//!
//! `cargo run --release --example group_commit -- [appenders] [records per batch] [records]`
//! Defaults: 64 appenders, 1 record per batch, 200000 records of 256 bytes, `WAL_FSYNC=always`,
//! in a temporary directory on the same disk as the system's temp dir.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_broker_wal::{Batch, Wal, WalObserver, WalOptions};

#[derive(Default)]
struct Counts {
    rounds: AtomicU64,
    records: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
}

impl WalObserver for Counts {
    fn committed(&self, records: usize, _bytes: usize) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }
    fn synced(&self, took: Duration) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.sync_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |s| s.parse().expect("a whole number"))
}

fn main() {
    let appenders = arg(1, 64);
    let per_batch = arg(2, 1) as usize;
    let records = arg(3, 200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let counts = Arc::new(Counts::default());
    let mut options = WalOptions::new(dir.path());
    options.observer = Some(counts.clone());
    let wal = Arc::new(Wal::open(options).expect("open log").0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let batches_each = records / per_batch as u64 / appenders;
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|t| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    let record: Vec<u8> =
                        (0..256u32).map(|i| (i * 31 + t as u32 * 7) as u8).collect();
                    for _ in 0..batches_each {
                        let mut batch = Batch::with_capacity(per_batch * (record.len() + 8));
                        for _ in 0..per_batch {
                            batch.push(&record).expect("record fits");
                        }
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        wal.append_with(batch, Box::new(move |r| drop(tx.send(r))));
                        rx.await.expect("completion").expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("appender");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let written = batches_each * appenders * per_batch as u64;
    let rounds = counts.rounds.load(Ordering::Relaxed).max(1);
    let syncs = counts.syncs.load(Ordering::Relaxed).max(1);
    println!(
        "{written} records in {elapsed:.2} s: {:.0} records/s, {:.1} MiB/s",
        written as f64 / elapsed,
        (written * 264) as f64 / elapsed / 1_048_576.0
    );
    println!(
        "{rounds} group commits, {:.1} records each, {:.3} ms per round, {:.3} ms per fsync",
        counts.records.load(Ordering::Relaxed) as f64 / rounds as f64,
        elapsed * 1e3 / rounds as f64,
        counts.sync_nanos.load(Ordering::Relaxed) as f64 / syncs as f64 / 1e6
    );
}
