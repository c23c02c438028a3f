//! Arbitrary bytes as a segment of the log, through the frame decoder and
//! then on disk, as a segment of a small log, through `check_log`, recovery
//! and a second, strict open.
//!
//! The first byte chooses the log around the segment ([`Shape`]); the rest
//! is the segment, either as it is or as steps that build it (frames whose
//! checksums are right, so the fuzzer reaches the batch rules without
//! guessing a CRC). Asserted:
//!
//! - nothing panics; an open that fails fails with an error naming damage;
//! - every valid frame re-encodes to the same bytes;
//! - `check_log` and recovery agree: strict recovery opens exactly the logs
//!   `check_log` finds undamaged, both keep the same records and report the
//!   same torn tail, and skip-corrupt recovery skips what `check_log` reports;
//! - a recovered log opens again strictly with nothing to repair and the
//!   same records, and takes appends;
//! - the records recovered, framed again, decode to the same records.
#![no_main]

use std::path::Path;

use event_broker_wal::format::{self, Frame, HEADER_LEN};
use event_broker_wal::{check_log, Batch, FsyncPolicy, RecoveryMode, Wal, WalError, WalOptions};
use libfuzzer_sys::fuzz_target;

/// The records of the sealed segment before the fuzzed one.
const OLDER: [&[u8]; 3] = [b"first", b"", b"third record"];
/// First sequence number of the segment after the fuzzed one, when there is
/// one: far past anything the fuzzed one can hold, so they never overlap.
const LATER_SEQ: u64 = 1 << 40;
/// What is appended once the log is open.
const APPENDED: &[u8] = b"appended after recovery";

/// The log around the fuzzed segment, from the input's first byte.
#[derive(Debug, Clone, Copy)]
struct Shape {
    skip_corrupt: bool,
    /// A sealed segment of [`OLDER`] comes first.
    older: bool,
    /// Another segment comes after, so the fuzzed one is sealed, not newest.
    later: bool,
    /// The rest of the input is steps (see [`build`]), not the segment's bytes.
    steps: bool,
    /// With `steps`: a version 1 header; without: a valid header goes in
    /// front of the bytes.
    alt_header: bool,
}

impl Shape {
    fn of(flags: u8) -> Shape {
        Shape {
            skip_corrupt: flags & 1 != 0,
            older: flags & 2 == 0,
            later: flags & 4 != 0,
            steps: flags & 8 != 0,
            alt_header: flags & 16 != 0,
        }
    }

    fn mode(self) -> RecoveryMode {
        if self.skip_corrupt {
            RecoveryMode::SkipCorrupt
        } else {
            RecoveryMode::Strict
        }
    }

    fn first_seq(self) -> u64 {
        if self.older {
            OLDER.len() as u64
        } else {
            0
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let shape = Shape::of(flags);
    let segment = if shape.steps {
        build(rest, shape.first_seq(), shape.alt_header)
    } else if shape.alt_header {
        [&format::encode_header(shape.first_seq())[..], rest].concat()
    } else {
        rest.to_vec()
    };
    walk_frames(&segment);
    on_disk(shape, &segment);
});

/// A segment header, of version 1 when `v1`.
fn header(first_seq: u64, v1: bool) -> Vec<u8> {
    let mut head = format::encode_header(first_seq).to_vec();
    if v1 {
        head[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&head[..20]);
        head[20..24].copy_from_slice(&crc.to_le_bytes());
    }
    head
}

/// A segment from steps of two bytes and what they take: `op`, `n`, then
/// for a frame or raw bytes up to `n` bytes of the input.
fn build(mut steps: &[u8], first_seq: u64, v1: bool) -> Vec<u8> {
    let mut out = header(first_seq, v1);
    while let [op, n, tail @ ..] = steps {
        let n = usize::from(*n);
        steps = tail;
        match op % 5 {
            0 | 1 => {
                let (body, tail) = steps.split_at(n.min(steps.len()));
                steps = tail;
                let at = out.len();
                format::start_frame(body, &mut out);
                // Bit 0 of the step: the batch goes on after this frame.
                format::finish_frame(&mut out[at..], op % 5 == 1);
            }
            2 => {
                let (raw, tail) = steps.split_at(n.min(steps.len()));
                steps = tail;
                out.extend_from_slice(raw);
            }
            // Space the writer wrote ahead.
            3 => out.resize(out.len() + n, 0),
            // A write cut short.
            _ => out.truncate(out.len().saturating_sub(n)),
        }
    }
    out
}

/// The pure decoder over the bytes: every valid frame encodes back to the
/// same bytes; damage is stepped over to the next valid frame.
fn walk_frames(bytes: &[u8]) {
    if let Ok(head) = format::decode_header(bytes) {
        if head.version == format::VERSION {
            assert_eq!(
                format::encode_header(head.first_seq)[..],
                bytes[..HEADER_LEN]
            );
        }
    }
    let mut at = HEADER_LEN.min(bytes.len());
    while at < bytes.len() {
        match format::decode_frame(&bytes[at..]) {
            Frame::Valid {
                body,
                len,
                continues,
            } => {
                assert_eq!(len, format::frame_len(body.len()));
                let mut again = Vec::new();
                format::start_frame(body, &mut again);
                format::finish_frame(&mut again, continues);
                assert_eq!(
                    again,
                    &bytes[at..at + len],
                    "frame at {at} re-encodes otherwise"
                );
                at += len;
            }
            Frame::Truncated | Frame::Invalid(_) => match format::find_next_frame(bytes, at + 1) {
                Some(next) => {
                    assert!(next > at);
                    assert!(matches!(
                        format::decode_frame(&bytes[next..]),
                        Frame::Valid { .. }
                    ));
                    at = next;
                }
                None => break,
            },
        }
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> std::path::PathBuf {
    dir.join("wal").join(format!("{first_seq:020}.seg"))
}

fn frames(first_seq: u64, bodies: &[&[u8]]) -> Vec<u8> {
    let mut out = format::encode_header(first_seq).to_vec();
    for body in bodies {
        format::encode_frame(body, &mut out);
    }
    out
}

/// A fresh directory, in memory when the machine has a tmpfs at /dev/shm:
/// recovery syncs what it repairs, which a disk makes slow.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = &mut tempfile::Builder::new();
    builder.prefix("wal-fuzz-");
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("a scratch directory")
}

fn options(dir: &Path, mode: RecoveryMode) -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 10,
        fsync: FsyncPolicy::Never,
        recovery: mode,
        ..WalOptions::new(dir)
    }
}

