//! How long a restart takes: the time from `Broker::open` to a broker that
//! answers, with the log in the page cache and with it out, against the time
//! it takes only to read the log's bytes (what `cat wal/* > /dev/null` does).
//!
//! `cargo run --release --example restart -- [events] [data dir]`
//!
//! Fills a temporary directory (or `data dir`, when it holds no events yet)
//! with `events` pending events of 256 B (default 10,000,000), written with
//! `WAL_FSYNC=never` in batches of 1,000, then opens it three times warm and
//! three times cold and prints the medians. A cold open first drops the
//! log's pages from the page cache with `posix_fadvise(POSIX_FADV_DONTNEED)`,
//! which needs no privilege; the read it is compared with starts cold too.
//! Linux only.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_broker_clock::SystemClock;
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent};
use event_broker_wal::{FsyncPolicy, WalOptions};

#[path = "../benches/common/mod.rs"]
mod common;

const PAYLOAD: usize = 256;
const PER_CALL: usize = 1_000;
const RUNS: usize = 3;

fn open(dir: &Path) -> Broker {
    let options = BrokerOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::Never,
            ..WalOptions::new(dir)
        },
        limits: Limits {
            queue_max_size: u64::MAX,
            ..Limits::default()
        },
        clock: Arc::new(SystemClock),
    };
    Broker::open(options).expect("open broker").0
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("read the log directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// Drops the log's pages from the page cache.
fn evict(dir: &Path) {
    for path in segments(dir) {
        let file = File::open(&path).expect("open a segment");
        // SAFETY: a plain advice call on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise on {}", path.display());
    }
}

/// Reads every byte of the log, as `cat` would; the bytes read.
fn read_all(dir: &Path) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for path in segments(dir) {
        let mut file = File::open(&path).expect("open a segment");
        loop {
            let n = file.read(&mut buf).expect("read a segment");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed(), out)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn fill(dir: &Path, count: u64) {
    let broker = open(dir);
    let batch: Vec<NewEvent> = (0..PER_CALL as u64)
        .map(|i| NewEvent {
            payload: common::json_string(i, PAYLOAD),
            ..NewEvent::default()
        })
        .collect();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(PER_CALL as u64) as usize;
        broker
            .enqueue_blocking("restart", &batch[..n])
            .expect("enqueue");
        done += n as u64;
    }
    broker.close().expect("close");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("events: a whole number"));
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), PathBuf::from);

    let baseline = rss_bytes();
    let existing = {
        let broker = open(&dir);
        let events: u64 = broker.queues().iter().map(|q| q.ready + q.delayed).sum();
        broker.close().expect("close");
        events
    };
    if existing == 0 {
        let (took, ()) = timed(|| fill(&dir, count));
        println!(
            "wrote {count} events of {PAYLOAD} B in {:.1} s",
            took.as_secs_f64()
        );
    }

    let bytes = read_all(&dir);
    let (mut warm_reads, mut warm_opens, mut cold_reads, mut cold_opens) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut events = 0;
    let mut rss = 0;
    for _ in 0..RUNS {
        warm_reads.push(timed(|| read_all(&dir)).0);
        let (took, broker) = timed(|| open(&dir));
        warm_opens.push(took);
        events = broker.queues().iter().map(|q| q.ready + q.delayed).sum();
        rss = rss_bytes();
        broker.close().expect("close");
        drop(broker);

        evict(&dir);
        cold_reads.push(timed(|| read_all(&dir)).0);
        evict(&dir);
        let (took, broker) = timed(|| open(&dir));
        cold_opens.push(took);
        broker.close().expect("close");
    }
    let (warm_read, warm_open) = (median(warm_reads), median(warm_opens));
    let (cold_read, cold_open) = (median(cold_reads), median(cold_opens));
    let per_s = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "log: {events} pending events, {:.2} GB in {} segments",
        bytes as f64 / 1e9,
        segments(&dir).len()
    );
    println!(
        "warm: open {:.2} s ({:.1} M records/s); reading the log alone {:.2} s",
        warm_open.as_secs_f64(),
        per_s(warm_open) / 1e6,
        warm_read.as_secs_f64()
    );
    println!(
        "cold: open {:.2} s; reading the log alone {:.2} s; ratio {:.2}",
        cold_open.as_secs_f64(),
        cold_read.as_secs_f64(),
        cold_open.as_secs_f64() / cold_read.as_secs_f64()
    );
    println!(
        "memory after a warm open: {:.0} B of VmRSS per pending event",
        (rss.saturating_sub(baseline)) as f64 / events.max(1) as f64
    );
    println!("medians of {RUNS} runs each");
}
