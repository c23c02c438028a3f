//! Disk full and failed fsyncs, injected through the filesystem seam.

mod common;

use std::sync::Arc;

use common::{body, options, replay_all};
use event_broker_wal::fs::FaultyFs;
use event_broker_wal::{Batch, FsyncPolicy, Wal, WalError};

const SEGMENT: u64 = 64 * 1024;

fn open_faulty(dir: &std::path::Path) -> (Wal, FaultyFs) {
    let fs = FaultyFs::new();
    let mut opts = options(dir, SEGMENT);
    opts.fs = Arc::new(fs.clone());
    (Wal::open(opts).unwrap().0, fs)
}

fn batch(seeds: std::ops::Range<u64>, len: usize) -> Batch {
    let mut b = Batch::new();
    for s in seeds {
        b.push(&body(s, len)).unwrap();
    }
    b
}

#[test]
fn a_full_disk_fails_the_append_stores_nothing_of_it_and_the_log_goes_on_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    wal.append(batch(0..5, 100)).unwrap();

    // Room for part of the next batch only: the write is cut short mid-frame.
    fs.set(|f| f.space_left = Some(250));
    let err = wal.append(batch(5..10, 100)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(matches!(err, WalError::DiskFull { .. }), "{err}");
    assert!(wal.failure().is_none(), "a full disk does not stop the log");
    let err = wal.append(batch(10..11, 100)).unwrap_err();
    assert!(err.is_disk_full(), "still full: {err}");
    assert_eq!(
        replay_all(&wal).len(),
        5,
        "nothing of the failed appends is visible"
    );

    fs.set(|f| f.space_left = None);
    let pos = wal.append(batch(20..23, 100)).unwrap();
    assert_eq!(
        pos[0].seq, 5,
        "sequence numbers of failed appends are reused"
    );
    drop(wal);

    let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(
        report.torn_tail, None,
        "the partial write was cut off before the answer"
    );
    let bodies: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
    let expected: Vec<Vec<u8>> = (0..5).chain(20..23).map(|s| body(s, 100)).collect();
    assert_eq!(bodies, expected);
}

#[test]
fn a_full_disk_while_starting_a_segment_fails_the_append_and_leaves_no_stray_file() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    wal.append(batch(0..1, 60_000)).unwrap();
    let files_before = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    fs.set(|f| f.space_left = Some(10));
    let err = wal.append(batch(1..2, 10_000)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("wal")).unwrap().count(),
        files_before
    );
    fs.set(|f| f.space_left = None);
    wal.append(batch(1..2, 10_000)).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(replay_all(&wal).len(), 2);
}

#[test]
fn a_failed_fsync_stops_the_log_for_good_and_a_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    wal.append(batch(0..3, 50)).unwrap();
    fs.set(|f| f.fail_next_sync = true);
    let err = wal.append(batch(3..4, 50)).unwrap_err();
    assert!(err.is_failed(), "{err}");
    assert!(err.to_string().contains("fsync"), "{err}");
    // The next fsync would succeed, but a failed fsync is never retried.
    let err = wal.append(batch(4..5, 50)).unwrap_err();
    assert!(matches!(err, WalError::Failed { .. }), "{err}");
    assert!(wal.status().failure.unwrap().contains("fsync"));
    assert!(wal.sync().is_err());
    drop(wal);

    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let replayed = replay_all(&wal);
    assert!(replayed.len() >= 3, "acknowledged records survive");
    assert_eq!(
        replayed[..3]
            .iter()
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>(),
        (0..3).map(|s| body(s, 50)).collect::<Vec<_>>()
    );
    wal.append(batch(9..10, 50)).unwrap();
}

#[test]
fn an_fsync_failing_for_want_of_space_stops_the_log_and_is_no_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    wal.append(batch(0..3, 50)).unwrap();
    fs.set(|f| f.fail_next_sync_no_space = true);
    let err = wal.append(batch(3..4, 50)).unwrap_err();
    // Written data that found no room at write-back may be gone from the
    // page cache: space coming back cannot make the log whole, a restart does.
    assert!(err.is_failed() && !err.is_disk_full(), "{err}");
    assert!(wal.failure().is_some(), "the log stops");
    let err = wal.append(batch(4..5, 50)).unwrap_err();
    assert!(err.is_failed() && !err.is_disk_full(), "{err}");
    drop(wal);

    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert!(replay_all(&wal).len() >= 3, "acknowledged records survive");
    wal.append(batch(9..10, 50)).unwrap();
}

#[test]
fn a_failed_write_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    fs.set(|f| f.fail_writes = true);
    let err = wal.append(batch(0..1, 50)).unwrap_err();
    assert!(err.is_failed() && !err.is_disk_full(), "{err}");
    fs.set(|f| f.fail_writes = false);
    assert!(wal.append(batch(0..1, 50)).unwrap_err().is_failed());
}

#[test]
fn every_concurrent_appender_of_a_failed_round_hears_of_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, fs) = open_faulty(dir.path());
    fs.set(|f| f.fail_next_sync = true);
    let wal = Arc::new(wal);
    let results: Vec<Result<_, WalError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let wal = wal.clone();
                s.spawn(move || wal.append(batch(i..i + 1, 64)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(|e| e.is_failed())));
}

#[test]
fn interval_and_never_policies_keep_what_was_appended_across_a_clean_close() {
    for policy in [
        FsyncPolicy::Never,
        FsyncPolicy::Interval(std::time::Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path(), SEGMENT);
        opts.fsync = policy;
        let (wal, _) = Wal::open(opts.clone()).unwrap();
        for i in 0..300 {
            wal.append(batch(i..i + 1, 500)).unwrap();
        }
        wal.close().unwrap();
        drop(wal);
        let (wal, _) = Wal::open(opts).unwrap();
        assert_eq!(replay_all(&wal).len(), 300, "{policy}");
    }
}

#[test]
fn a_full_disk_in_a_round_of_large_batches_keeps_exactly_the_appends_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let mut opts = options(dir.path(), 1 << 20);
    opts.fs = Arc::new(fs.clone());
    let wal = Wal::open(opts).unwrap().0;
    // Room for the first of three 100 KiB batches only; if they share a
    // round, the round fails as a whole after its first write went through.
    fs.set(|f| f.space_left = Some(150 << 10));
    let (tx, rx) = std::sync::mpsc::channel();
    for seed in 0..3u64 {
        let tx = tx.clone();
        let done = Box::new(move |r: Result<_, WalError>| tx.send((seed, r.is_ok())).unwrap());
        wal.append_with(batch(seed..seed + 1, 100 << 10), done);
    }
    drop(tx);
    let mut kept: Vec<u64> = rx.iter().filter(|(_, ok)| *ok).map(|(s, _)| s).collect();
    kept.sort_unstable();
    assert!(kept.len() < 3, "the disk cannot hold all three");
    let expected: Vec<Vec<u8>> = kept.iter().map(|&s| body(s, 100 << 10)).collect();
    let bodies =
        |wal: &Wal| -> Vec<Vec<u8>> { replay_all(wal).into_iter().map(|(_, b)| b).collect() };
    assert_eq!(bodies(&wal), expected);
    drop(wal);
    let (wal, report) = Wal::open(options(dir.path(), 1 << 20)).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(bodies(&wal), expected);
}
