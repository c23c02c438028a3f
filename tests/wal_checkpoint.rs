//! Checkpoints: a consistent copy that verifies and restores, made without
//! holding off segment deletion while it checksums, one per name at a time.

mod common;

use std::fs;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{body, options, replay_all};
use event_broker_wal::fs::{FaultyFs, Gate};
use event_broker_wal::{verify_checkpoint, Batch, Wal, WalError};

#[test]
fn a_checkpoint_verifies_and_restores_every_record_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 16 * 1024)).unwrap();
    for i in 0..300 {
        wal.append(Batch::of(&body(i, 200)).unwrap()).unwrap();
    }
    let info = wal.checkpoint("nightly-1").unwrap();
    assert_eq!(info.path, std::path::Path::new("checkpoints/nightly-1"));
    assert_eq!(info.segments, wal.segments().len());
    wal.append(Batch::of(b"after the checkpoint").unwrap())
        .unwrap();

    let cp = dir.path().join(&info.path);
    let verified = verify_checkpoint(&cp).unwrap();
    assert_eq!(
        (verified.segments, verified.records, verified.bytes),
        (info.segments, 300, info.bytes)
    );

    let restored = tempfile::tempdir().unwrap();
    fs::create_dir_all(restored.path().join("wal")).unwrap();
    for entry in fs::read_dir(&cp).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().ends_with(".seg") {
            fs::copy(
                entry.path(),
                restored.path().join("wal").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let (restored_wal, report) = Wal::open(options(restored.path(), 16 * 1024)).unwrap();
    assert_eq!(report.torn_tail, None);
    let bodies: Vec<Vec<u8>> = replay_all(&restored_wal)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(bodies, (0..300).map(|i| body(i, 200)).collect::<Vec<_>>());
}

#[test]
fn a_damaged_checkpoint_fails_verification_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 16 * 1024)).unwrap();
    for i in 0..100 {
        wal.append(Batch::of(&body(i, 200)).unwrap()).unwrap();
    }
    let info = wal.checkpoint("cp").unwrap();
    let cp = dir.path().join(&info.path);
    let victim = cp.join("00000000000000000000.seg");
    // The checkpoint's sealed segments are hard links: copy before damaging,
    // so the live log stays intact.
    let mut bytes = fs::read(&victim).unwrap();
    bytes[100] ^= 1;
    fs::remove_file(&victim).unwrap();
    fs::write(&victim, bytes).unwrap();
    let err = verify_checkpoint(&cp).unwrap_err();
    assert!(matches!(err, WalError::CheckpointMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("00000000000000000000.seg"),
        "{err}"
    );
}

#[test]
fn checkpoint_names_are_checked_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 16 * 1024)).unwrap();
    for bad in ["", "../escape", "a/b", ".hidden", &"x".repeat(129)] {
        assert!(
            matches!(wal.checkpoint(bad), Err(WalError::BadCheckpointName { .. })),
            "{bad:?}"
        );
    }
    wal.checkpoint("once").unwrap();
    assert!(matches!(
        wal.checkpoint("once"),
        Err(WalError::CheckpointExists { .. })
    ));
}

#[test]
fn segments_deleted_after_a_checkpoint_stay_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 16 * 1024)).unwrap();
    for i in 0..300 {
        wal.append(Batch::of(&body(i, 200)).unwrap()).unwrap();
    }
    let info = wal.checkpoint("before-cleanup").unwrap();
    wal.delete_before(u64::MAX).unwrap();
    let verified = verify_checkpoint(&dir.path().join(info.path)).unwrap();
    assert_eq!(verified.records, 300);
}

/// A log of 300 records in several sealed segments, on a filesystem that
/// can hold a checkpoint's reads at a gate.
fn gated_log(dir: &std::path::Path) -> (Wal, Gate) {
    let fs = FaultyFs::new();
    let mut opts = options(dir, 16 * 1024);
    opts.fs = Arc::new(fs.clone());
    let (wal, _) = Wal::open(opts).unwrap();
    for i in 0..300 {
        wal.append(Batch::of(&body(i, 200)).unwrap()).unwrap();
    }
    assert!(wal.segments().len() > 2);
    let gate = Gate::new();
    fs.set(|f| f.hold_reads = Some(gate.clone()));
    (wal, gate)
}

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn segments_can_be_deleted_while_a_checkpoint_computes_its_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, gate) = gated_log(dir.path());
    std::thread::scope(|s| {
        let made = s.spawn(|| wal.checkpoint("held"));
        assert!(
            gate.wait_for_arrival(PATIENCE),
            "the checkpoint reads its segments through the filesystem seam"
        );
        // The checkpoint is held at its first checksum. Deleting segments
        // takes the maintenance lock, as the reaper's cleanup does.
        let (tx, rx) = mpsc::channel();
        let wal = &wal;
        s.spawn(move || tx.send(wal.delete_before(u64::MAX)).unwrap());
        let deleted = rx.recv_timeout(PATIENCE);
        gate.open();
        let deleted = deleted.expect("deletion waited for the checkpoint's checksums");
        assert!(deleted.unwrap() > 0);
        let info = made.join().unwrap().unwrap();
        let verified = verify_checkpoint(&dir.path().join(info.path)).unwrap();
        assert_eq!(verified.records, 300, "the links kept the deleted segments");
    });
}

#[test]
fn of_two_checkpoints_of_one_name_at_once_one_is_made_and_the_other_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, gate) = gated_log(dir.path());
    std::thread::scope(|s| {
        let first = s.spawn(|| wal.checkpoint("same"));
        assert!(gate.wait_for_arrival(PATIENCE));
        let second = wal.checkpoint("same");
        gate.open();
        assert!(
            matches!(second, Err(WalError::CheckpointExists { .. })),
            "{second:?}"
        );
        let info = first.join().unwrap().unwrap();
        let verified = verify_checkpoint(&dir.path().join(info.path)).unwrap();
        assert_eq!(verified.records, 300);
    });
    assert!(matches!(
        wal.checkpoint("same"),
        Err(WalError::CheckpointExists { .. })
    ));
    let left: Vec<_> = fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["same"], "no staging directory is left behind");
}

#[test]
fn a_checkpoint_left_unfinished_by_a_dead_process_does_not_block_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("checkpoints").join(".nightly.partial");
    fs::create_dir_all(&staging).unwrap();
    fs::write(staging.join("00000000000000000000.seg"), b"half a copy").unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 16 * 1024)).unwrap();
    wal.append(Batch::of(b"one").unwrap()).unwrap();
    let info = wal.checkpoint("nightly").unwrap();
    assert_eq!(
        verify_checkpoint(&dir.path().join(info.path))
            .unwrap()
            .records,
        1
    );
    assert!(!staging.exists());
}