type Records = Vec<(u64, Vec<u8>)>;

fn replay(wal: &Wal) -> Records {
    let mut out = Vec::new();
    for segment in wal.replay() {
        let segment = segment.expect("a recovered segment maps");
        for record in segment.records() {
            let (pos, body) = record.expect("a recovered record reads");
            out.push((pos.seq, body.to_vec()));
        }
    }
    out
}

fn on_disk(shape: Shape, segment: &[u8]) {
    let dir = scratch();
    std::fs::create_dir(dir.path().join("wal")).expect("wal directory");
    if shape.older {
        std::fs::write(segment_path(dir.path(), 0), frames(0, &OLDER)).expect("write");
    }
    std::fs::write(segment_path(dir.path(), shape.first_seq()), segment).expect("write");
    if shape.later {
        let later = frames(LATER_SEQ, &[b"later"]);
        std::fs::write(segment_path(dir.path(), LATER_SEQ), later).expect("write");
    }
    let mut checked = Records::new();
    let check = check_log(dir.path(), &mut |pos, body| {
        checked.push((pos.seq, body.to_vec()))
    })
    .expect("a data directory can be checked");
    let (wal, report) = match Wal::open(options(dir.path(), shape.mode())) {
        Ok(opened) => opened,
        Err(e) => {
            assert!(
                check.is_damaged(),
                "open failed on a log check_log passed: {e}"
            );
            let named = match e {
                WalError::BadHeader { .. } | WalError::SegmentNameMismatch { .. } => true,
                WalError::Corrupt { .. } | WalError::SegmentOverlap { .. } => !shape.skip_corrupt,
                _ => false,
            };
            assert!(named, "open failed with an error that names no damage: {e}");
            return;
        }
    };
    if shape.skip_corrupt {
        assert_eq!(
            report.skipped, check.damage,
            "skipped other damage than check_log found"
        );
    } else {
        assert!(
            !check.is_damaged(),
            "strict recovery opened a damaged log: {:?}",
            check.damage
        );
    }
    assert_eq!(
        report.torn_tail, check.torn_tail,
        "recovery and check_log see other tears"
    );
    let recovered = replay(&wal);
    assert_eq!(report.records, recovered.len() as u64);
    assert_eq!(
        recovered, checked,
        "recovery kept other records than check_log read"
    );
    if shape.older {
        let bodies: Vec<&[u8]> = recovered[..OLDER.len()]
            .iter()
            .map(|(_, b)| &b[..])
            .collect();
        assert_eq!(
            bodies, OLDER,
            "the sealed segment before the fuzzed one changed"
        );
    }
    let appended = wal
        .append(Batch::of(APPENDED).expect("a small batch"))
        .expect("a recovered log takes appends");
    wal.close().expect("close");
    drop(wal);

    let (again, report) = Wal::open(options(dir.path(), RecoveryMode::Strict))
        .expect("a recovered log opens again strictly");
    assert_eq!(report.torn_tail, None, "a second open found a tear");
    assert!(report.skipped.is_empty());
    let mut expected = recovered;
    expected.push((appended[0].seq, APPENDED.to_vec()));
    assert_eq!(
        replay(&again),
        expected,
        "a second open reads other records"
    );
    again.close().expect("close");
    reframe(&expected);
}

/// The records framed again, one batch of one each, decode to themselves.
fn reframe(records: &Records) {
    let mut bytes = format::encode_header(0).to_vec();
    for (_, body) in records {
        format::encode_frame(body, &mut bytes);
    }
    let mut at = HEADER_LEN;
    for (_, body) in records {
        let Frame::Valid {
            body: read,
            len,
            continues: false,
        } = format::decode_frame(&bytes[at..])
        else {
            panic!("a re-encoded record does not decode");
        };
        assert_eq!(read, &body[..]);
        at += len;
    }
    assert_eq!(at, bytes.len());
}
