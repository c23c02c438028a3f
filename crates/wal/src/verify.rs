//! Checking a log on disk without opening it: a data directory, in use by a
//! broker or not, or a checkpoint against its manifest.
//!
//! A data directory is read with `read`, never mapped, and its lock is not
//! taken: a running broker may seal its active segment meanwhile, which cuts
//! the zeros written ahead off the file, and a mapped page past the new end
//! would raise SIGBUS. Segments are judged by recovery's rules
//! ([`scan`](super::scan)): damage at the end of the newest segment with
//! nothing valid after it is a torn write, reported but not damage, since
//! recovery cuts it off and a running broker may be writing it right now.

use std::io;
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::error::WalError;
use super::recovery::LostRange;
use super::scan::{self, HeaderFault, SegmentScan};
use super::segment;
use super::Position;

/// What kind of directory was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// A data directory: segments in its `wal/` folder.
    DataDir,
    /// A checkpoint: segments beside a `manifest.json` that names each one
    /// with its size and checksum.
    Checkpoint,
}

/// One segment as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSegment {
    /// The segment file.
    pub path: PathBuf,
    /// Its first sequence number.
    pub first_seq: u64,
    /// Its size when read.
    pub bytes: u64,
    /// Valid records in it.
    pub records: u64,
}

/// What checking a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// What was checked.
    pub kind: LogKind,
    /// The segments read, oldest first.
    pub segments: Vec<CheckedSegment>,
    /// An interrupted write at the end of the newest segment of a data
    /// directory: recovery cuts it off; not damage.
    pub torn_tail: Option<LostRange>,
    /// Damage, in log order: a broker would refuse to open the log.
    pub damage: Vec<LostRange>,
    /// Segments listed but gone before they were read: a running broker's
    /// cleanup deletes the oldest segments.
    pub vanished: Vec<PathBuf>,
}

impl LogCheck {
    pub(crate) fn new(kind: LogKind) -> Self {
        LogCheck {
            kind,
            segments: Vec::new(),
            torn_tail: None,
            damage: Vec::new(),
            vanished: Vec::new(),
        }
    }

    /// Valid records in all segments.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Bytes in all segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// True when a broker would refuse to open the log as it is.
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
    }

    /// Judges one segment's bytes and records the verdict; `visit` sees
    /// every valid record with its position.
    pub(crate) fn judge(
        &mut self,
        path: &Path,
        first_seq: u64,
        bytes: &[u8],
        newest: bool,
        visit: &mut dyn FnMut(&Position, &[u8]),
    ) {
        let mut seq = first_seq;
        let mut positioned = |offset: usize, body: &[u8]| {
            let pos = Position {
                seq,
                segment: first_seq,
                offset: offset as u64,
                len: body.len() as u32,
            };
            seq += 1;
            visit(&pos, body);
        };
        let found = match scan::scan(bytes, first_seq, newest, false, &mut positioned) {
            Ok(found) => found,
            Err(fault) => {
                let defect = match fault {
                    HeaderFault::Bad(defect) => format!("bad segment header: {defect}"),
                    HeaderFault::Mismatch { header_seq } => format!(
                        "the header says the segment starts at sequence {header_seq}, not as its name says"
                    ),
                };
                self.damage.push(whole(path, bytes.len(), defect));
                SegmentScan::default()
            }
        };
        self.overlap(path, first_seq);
        if found.unwritten_header && !bytes.is_empty() {
            self.torn_tail = Some(whole(path, bytes.len(), "incomplete segment header".into()));
        }
        if let Some(torn) = found.torn {
            self.torn_tail = Some(lost(path, torn.offset, torn.until, torn.defect.to_string()));
        }
        for bad in found.corrupt {
            self.damage
                .push(lost(path, bad.offset, bad.until, bad.defect.to_string()));
        }
        self.segments.push(CheckedSegment {
            path: path.to_path_buf(),
            first_seq,
            bytes: bytes.len() as u64,
            records: found.records,
        });
    }

    /// A segment that starts before the previous one ends: strict recovery refuses it.
    fn overlap(&mut self, path: &Path, first_seq: u64) {
        let Some(prev) = self.segments.last() else {
            return;
        };
        let previous_end = prev.first_seq + prev.records;
        if previous_end > first_seq {
            self.damage.push(whole(
                path,
                0,
                format!("starts before the previous segment ends (sequence {previous_end})"),
            ));
        }
    }
}

/// Checks the log in `dir`: a checkpoint when it holds `manifest.json`,
/// otherwise a data directory (segments in `dir/wal/`). `visit` sees every
/// valid record, oldest first, with its position.
///
/// Damage is reported in the answer; an error means the directory could not
/// be checked at all.
pub fn check_log(
    dir: &Path,
    visit: &mut dyn FnMut(&Position, &[u8]),
) -> Result<LogCheck, WalError> {
    if dir.join(checkpoint::MANIFEST).is_file() {
        return checkpoint::check_checkpoint(dir, visit);
    }
    let wal_dir = dir.join("wal");
    if !wal_dir.is_dir() {
        return Err(WalError::NotALog {
            dir: dir.to_path_buf(),
        });
    }
    check_data_dir(&wal_dir, visit)
}

