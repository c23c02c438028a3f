//! Batched appends under `always` against the raw disk at equal durability,
//! in the same conditions: the two alternate in rounds of equal size, so a
//! virtual disk that bursts and then throttles treats both alike.
//!
//! `cargo run --release --example batch_vs_disk -- [rounds] [MiB per round] [appenders]`
//! Defaults: 8 rounds of 256 MiB each way, one appender. The raw side writes
//! a freshly filled buffer of one batch's size (about 1 MiB) and calls
//! `fdatasync` after each write, which is what the log does for one
//! appender; the log side appends batches of 4096 records of 256 bytes.

use std::io::Write;
use std::time::{Duration, Instant};

use event_broker_wal::{Batch, FsyncPolicy, Wal, WalOptions};

#[path = "../benches/common/mod.rs"]
mod common;

const RECORD: usize = 256;
const PER_BATCH: usize = 4096;
const BATCH_BYTES: usize = PER_BATCH * (RECORD + 8);

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map_or(default, |s| s.parse().expect("a whole number"))
}

fn raw(file: &mut std::fs::File, source: &[u8], batches: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..batches {
        let mut fresh = Vec::with_capacity(BATCH_BYTES);
        fresh.extend_from_slice(&source[..BATCH_BYTES]);
        file.write_all(&fresh).expect("write");
        file.sync_data().expect("fdatasync");
    }
    started.elapsed()
}

/// `batches` batches appended from `appenders` threads, each waiting for
/// its append before building the next batch.
fn log(wal: &Wal, pool: &[u8], batches: usize, appenders: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..appenders {
            s.spawn(move || {
                for i in (t..batches).step_by(appenders) {
                    let mut batch = Batch::with_capacity(BATCH_BYTES);
                    for j in 0..PER_BATCH {
                        let at = (i + j) % 63 * RECORD + i % RECORD;
                        batch.push(&pool[at..at + RECORD]).expect("record fits");
                    }
                    wal.append(batch).expect("append");
                }
            });
        }
    });
    started.elapsed()
}

fn main() {
    let rounds = arg(1, 8);
    let batches = arg(2, 256) * (1 << 20) / BATCH_BYTES;
    let appenders = arg(3, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = WalOptions::new(dir.path().join("log"));
    options.fsync = FsyncPolicy::Always;
    std::fs::create_dir_all(&options.data_dir).expect("log dir");
    let wal = Wal::open(options).expect("open log").0;
    let mut file = std::fs::File::create(dir.path().join("raw")).expect("raw file");
    let source = common::noise(BATCH_BYTES);
    let pool = common::noise(RECORD * 64);
    let mib = (batches * BATCH_BYTES) as f64 / f64::from(1 << 20);
    let mut ratios = Vec::new();
    println!("round  disk MiB/s  log MiB/s  log/disk   ({mib:.0} MiB each way per round, {appenders} appender(s))");
    for round in 1..=rounds {
        let disk = mib / raw(&mut file, &source, batches).as_secs_f64();
        let logged = mib / log(&wal, &pool, batches, appenders).as_secs_f64();
        ratios.push(logged / disk);
        println!(
            "{round:>5}  {disk:>10.0}  {logged:>9.0}  {:>8.2}",
            logged / disk
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("median log/disk: {:.2}", ratios[ratios.len() / 2]);
}
