//! A batch is kept or lost whole by a crash: cut the log at every byte of a
//! batch's frames, and recovery, `verify` and the broker see all of the
//! batch or none of it. Logs of the previous segment format still open.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use common::broker::{limits, TestBroker, START_MS};
use common::{body, options, replay_all};
use event_broker_clock::ManualClock;
use event_broker_core::{self as broker, Broker, BrokerOptions, NewEvent, ViewStatus};
use event_broker_wal::{Batch, FsyncPolicy, Position, Wal, WalOptions};

const SEGMENT: u64 = 64 * 1024;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("wal")).unwrap();
    for entry in fs::read_dir(from.join("wal")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join("wal").join(entry.file_name())).unwrap();
    }
}

fn segment_path(dir: &Path, segment: u64) -> std::path::PathBuf {
    dir.join("wal").join(format!("{segment:020}.seg"))
}

/// A copy of the log in `dir` with its newest segment cut to `len` bytes.
fn cut_copy(dir: &Path, segment: u64, len: u64) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    OpenOptions::new()
        .write(true)
        .open(segment_path(copy.path(), segment))
        .unwrap()
        .set_len(len)
        .unwrap();
    copy
}

fn batch(bodies: &[Vec<u8>]) -> Batch {
    let mut b = Batch::new();
    for body in bodies {
        b.push(body).unwrap();
    }
    b
}

fn end_of(pos: &Position) -> u64 {
    pos.offset + 8 + u64::from(pos.len)
}

#[test]
fn cutting_a_batch_at_every_byte_keeps_all_of_it_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let before: Vec<Vec<u8>> = (0..3).map(|i| body(i, 40)).collect();
    let bodies: Vec<Vec<u8>> = (10..15).map(|i| body(i, (i as usize * 29) % 90)).collect();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    for b in &before {
        wal.append(Batch::of(b).unwrap()).unwrap();
    }
    let positions = wal.append(batch(&bodies)).unwrap();
    drop(wal);
    let (start, end) = (positions[0].offset, end_of(&positions[4]));

    for cut in start..=end {
        let copy = cut_copy(dir.path(), positions[0].segment, cut);
        let (wal, report) = Wal::open(options(copy.path(), SEGMENT)).unwrap();
        let got: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
        if cut == end {
            assert_eq!(got, [before.clone(), bodies.clone()].concat());
            assert_eq!(report.torn_tail, None);
        } else {
            assert_eq!(got, before, "cut at {cut}: none of the batch");
            if cut > start {
                let torn = report.torn_tail.expect("a torn tail is reported");
                assert_eq!(
                    (torn.offset, torn.bytes),
                    (start, cut - start),
                    "cut at {cut}"
                );
            }
            let seg = segment_path(copy.path(), positions[0].segment);
            assert_eq!(fs::metadata(seg).unwrap().len(), start, "cut at {cut}");
        }
    }
}

#[test]
fn after_a_torn_batch_the_log_takes_new_batches_and_reopens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    wal.append(Batch::of(b"kept").unwrap()).unwrap();
    let torn = wal.append(batch(&[body(1, 50), body(2, 50)])).unwrap();
    drop(wal);
    // The first frame of the batch is whole; its second is cut in half.
    let copy = cut_copy(dir.path(), torn[0].segment, end_of(&torn[1]) - 20);
    let (wal, _) = Wal::open(options(copy.path(), SEGMENT)).unwrap();
    let again = wal.append(batch(&[body(3, 50), body(4, 50)])).unwrap();
    assert_eq!(
        again[0].seq, torn[0].seq,
        "the torn batch's sequence numbers are reused"
    );
    drop(wal);
    let (wal, report) = Wal::open(options(copy.path(), SEGMENT)).unwrap();
    assert_eq!(report.torn_tail, None);
    let got: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![b"kept".to_vec(), body(3, 50), body(4, 50)]);
}

fn open_broker(dir: &Path) -> Broker {
    let options = BrokerOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::Never,
            ..WalOptions::new(dir)
        },
        limits: limits(),
        clock: Arc::new(ManualClock::new(START_MS)),
    };
    Broker::open(options).expect("open broker").0
}