fn check_data_dir(
    wal_dir: &Path,
    visit: &mut dyn FnMut(&Position, &[u8]),
) -> Result<LogCheck, WalError> {
    let mut check = LogCheck::new(LogKind::DataDir);
    let listed = segment::list(wal_dir)?;
    let newest = listed.len().saturating_sub(1);
    for (i, (first_seq, path)) in listed.into_iter().enumerate() {
        let Some(mut bytes) = read_segment(&path, &mut check)? else {
            continue;
        };
        if i == newest && !clean_newest(&bytes, first_seq) {
            // A reader racing the writer can see a later page of one write
            // before an earlier one, which looks like damage followed by a
            // valid frame. The writer has moved on by the second read; damage
            // that is on disk is still there.
            match read_segment(&path, &mut check)? {
                Some(again) => bytes = again,
                None => continue,
            }
        }
        check.judge(&path, first_seq, &bytes, i == newest, visit);
    }
    Ok(check)
}

/// True when the newest segment's bytes hold no corruption.
fn clean_newest(bytes: &[u8], first_seq: u64) -> bool {
    scan::scan(bytes, first_seq, true, true, &mut |_, _| {})
        .is_ok_and(|found| found.corrupt.is_empty())
}

/// The bytes of a segment; `None` when it is gone (deleted by cleanup).
fn read_segment(path: &Path, check: &mut LogCheck) -> Result<Option<Vec<u8>>, WalError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            check.vanished.push(path.to_path_buf());
            Ok(None)
        }
        Err(e) => Err(WalError::io("read", path, e)),
    }
}

pub(crate) fn lost(path: &Path, from: usize, until: usize, defect: String) -> LostRange {
    LostRange {
        path: path.to_path_buf(),
        offset: from as u64,
        bytes: (until - from) as u64,
        defect,
    }
}

/// Damage to a whole file (or to what it should be), from its start.
pub(crate) fn whole(path: &Path, len: usize, defect: String) -> LostRange {
    lost(path, 0, len, defect)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::{Batch, Wal, WalOptions};

    fn wal_with_records(dir: &Path, n: u64) -> Wal {
        let options = WalOptions {
            segment_bytes: 16 * 1024,
            ..WalOptions::new(dir)
        };
        let (wal, _) = Wal::open(options).unwrap();
        for i in 0..n {
            wal.append(Batch::of(&[i as u8; 300]).unwrap()).unwrap();
        }
        wal
    }

    fn positions(dir: &Path) -> (LogCheck, Vec<Position>) {
        let mut seen = Vec::new();
        let check = check_log(dir, &mut |pos, _| seen.push(*pos)).unwrap();
        (check, seen)
    }

    #[test]
    fn a_log_in_use_is_checked_without_its_lock_with_the_positions_replay_gives() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_with_records(dir.path(), 200);
        let (check, seen) = positions(dir.path());
        assert_eq!(check.kind, LogKind::DataDir);
        assert!(check.segments.len() > 2);
        assert_eq!((check.records(), check.damage.len()), (200, 0));
        let replayed: Vec<Position> = wal
            .replay()
            .flat_map(|s| {
                let s = s.unwrap();
                s.records().map(|r| r.unwrap().0).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(seen, replayed);
        wal.append(Batch::of(b"still writable").unwrap()).unwrap();
    }

    #[test]
    fn a_flipped_byte_in_a_sealed_segment_is_damage_at_its_frame() {
        let dir = tempfile::tempdir().unwrap();
        drop(wal_with_records(dir.path(), 200));
        let (_, seen) = positions(dir.path());
        let victim = seen[3];
        let path = dir
            .path()
            .join("wal")
            .join(segment::file_name(victim.segment));
        let mut bytes = fs::read(&path).unwrap();
        bytes[victim.offset as usize + 20] ^= 1;
        fs::write(&path, bytes).unwrap();

        let (check, seen) = positions(dir.path());
        assert_eq!(check.damage.len(), 1);
        assert_eq!(
            (check.damage[0].path.as_path(), check.damage[0].offset),
            (path.as_path(), victim.offset)
        );
        assert_eq!(
            seen.len(),
            199,
            "the records after the damage are still read"
        );
        let err = Wal::open(WalOptions::new(dir.path())).unwrap_err();
        assert!(
            matches!(err, WalError::Corrupt { offset, .. } if offset == victim.offset),
            "{err}"
        );
    }

    #[test]
    fn a_torn_tail_of_the_newest_segment_is_reported_as_recovery_would_cut_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(wal_with_records(dir.path(), 100));
        let (check, _) = positions(dir.path());
        let newest = check.segments.last().unwrap().path.clone();
        let mut bytes = fs::read(&newest).unwrap();
        bytes.extend_from_slice(&[0x55; 37]);
        fs::write(&newest, bytes).unwrap();

        let (check, _) = positions(dir.path());
        assert!(!check.is_damaged());
        let torn = check.torn_tail.clone().expect("a torn tail");
        let (_, report) = Wal::open(WalOptions::new(dir.path())).unwrap();
        assert_eq!(report.torn_tail, Some(torn));
    }

    #[test]
    fn a_checkpoint_with_a_segment_missing_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_with_records(dir.path(), 200);
        let info = wal.checkpoint("cp").unwrap();
        let cp = dir.path().join(info.path);
        fs::remove_file(cp.join(segment::file_name(0))).unwrap();
        let (check, _) = positions(&cp);
        assert_eq!(check.kind, LogKind::Checkpoint);
        assert!(
            check.damage[0].defect.starts_with("missing"),
            "{:?}",
            check.damage
        );
    }

    #[test]
    fn a_directory_without_a_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_log(dir.path(), &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, WalError::NotALog { .. }), "{err}");
    }
}
