//! Opening a broker: the log is replayed while its segments are still being
//! checked, and what it rebuilds is what was there; an open refuses damage
//! or a record it cannot read, naming where, and leaves the log as it was.

mod common;

use std::sync::Arc;

use common::broker::{event, limits, TestBroker};
use event_broker_clock::{Clock, ManualClock};
use event_broker_core::{Broker, BrokerError, BrokerOptions};
use event_broker_wal::{Batch, FsyncPolicy, Position, Wal, WalError, WalOptions};

const SEGMENT: u64 = 64 * 1024;

/// A broker on small segments with events in every state, closed.
fn written() -> (TestBroker, Vec<event_broker_core::EventView>) {
    let mut limits = limits();
    limits.max_retries = 1;
    let t = TestBroker::with(limits, SEGMENT, FsyncPolicy::Never);
    for round in 0..60u64 {
        let batch: Vec<_> = (0..50)
            .map(|i| event(&format!("\"{round}-{i}-{}\"", "x".repeat(300))))
            .collect();
        t.broker.enqueue_blocking("q", &batch).expect("enqueue");
        let leased = t.lease("q", 10);
        for (i, d) in leased.iter().enumerate() {
            match i % 3 {
                0 => drop(t.ack("q", d)),
                1 => drop(t.nack("q", d, Some("failed"))),
                _ => {}
            }
        }
        if round == 30 {
            t.advance(60_000);
            t.broker.cleanup().expect("cleanup");
        }
    }
    let segments = t.broker.wal().segments().len();
    assert!(segments > 5, "{segments} segments");
    let before = t.broker.contents("q");
    t.broker.close().expect("close");
    (t, before)
}

fn open(t: &TestBroker) -> Result<Broker, BrokerError> {
    let options = BrokerOptions {
        wal: WalOptions {
            segment_bytes: SEGMENT,
            fsync: FsyncPolicy::Never,
            ..WalOptions::new(t.dir.path())
        },
        limits: t.limits.clone(),
        clock: Arc::new(ManualClock::new(t.clock.unix_ms())),
    };
    Broker::open(options).map(|(broker, _)| broker)
}

fn segment_files(t: &TestBroker) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(t.dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_reopened_broker_holds_what_it_held_in_every_state() {
    let (mut t, before) = written();
    for _ in 0..3 {
        t.restart();
        // In flight before: waiting again after a restart.
        let now: Vec<_> = t.broker.contents("q");
        let ids = |v: &[event_broker_core::EventView]| v.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&now), ids(&before));
        for (was, is) in before.iter().zip(&now) {
            assert_eq!(was.failures, is.failures, "event {}", was.id);
            if was.status != event_broker_core::ViewStatus::InFlight {
                assert_eq!(
                    (was.status, was.time),
                    (is.status, is.time),
                    "event {}",
                    was.id
                );
            }
        }
    }
}

#[test]
fn damage_in_a_sealed_segment_stops_the_open_naming_it_and_cuts_nothing() {
    let (t, _) = written();
    let files = segment_files(&t);
    let victim = &files[files.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5A;
    std::fs::write(victim, &bytes).unwrap();
    let sizes: Vec<u64> = files.iter().map(|f| f.metadata().unwrap().len()).collect();

    match open(&t) {
        Err(BrokerError::Storage(WalError::Corrupt { path, .. })) => assert_eq!(&path, victim),
        Err(other) => panic!("expected the damage, got {other}"),
        Ok(_) => panic!("opened a damaged log"),
    }
    let after: Vec<u64> = files.iter().map(|f| f.metadata().unwrap().len()).collect();
    assert_eq!(after, sizes, "no segment was cut");
}

#[test]
fn a_record_that_is_no_broker_record_stops_the_open_naming_its_place() {
    let (t, _) = written();
    let options = WalOptions {
        segment_bytes: SEGMENT,
        fsync: FsyncPolicy::Never,
        ..WalOptions::new(t.dir.path())
    };
    let (wal, _) = Wal::open(options).unwrap();
    let at: Vec<Position> = wal
        .append(Batch::of(b"\x01 not a record").unwrap())
        .unwrap();
    wal.close().unwrap();
    drop(wal);

    match open(&t) {
        Err(BrokerError::BadRecord {
            segment, offset, ..
        }) => assert_eq!((segment, offset), (at[0].segment, at[0].offset)),
        Err(other) => panic!("expected the bad record, got {other}"),
        Ok(_) => panic!("opened a log with a record it cannot read"),
    }
}