/// Where the active segment ends now: (segment, bytes).
fn log_end(broker: &Broker) -> (u64, u64) {
    let active = *broker.wal().segments().last().unwrap();
    (active.first_seq, active.bytes)
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            payload: format!("{{\"n\": {i}, \"pad\": \"{}\"}}", "p".repeat(i * 7)).into_bytes(),
            idempotency_key: Some(format!("key-{i}")),
            ..NewEvent::default()
        })
        .collect()
}

#[test]
fn a_crash_inside_an_enqueue_of_many_events_keeps_all_of_them_or_none() {
    let t = TestBroker::new();
    t.enqueue("q", common::broker::event("\"before\""));
    let (segment, start) = log_end(&t.broker);
    let batch = events(4);
    t.broker.enqueue_blocking("q", &batch).unwrap();
    let (same, end) = log_end(&t.broker);
    assert_eq!(same, segment, "the batch went into the active segment");
    t.broker.close().unwrap();

    for cut in start..=end {
        let copy = cut_copy(t.dir.path(), segment, cut);
        let want = if cut == end { 5 } else { 1 };
        let seen = broker::inspect(copy.path(), START_MS).unwrap();
        let counted: u64 = seen.queues.iter().map(|q| q.ready).sum();
        assert_eq!(counted, want, "verify's count after a cut at {cut}");
        let broker = open_broker(copy.path());
        assert_eq!(broker.contents("q").len() as u64, want, "cut at {cut}");
        // A retry of the lost batch is stored, not taken for a duplicate.
        let again = broker.enqueue_blocking("q", &batch).unwrap();
        let duplicates = again.iter().filter(|e| e.duplicate).count();
        assert_eq!(duplicates, if cut == end { 4 } else { 0 }, "cut at {cut}");
    }
}

#[test]
fn a_crash_inside_a_nack_of_many_receipts_keeps_all_of_it_or_none() {
    let t = TestBroker::new();
    t.broker.enqueue_blocking("q", &events(3)).unwrap();
    let receipts: Vec<String> = t
        .lease("q", 3)
        .iter()
        .map(|d| d.receipt.to_string())
        .collect();
    let (segment, start) = log_end(&t.broker);
    t.broker
        .nack("q", &receipts, Some(60_000), Some("downstream down"))
        .unwrap()
        .wait()
        .unwrap();
    let (_, end) = log_end(&t.broker);
    assert!(end > start);
    t.broker.close().unwrap();

    for cut in start..=end {
        let copy = cut_copy(t.dir.path(), segment, cut);
        let failed: Vec<u32> = open_broker(copy.path())
            .contents("q")
            .iter()
            .inspect(|e| assert_eq!(e.status, ViewStatus::Waiting))
            .map(|e| e.failures)
            .collect();
        let want = if cut == end { 1 } else { 0 };
        assert_eq!(failed, vec![want; 3], "cut at {cut}");
    }
}

/// Rewrites a segment's header as the previous format version wrote it;
/// the frames of single records are the same in both.
fn make_version_1(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..20]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

fn header_version(path: &Path) -> u32 {
    let bytes = fs::read(path).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[test]
fn a_log_of_the_previous_format_opens_and_takes_batches_only_in_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let old = wal
        .append(Batch::of(b"written by version 1").unwrap())
        .unwrap()[0];
    drop(wal);
    let old_path = segment_path(dir.path(), old.segment);
    make_version_1(&old_path);

    let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(report.segments, 2, "appends go to a new segment");
    let new = wal.append(batch(&[body(1, 30), body(2, 30)])).unwrap();
    assert_ne!(new[0].segment, old.segment);
    drop(wal);
    assert_eq!(
        header_version(&old_path),
        1,
        "the old segment is left as it was"
    );
    assert_eq!(header_version(&segment_path(dir.path(), new[0].segment)), 2);
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let got: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        got,
        vec![b"written by version 1".to_vec(), body(1, 30), body(2, 30)]
    );
}

#[test]
fn an_empty_segment_of_the_previous_format_gets_a_new_header() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::open(options(dir.path(), SEGMENT)).unwrap());
    let path = segment_path(dir.path(), 0);
    make_version_1(&path);
    let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(header_version(&path), 2);
    wal.append(batch(&[body(1, 30), body(2, 30)])).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(replay_all(&wal).len(), 2);
}
