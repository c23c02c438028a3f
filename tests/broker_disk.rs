//! Disk use stays proportional to live data: a million events through a
//! queue leave a handful of segments, and long-delayed events survive the
//! cleanups that relocate them.

mod common;

use common::broker::{event, limits, TestBroker};
use event_broker_core::NewEvent;
use event_broker_wal::FsyncPolicy;

const EVENTS: u64 = 1_000_000;
const BATCH: u64 = 1_000;
const HOUR_MS: u64 = 3_600_000;

/// Enqueues and acks `EVENTS` events in batches, one of each batch delayed
/// by an hour when `delayed` is set, cleaning up as a reaper would.
fn churn(t: &TestBroker, delayed: bool) -> Vec<u64> {
    let mut kept = Vec::new();
    for round in 0..EVENTS / BATCH {
        let mut batch: Vec<NewEvent> = (0..BATCH)
            .map(|i| event(&format!("{}", round * BATCH + i)))
            .collect();
        if delayed {
            batch[0].delay_ms = HOUR_MS;
            batch[0].payload = format!("\"late {round}\"").into_bytes();
        }
        let ids = t.broker.enqueue_blocking("q", &batch).expect("enqueue");
        if delayed {
            kept.push(ids[0].id);
        }
        let leased = t.broker.lease("q", BATCH as usize, None).expect("lease");
        let due = BATCH - u64::from(delayed);
        assert_eq!(leased.len() as u64, due);
        let receipts: Vec<String> = leased.iter().map(|d| d.receipt.to_string()).collect();
        t.broker
            .ack("q", &receipts)
            .and_then(|p| p.wait())
            .expect("ack");
        if round % 16 == 0 {
            t.broker.cleanup().expect("cleanup");
        }
    }
    t.broker.cleanup().expect("cleanup");
    kept
}

fn assert_at_most_three_segments(t: &TestBroker) {
    let segments = t.broker.wal().segments();
    let n = segments.len();
    assert!(n <= 3, "{n} segments: {segments:?}");
}

fn broker() -> TestBroker {
    let mut limits = limits();
    limits.queue_max_size = 10_000;
    TestBroker::with(limits, 1 << 20, FsyncPolicy::Never)
}

#[test]
fn a_million_acked_events_leave_at_most_three_segments_and_an_empty_queue() {
    let mut t = broker();
    churn(&t, false);
    assert_at_most_three_segments(&t);
    t.restart();
    let stats = t
        .broker
        .queue("q")
        .map(|s| (s.ready, s.delayed, s.in_flight, s.dead));
    assert!(matches!(stats, Ok((0, 0, 0, 0)) | Err(_)), "{stats:?}");
    assert!(t.lease("q", 1_000).is_empty());
}

#[test]
fn long_delayed_events_survive_cleanup_and_restart() {
    let mut t = broker();
    let kept = churn(&t, true);
    assert_eq!(kept.len() as u64, EVENTS / BATCH);
    assert_at_most_three_segments(&t);
    t.restart();
    let stats = t.broker.queue("q").expect("queue exists");
    assert_eq!((stats.ready, stats.delayed), (0, kept.len() as u64));
    t.advance(HOUR_MS);
    let mut got = Vec::new();
    loop {
        let batch = t.lease("q", 1_000);
        if batch.is_empty() {
            break;
        }
        for d in batch {
            let want = format!("\"late {}\"", got.len());
            assert_eq!(d.payload(), want.as_bytes(), "event {}", d.id);
            got.push(d.id);
        }
    }
    assert_eq!(got, kept, "every delayed event, in order");
}
