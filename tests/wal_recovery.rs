//! Recovery: torn tails are cut off, corruption elsewhere refuses to open
//! (naming file and offset) unless skip-corrupt is chosen, and a second
//! process cannot open the same data directory.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::{append_each, body, options, replay_all};
use event_broker_wal::{Batch, Position, RecoveryMode, Wal, WalError};

const SEGMENT: u64 = 16 * 1024;

fn segment_path(dir: &Path, pos: &Position) -> PathBuf {
    dir.join("wal").join(format!("{:020}.seg", pos.segment))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("wal")).unwrap();
    for entry in fs::read_dir(from.join("wal")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join("wal").join(entry.file_name())).unwrap();
    }
}

/// A closed log of `n` records of assorted sizes in several segments.
fn written_log(n: u64) -> (tempfile::TempDir, Vec<Position>, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| body(i, (i as usize * 37) % 700)).collect();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let positions = append_each(&wal, &bodies);
    drop(wal);
    (dir, positions, bodies)
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5A;
    fs::write(path, bytes).unwrap();
}

#[test]
fn truncating_the_last_frame_at_every_byte_recovers_the_records_before_it() {
    let (dir, positions, bodies) = written_log(120);
    let last = *positions.last().unwrap();
    assert!(last.segment > 0, "the log spans several segments");
    let frame_end = last.offset + 8 + u64::from(last.len);
    for cut in last.offset..frame_end {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let seg = segment_path(copy.path(), &last);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let (wal, report) = Wal::open(options(copy.path(), SEGMENT)).unwrap();
        let torn = report.torn_tail.clone();
        if cut > last.offset {
            let torn = torn.expect("a torn tail is reported");
            assert_eq!((torn.offset, torn.bytes), (last.offset, cut - last.offset));
        } else {
            assert_eq!(torn, None, "a cut at a frame boundary is no tear");
        }
        let replayed = replay_all(&wal);
        assert_eq!(replayed.len(), bodies.len() - 1, "cut at {cut}");
        for ((pos, got), want) in replayed.iter().zip(&bodies) {
            assert_eq!(got, want, "record {} after cut at {cut}", pos.seq);
        }
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            last.offset,
            "the torn bytes are gone from disk"
        );
    }
}

#[test]
fn after_a_torn_tail_the_log_takes_new_records_and_reopens_cleanly() {
    let (dir, positions, bodies) = written_log(30);
    let last = *positions.last().unwrap();
    let seg = segment_path(dir.path(), &last);
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(last.offset + 5)
        .unwrap();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let pos = wal.append(Batch::of(b"after the tear").unwrap()).unwrap()[0];
    assert_eq!(
        pos.seq, last.seq,
        "the lost record's sequence number is reused"
    );
    drop(wal);
    let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(report.torn_tail, None);
    let replayed = replay_all(&wal);
    assert_eq!(replayed.len(), bodies.len());
    assert_eq!(replayed.last().unwrap().1, b"after the tear");
}

#[test]
fn a_garbage_tail_is_a_torn_write() {
    for tail in [
        vec![0xFFu8; 3],
        b"\x10\x00\x00\x00garbage".to_vec(),
        [b"\x10\x00".as_slice(), &[0u8; 4096]].concat(),
    ] {
        let (dir, positions, bodies) = written_log(20);
        let seg = segment_path(dir.path(), positions.last().unwrap());
        let mut bytes = fs::read(&seg).unwrap();
        let len = bytes.len() as u64;
        bytes.extend_from_slice(&tail);
        fs::write(&seg, bytes).unwrap();
        let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
        let torn = report.torn_tail.expect("a torn tail is reported");
        assert_eq!((torn.offset, torn.bytes), (len, tail.len() as u64));
        assert_eq!(replay_all(&wal).len(), bodies.len());
    }
}

