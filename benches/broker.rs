//! Broker throughput in process, no HTTP: concurrent enqueues (one event per
//! call, and batches of 100) and lease + ack of a pre-filled queue, under
//! `WAL_FSYNC` `always` and `never`, with 256-byte JSON payloads; and lease
//! + ack of a queue whose events are spread over 1,000 ordering groups.
//!
//! `cargo bench --bench broker`; the README quotes the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use event_broker_clock::SystemClock;
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent, ReceiptStatus};
use event_broker_wal::{FsyncPolicy, WalOptions};

mod common;

/// Payload size in bytes: a JSON string, quotes included.
const PAYLOAD: usize = 256;
const QUEUE: &str = "bench";

/// Ordering groups of the grouped lease + ack.
const GROUPS: u64 = 1_000;

fn event(seed: u64) -> NewEvent {
    NewEvent {
        payload: common::json_string(seed, PAYLOAD),
        ..NewEvent::default()
    }
}

/// [`event`] in group `seed % groups`, or in none.
fn event_in(seed: u64, groups: Option<u64>) -> NewEvent {
    NewEvent {
        group: groups.map(|n| format!("tenant-{}", seed % n)),
        ..event(seed)
    }
}

/// A broker in `dir`: 64 MiB segments (the default, so cleanup never runs
/// in a sample) and a queue limit no run reaches.
fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> Arc<Broker> {
    let wal = WalOptions {
        fsync,
        ..WalOptions::new(dir)
    };
    let limits = Limits {
        queue_max_size: 10_000_000,
        ..Limits::default()
    };
    let options = BrokerOptions {
        wal,
        limits,
        clock: Arc::new(SystemClock),
    };
    Arc::new(Broker::open(options).expect("open broker").0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

/// `calls` enqueues of `per_call` events each, shared among `producers`
/// tasks, each waiting for its enqueue before the next; the time it took.
fn run_producers(
    rt: &tokio::runtime::Runtime,
    broker: &Arc<Broker>,
    producers: u64,
    per_call: usize,
    calls: u64,
) -> Duration {
    // Built before the clock starts: the payloads are not what is measured.
    let batches: Vec<Vec<NewEvent>> = (0..producers)
        .map(|t| (0..per_call as u64).map(|i| event(t * 1_000 + i)).collect())
        .collect();
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = batches
            .into_iter()
            .enumerate()
            .map(|(t, events)| {
                let t = t as u64;
                let broker = broker.clone();
                let share = calls / producers + u64::from(t < calls % producers);
                tokio::spawn(async move {
                    for _ in 0..share {
                        let done = broker.enqueue(QUEUE, &events).await.expect("enqueue");
                        debug_assert_eq!(done.len(), events.len());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("producer task");
        }
    });
    started.elapsed()
}

fn enqueue(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("enqueue_256B");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        for (producers, per_call) in [(64u64, 1usize), (4, 100)] {
            // A fresh broker per parameter set. Nothing consumes, so the queue
            // grows over the samples, as a backlog does: well below its limit.
            let dir = tempfile::tempdir().expect("temp dir");
            let broker = open(dir.path(), fsync);
            group.throughput(Throughput::Elements(per_call as u64));
            group.bench_with_input(
                BenchmarkId::new(fsync.to_string(), format!("{producers}x{per_call}")),
                &(producers, per_call),
                |b, &(n, per_call)| {
                    b.iter_custom(|calls| run_producers(&rt, &broker, n, per_call, calls.max(n)))
                },
            );
            broker.close().expect("close");
        }
    }
    group.finish();
}

/// Fills the queue with `total` events, in batches of up to 1000 from four
/// tasks, spread over `groups` ordering groups if given.
fn prefill(rt: &tokio::runtime::Runtime, broker: &Arc<Broker>, total: u64, groups: Option<u64>) {
    const PER_CALL: u64 = 1_000;
    const FILLERS: u64 = 4;
    let template: Vec<NewEvent> = (0..PER_CALL).map(|i| event_in(i, groups)).collect();
    let template = Arc::new(template);
    rt.block_on(async {
        let tasks: Vec<_> = (0..FILLERS)
            .map(|t| {
                let broker = broker.clone();
                let template = template.clone();
                // Calls t, t + FILLERS, ...; the last call may be short.
                tokio::spawn(async move {
                    let mut at = t * PER_CALL;
                    while at < total {
                        let n = (total - at).min(PER_CALL) as usize;
                        broker
                            .enqueue(QUEUE, &template[..n])
                            .await
                            .expect("prefill enqueue");
                        at += FILLERS * PER_CALL;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("prefill task");
        }
    });
}

/// Pre-fills the queue with `total` events (untimed), then `consumers` tasks
/// lease up to `per_lease` and ack them until the queue is empty; the time
/// the consuming took.
fn run_consumers(
    rt: &tokio::runtime::Runtime,
    broker: &Arc<Broker>,
    (consumers, per_lease): (u64, usize),
    total: u64,
    groups: Option<u64>,
) -> Duration {
    prefill(rt, broker, total, groups);
    let started = Instant::now();
    let consumed: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..consumers)
            .map(|_| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    let mut consumed = 0u64;
                    loop {
                        // Every event is ready from the start and leases last
                        // 30 s: once a lease comes back empty, the rest of the
                        // queue is in other consumers' hands. With groups,
                        // every group left may be held by another
                        // consumer; the last one to look holds none, so it
                        // drains what is left.
                        let leased = broker.lease(QUEUE, per_lease, None).expect("lease");
                        if leased.is_empty() {
                            return consumed;
                        }
                        let receipts: Vec<String> =
                            leased.iter().map(|d| d.receipt.to_string()).collect();
                        let results = broker
                            .ack(QUEUE, &receipts)
                            .expect("ack accepted")
                            .result()
                            .await
                            .expect("ack written");
                        debug_assert!(results.iter().all(|r| r.status == ReceiptStatus::Ok));
                        consumed += results.len() as u64;
                    }
                })
            })
            .collect();
        let mut consumed = 0;
        for task in tasks {
            consumed += task.await.expect("consumer task");
        }
        consumed
    });
    let elapsed = started.elapsed();
    assert_eq!(
        consumed, total,
        "every pre-filled event is leased and acked"
    );
    let stats = broker.queue(QUEUE).expect("queue stats");
    assert_eq!(
        (stats.ready, stats.delayed, stats.in_flight),
        (0, 0, 0),
        "the queue is empty after a sample"
    );
    elapsed
}

fn lease_ack(c: &mut Criterion) {
    const CONSUMERS: u64 = 8;
    const PER_LEASE: usize = 100;
    let rt = runtime();
    let mut group = c.benchmark_group("lease_ack_256B");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    // One iteration is one lease-and-ack of a full batch.
    group.throughput(Throughput::Elements(PER_LEASE as u64));
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = open(dir.path(), fsync);
        for groups in [None, Some(GROUPS)] {
            let name = match groups {
                None => format!("{CONSUMERS}x{PER_LEASE}"),
                Some(n) => format!("{CONSUMERS}x{PER_LEASE}/{n}-groups"),
            };
            group.bench_with_input(
                BenchmarkId::new(fsync.to_string(), name),
                &CONSUMERS,
                |b, &n| {
                    b.iter_custom(|batches| {
                        let total = batches.max(n) * PER_LEASE as u64;
                        run_consumers(&rt, &broker, (n, PER_LEASE), total, groups)
                    })
                },
            );
        }
        broker.close().expect("close");
    }
    group.finish();
}

criterion_group!(benches, enqueue, lease_ack);
criterion_main!(benches);
