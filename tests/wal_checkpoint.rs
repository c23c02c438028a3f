//! Checkpoints: a consistent copy that verifies and restores.

mod common;

use std::fs;

use common::{body, options, replay_all};
use event_broker::wal::{verify_checkpoint, Batch, Wal, WalError};

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