#[test]
fn zeros_written_ahead_of_the_data_are_unused_space_not_a_tear() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let bodies: Vec<Vec<u8>> = (0..60).map(|i| body(i, 300)).collect();
    let positions = append_each(&wal, &bodies);
    let segments = wal.segments();
    let (sealed, active) = segments.split_at(segments.len() - 1);
    assert!(!sealed.is_empty(), "the log spans several segments");
    let file_len = |dir: &Path, first_seq: u64| {
        fs::metadata(dir.join("wal").join(format!("{first_seq:020}.seg")))
            .unwrap()
            .len()
    };
    for s in sealed {
        assert_eq!(
            file_len(dir.path(), s.first_seq),
            s.bytes,
            "a sealed segment ends with its last record"
        );
    }
    let active = active[0];
    assert!(
        file_len(dir.path(), active.first_seq) > active.bytes,
        "zeros are written ahead"
    );

    // What kill -9 leaves behind: the data, then the zeros.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    let (reopened, report) = Wal::open(options(crashed.path(), SEGMENT)).unwrap();
    assert_eq!(report.torn_tail, None);
    let replayed = replay_all(&reopened);
    assert_eq!(replayed.len(), bodies.len());
    assert_eq!(replayed.last().unwrap().0, *positions.last().unwrap());
    assert_eq!(
        file_len(crashed.path(), active.first_seq),
        active.bytes,
        "the zeros are cut off"
    );

    drop(wal);
    assert_eq!(
        file_len(dir.path(), active.first_seq),
        active.bytes,
        "a clean close leaves no zeros"
    );
}

#[test]
fn a_flipped_byte_in_an_older_segment_refuses_to_open_naming_file_and_offset() {
    let (dir, positions, _) = written_log(120);
    let victim = positions[3];
    assert!(victim.segment < positions.last().unwrap().segment);
    let seg = segment_path(dir.path(), &victim);
    flip_byte(&seg, victim.offset + 8 + u64::from(victim.len) / 2);

    let err = Wal::open(options(dir.path(), SEGMENT)).unwrap_err();
    match &err {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &seg);
            assert_eq!(*offset, victim.offset);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&format!("{:020}.seg", victim.segment)),
        "{message}"
    );
    assert!(
        message.contains(&format!("byte offset {}", victim.offset)),
        "{message}"
    );
}

#[test]
fn damage_in_several_segments_names_the_first_and_leaves_the_newest_as_it_was() {
    let (dir, positions, _) = written_log(400);
    let segments: Vec<u64> = {
        let mut s: Vec<u64> = positions.iter().map(|p| p.segment).collect();
        s.dedup();
        s
    };
    assert!(
        segments.len() > 4,
        "segments are checked on several threads"
    );
    // One frame damaged in each of the sealed segments but the first.
    let victims: Vec<Position> = segments[1..segments.len() - 1]
        .iter()
        .map(|&s| *positions.iter().find(|p| p.segment == s).unwrap())
        .collect();
    for victim in victims.iter().rev() {
        flip_byte(&segment_path(dir.path(), victim), victim.offset + 9);
    }
    // And a torn tail on the newest, which a refused open must not cut.
    let last = *positions.last().unwrap();
    let newest = segment_path(dir.path(), &last);
    let torn_len = last.offset + 8 + u64::from(last.len) / 2;
    OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(torn_len)
        .unwrap();

    for _ in 0..3 {
        match Wal::open(options(dir.path(), SEGMENT)).unwrap_err() {
            WalError::Corrupt { path, offset, .. } => {
                assert_eq!(path, segment_path(dir.path(), &victims[0]));
                assert_eq!(offset, victims[0].offset);
            }
            other => panic!("expected corruption, got {other}"),
        }
        assert_eq!(fs::metadata(&newest).unwrap().len(), torn_len);
    }
}

#[test]
fn skip_corrupt_opens_reports_the_loss_and_keeps_everything_else() {
    let (dir, positions, bodies) = written_log(120);
    let victim = positions[3];
    let seg = segment_path(dir.path(), &victim);
    flip_byte(&seg, victim.offset + 2);

    let mut opts = options(dir.path(), SEGMENT);
    opts.recovery = RecoveryMode::SkipCorrupt;
    let (wal, report) = Wal::open(opts).unwrap();
    assert_eq!(report.skipped.len(), 1);
    let lost = &report.skipped[0];
    assert_eq!(
        (lost.path.as_path(), lost.offset),
        (seg.as_path(), victim.offset)
    );
    assert_eq!(
        lost.bytes,
        8 + u64::from(victim.len),
        "exactly the damaged frame is lost"
    );
    let replayed: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
    let mut expected = bodies.clone();
    expected.remove(3);
    assert_eq!(replayed, expected);
}

