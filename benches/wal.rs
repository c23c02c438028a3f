//! Log throughput: concurrent single-record appends under `always` and
//! `never`, large batched appends (disk bandwidth), and replay speed.
//!
//! `cargo bench --bench wal`; the README quotes the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use event_broker_wal::{Batch, FsyncPolicy, Wal, WalOptions};

mod common;

const RECORD: usize = 256;

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> Wal {
    let mut opts = WalOptions::new(dir);
    opts.fsync = fsync;
    Wal::open(opts).expect("open log").0
}

/// Appends `total` records of one batch each from `appenders` threads; the time it took.
fn run_appenders(wal: &Arc<Wal>, appenders: u64, total: u64, per_batch: usize) -> Duration {
    let pool = common::noise(RECORD * 64);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..appenders {
            let wal = wal.clone();
            let pool = &pool;
            let share = total / appenders + u64::from(t < total % appenders);
            s.spawn(move || {
                for i in 0..share as usize {
                    let mut batch = Batch::with_capacity(per_batch * (RECORD + 8));
                    for j in 0..per_batch {
                        let at = (i + j) % 63 * RECORD + (i + t as usize) % RECORD;
                        batch.push(&pool[at..at + RECORD]).expect("record fits");
                    }
                    wal.append(batch).expect("append");
                }
            });
        }
    });
    started.elapsed()
}

/// A group of single-record appends from 1, 16 and 64 appenders under
/// `always` and `never`; `run(wal, appenders, records)` times one sample.
fn appender_group(c: &mut Criterion, name: &str, run: impl Fn(&Arc<Wal>, u64, u64) -> Duration) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        for appenders in [1u64, 16, 64] {
            let dir = tempfile::tempdir().expect("temp dir");
            let wal = Arc::new(open(dir.path(), fsync));
            group.bench_with_input(
                BenchmarkId::new(fsync.to_string(), appenders),
                &appenders,
                |b, &n| b.iter_custom(|iters| run(&wal, n, iters.max(n))),
            );
        }
    }
    group.finish();
}

fn concurrent_appends(c: &mut Criterion) {
    appender_group(c, "append_256B", |wal, n, total| {
        run_appenders(wal, n, total, 1)
    });
}

/// The same with appenders as tasks on a two-thread tokio runtime, which is
/// how the broker appends: completions wake tasks, not parked threads.
fn run_async_appenders(
    rt: &tokio::runtime::Runtime,
    wal: &Arc<Wal>,
    appenders: u64,
    total: u64,
) -> Duration {
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|t| {
                let wal = wal.clone();
                let share = total / appenders + u64::from(t < total % appenders);
                let record = common::noise(RECORD + t as usize)[t as usize..].to_vec();
                tokio::spawn(async move {
                    for _ in 0..share {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let batch = Batch::of(&record).expect("record fits");
                        wal.append_with(batch, Box::new(move |r| drop(tx.send(r))));
                        rx.await.expect("completion").expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("appender task");
        }
    });
    started.elapsed()
}

fn concurrent_async_appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    appender_group(c, "append_256B_tasks", |wal, n, total| {
        run_async_appenders(&rt, wal, n, total)
    });
}

fn batched_appends(c: &mut Criterion) {
    const PER_BATCH: usize = 4096;
    let mut group = c.benchmark_group("append_batch_4096x256B");
    group.throughput(Throughput::Bytes((PER_BATCH * (RECORD + 8)) as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    // The raw disk at equal durability is compared in
    // examples/batch_vs_disk.rs, alternating with the log: this virtual disk
    // bursts and then throttles, so a baseline run before or after these
    // rows would see a different disk.
    for appenders in [1u64, 4] {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Arc::new(open(dir.path(), FsyncPolicy::Always));
        group.bench_with_input(
            BenchmarkId::new("always", appenders),
            &appenders,
            |b, &n| b.iter_custom(|iters| run_appenders(&wal, n, iters.max(n), PER_BATCH)),
        );
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    const RECORDS: u64 = 500_000;
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let wal = Arc::new(open(dir.path(), FsyncPolicy::Never));
        run_appenders(&wal, 1, RECORDS / 1000, 1000);
        wal.close().expect("close");
    }
    let wal = open(dir.path(), FsyncPolicy::Never);
    let mut group = c.benchmark_group("replay_256B");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("records", |b| {
        b.iter(|| {
            let mut count = 0u64;
            let mut bytes = 0usize;
            for segment in wal.replay() {
                for record in segment.expect("segment").records() {
                    bytes += record.expect("record").1.len();
                    count += 1;
                }
            }
            assert_eq!(count, RECORDS);
            bytes
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    concurrent_appends,
    concurrent_async_appends,
    batched_appends,
    replay
);
criterion_main!(benches);
