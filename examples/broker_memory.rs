//! Resident memory per pending event: enqueues events of 1 KiB JSON payload
//! and compares the process RSS with the RSS just after opening, then does
//! the same after a restart (close, drop, reopen: recovery rebuilds the index
//! from the log). The README's target is at most 150 bytes per pending event.
//!
//! `cargo run --release --example broker_memory -- [events] [data dir]`
//! Defaults: 1000000 events, in batches of 1000, `WAL_FSYNC=never`, in a
//! temporary directory. `EVENT_GROUPS=n` spreads the events over n ordering
//! groups, in turn. Linux only: RSS is read from `/proc/self/status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use event_broker_clock::SystemClock;
use event_broker_core::{Broker, BrokerOptions, Limits, NewEvent, OpenReport};
use event_broker_wal::{FsyncPolicy, WalOptions};

#[path = "../benches/common/mod.rs"]
mod common;

const QUEUE: &str = "memory";
const PAYLOAD: usize = 1024;
const PER_CALL: u64 = 1_000;

/// Resident memory of this process, from `/proc/self/status`, in bytes.
#[derive(Debug, Clone, Copy)]
struct Rss {
    /// `VmRSS`: everything resident.
    total: u64,
    /// `RssAnon`: heap and stacks, where the index lives.
    anon: u64,
    /// `RssFile`: mapped files, such as log segments and the binary.
    file: u64,
}

impl Rss {
    fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status"));
            let kib: u64 = line
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("a size in kB");
            kib * 1024
        };
        Rss {
            total: field("VmRSS"),
            anon: field("RssAnon"),
            file: field("RssFile"),
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn print_rss(label: &str, rss: Rss) {
    println!(
        "{label:<28} VmRSS {:>9.1} MiB (RssAnon {:>9.1} MiB, RssFile {:>7.1} MiB)",
        mib(rss.total),
        mib(rss.anon),
        mib(rss.file)
    );
}

fn print_per_event(label: &str, baseline: Rss, after: Rss, events: u64) {
    let per = |a: u64, b: u64| (a as f64 - b as f64) / events.max(1) as f64;
    println!(
        "{label:<28} {:>9.1} B of VmRSS per event ({:.1} B of RssAnon), over {events} events",
        per(after.total, baseline.total),
        per(after.anon, baseline.anon),
    );
}

/// Gives freed heap back to the system, so that what a dropped broker held
/// is not counted against the reopened one.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn open(dir: &Path, queue_max_size: u64) -> (Broker, OpenReport) {
    let wal = WalOptions {
        fsync: FsyncPolicy::Never,
        ..WalOptions::new(dir)
    };
    let limits = Limits {
        queue_max_size,
        ..Limits::default()
    };
    let options = BrokerOptions {
        wal,
        limits,
        clock: Arc::new(SystemClock),
    };
    Broker::open(options).expect("open broker")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("events: a whole number"));
    let given_dir = args.next().map(PathBuf::from);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = given_dir.unwrap_or_else(|| temp.path().to_path_buf());

    // A limit just above what the queue will hold, events already there included.
    let (broker, report) = open(&dir, u64::MAX);
    let existing = report.events;
    broker.close().expect("close");
    drop(broker);
    let queue_max_size = existing + count + 1;

    let (broker, report) = open(&dir, queue_max_size);
    trim_heap();
    let baseline = Rss::now();
    println!(
        "data dir {}: {} events there at open; enqueueing {count} events of {PAYLOAD} B in batches of {PER_CALL}",
        dir.display(),
        report.events
    );
    print_rss("baseline (after open):", baseline);

    let groups: Option<u64> = std::env::var("EVENT_GROUPS")
        .ok()
        .map(|n| n.parse().expect("EVENT_GROUPS: a whole number"));
    let batch: Vec<NewEvent> = (0..PER_CALL)
        .map(|i| NewEvent {
            payload: common::json_string(i, PAYLOAD),
            group: groups.map(|n| format!("tenant-{}", i % n)),
            ..NewEvent::default()
        })
        .collect();
    let started = Instant::now();
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(PER_CALL) as usize;
        broker
            .enqueue_blocking(QUEUE, &batch[..n])
            .expect("enqueue");
        done += n as u64;
    }
    let took = started.elapsed().as_secs_f64();
    drop(batch);
    trim_heap();
    let after = Rss::now();
    println!(
        "enqueued {count} events in {took:.2} s ({:.0} events/s)",
        count as f64 / took
    );
    print_rss("after enqueueing:", after);
    print_per_event("per pending event:", baseline, after, count);

    broker.close().expect("close");
    drop(broker);
    trim_heap();
    let dropped = Rss::now();
    print_rss("after close and drop:", dropped);

    let started = Instant::now();
    let (broker, report) = open(&dir, queue_max_size);
    let took = started.elapsed().as_secs_f64();
    trim_heap();
    let reopened = Rss::now();
    let stats = broker.queue(QUEUE).expect("the queue is back");
    println!(
        "reopened in {took:.2} s: {} records replayed, {} events, queue {QUEUE:?} has {} ready",
        report.records, report.events, stats.ready
    );
    print_rss("after restart:", reopened);
    print_per_event("per pending event, restart:", baseline, reopened, count);
    broker.close().expect("close");
}