#[test]
fn a_skip_corrupt_open_rewrites_the_damage_away_so_later_strict_opens_succeed() {
    let (dir, positions, bodies) = written_log(120);
    let last = *positions.last().unwrap();
    let in_newest = positions
        .iter()
        .rev()
        .position(|p| p.segment == last.segment && p.seq < last.seq - 1)
        .map(|back| positions.len() - 1 - back)
        .unwrap();
    for i in [3, in_newest] {
        let victim = positions[i];
        flip_byte(&segment_path(dir.path(), &victim), victim.offset + 9);
    }
    let mut expected = bodies.clone();
    expected.remove(in_newest);
    expected.remove(3);

    let mut opts = options(dir.path(), SEGMENT);
    opts.recovery = RecoveryMode::SkipCorrupt;
    let (wal, report) = Wal::open(opts).unwrap();
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    drop(wal);
    for _ in 0..2 {
        let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
        assert!(
            report.skipped.is_empty() && report.torn_tail.is_none(),
            "{report:?}"
        );
        let replayed: Vec<Vec<u8>> = replay_all(&wal).into_iter().map(|(_, b)| b).collect();
        assert_eq!(replayed, expected);
        let pos = wal.append(Batch::of(b"after").unwrap()).unwrap()[0];
        assert_eq!(&*wal.read(&pos).unwrap(), b"after");
        expected.push(b"after".to_vec());
    }
    let left: Vec<_> = fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.ends_with(".seg"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn damage_in_the_newest_segment_followed_by_valid_frames_is_corruption_not_a_tear() {
    let (dir, positions, _) = written_log(120);
    let last = positions.last().unwrap();
    let victim = positions
        .iter()
        .rev()
        .find(|p| p.segment == last.segment && p.seq < last.seq - 1)
        .unwrap();
    flip_byte(&segment_path(dir.path(), victim), victim.offset + 9);
    assert!(matches!(
        Wal::open(options(dir.path(), SEGMENT)),
        Err(WalError::Corrupt { offset, .. }) if offset == victim.offset
    ));
}

#[test]
fn a_damaged_header_of_a_sealed_segment_refuses_to_open() {
    let (dir, positions, _) = written_log(120);
    flip_byte(&segment_path(dir.path(), &positions[0]), 0);
    let err = Wal::open(options(dir.path(), SEGMENT)).unwrap_err();
    assert!(matches!(err, WalError::BadHeader { .. }), "{err}");
    assert!(
        err.to_string().contains("00000000000000000000.seg"),
        "{err}"
    );
}

#[test]
fn a_newest_segment_whose_header_never_reached_disk_is_reinitialised() {
    let (dir, positions, bodies) = written_log(50);
    let next = positions.last().unwrap().seq + 1;
    let path = dir.path().join("wal").join(format!("{next:020}.seg"));
    fs::write(&path, [0u8; 10]).unwrap();
    let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    assert_eq!(report.torn_tail.unwrap().bytes, 10);
    assert_eq!(replay_all(&wal).len(), bodies.len());
    let pos = wal.append(Batch::of(b"x").unwrap()).unwrap()[0];
    assert_eq!((pos.seq, pos.segment), (next, next));
}

#[test]
fn a_second_open_of_the_same_data_directory_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let err = Wal::open(options(dir.path(), SEGMENT)).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

#[test]
fn deleting_old_segments_keeps_the_active_one_and_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let bodies: Vec<Vec<u8>> = (0..200).map(|i| body(i, 300)).collect();
    let positions = append_each(&wal, &bodies);
    let segments = wal.segments();
    assert!(segments.len() >= 4);
    let keep_from = segments[2].first_seq;
    assert_eq!(wal.delete_before(keep_from).unwrap(), 2);
    assert_eq!(wal.segments()[0].first_seq, keep_from);
    assert!(matches!(
        wal.read(&positions[0]),
        Err(WalError::NoSuchPosition { .. })
    ));
    assert_eq!(wal.delete_before(u64::MAX).unwrap(), segments.len() - 3);
    let active = wal.segments();
    assert_eq!(active.len(), 1, "only the active segment is left");
    assert!(!active[0].sealed);
    drop(wal);
    let (wal, _) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
    let replayed = replay_all(&wal);
    assert_eq!(replayed.first().unwrap().0.segment, active[0].first_seq);
    assert_eq!(replayed.last().unwrap().1, *bodies.last().unwrap());
}
