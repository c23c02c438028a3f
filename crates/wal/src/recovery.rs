//! Opening the log: every segment is checked frame by frame; a torn tail of
//! the newest segment is cut off, anything else damaged stops the open unless
//! the operator chose [`RecoveryMode::SkipCorrupt`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::error::WalError;
use super::format::{self, encode_header, FrameDefect, HEADER_LEN};
use super::fs::FileSystem;
use super::scan::{self, HeaderFault};
use super::segment;

/// How recovery treats a damaged frame that is not a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open, naming the file and offset (the default).
    #[default]
    Strict,
    /// Skip to the next valid frame and report how many bytes were lost.
    SkipCorrupt,
}

impl FromStr for RecoveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(RecoveryMode::Strict),
            "skip-corrupt" => Ok(RecoveryMode::SkipCorrupt),
            _ => Err("expected strict or skip-corrupt".into()),
        }
    }
}

/// A run of bytes recovery could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// The segment file.
    pub path: PathBuf,
    /// Where the damage starts.
    pub offset: u64,
    /// How many bytes were passed over.
    pub bytes: u64,
    /// What was wrong at `offset`.
    pub defect: String,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found (after recovery, including a freshly created one).
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// Bytes of valid records, frame headers included.
    pub bytes: u64,
    /// The torn tail cut off the newest segment: an interrupted write that was
    /// never acknowledged under `WAL_FSYNC=always`.
    pub torn_tail: Option<LostRange>,
    /// Damage skipped under [`RecoveryMode::SkipCorrupt`]: records lost.
    pub skipped: Vec<LostRange>,
}

/// A segment as recovery left it.
#[derive(Debug, Clone)]
pub(crate) struct RecoveredSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub len: u64,
    pub records: u64,
    /// The format version of its header.
    pub version: u32,
}

/// Checks every segment in `dir`, repairing the newest one's tail, and hands
/// each one to `checked` in log order as soon as it and all before it
/// passed, so that replay can go on while later segments are being read.
///
/// Sealed segments are checked on as many threads as there are cores: each
/// one is checked on its own, and checking is much of the time a start
/// takes, as every byte of the log goes through its checksum. What they
/// found is taken in segment order, so the first error in the log is the
/// one named, and the newest segment, whose torn tail is cut off, is
/// checked last, only once all before it passed, as it always was.
pub(crate) fn recover(
    dir: &Path,
    fs: &dyn FileSystem,
    mode: RecoveryMode,
    checked: &mut dyn FnMut(&RecoveredSegment),
) -> Result<(Vec<RecoveredSegment>, RecoveryReport), WalError> {
    let mut listed = segment::list(dir)?;
    let newest = listed.pop();
    let mut log = Recovered {
        segments: Vec::with_capacity(listed.len() + 1),
        report: RecoveryReport::default(),
        mode,
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Takes the next unchecked sealed segment until none is left or an
    // earlier one failed.
    let check = &|tx: mpsc::Sender<(usize, Checked)>| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((first_seq, path)) = listed.get(i) else {
                return;
            };
            let mut report = RecoveryReport::default();
            let seg = recover_segment(*first_seq, path.clone(), false, fs, mode, &mut report);
            if tx.send((i, (seg, report))).is_err() {
                return;
            }
        }
    };
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let started = (0..threads.min(listed.len()))
            .filter(|_| {
                let tx = tx.clone();
                let builder = std::thread::Builder::new().name("wal-check".into());
                builder.spawn_scoped(scope, move || check(tx)).is_ok()
            })
            .count();
        if started == 0 {
            // No thread could be started: this one checks them all first.
            check(tx.clone());
        }
        drop(tx);
        let mut ahead: BTreeMap<usize, Checked> = BTreeMap::new();
        for want in 0..listed.len() {
            let found = match ahead.remove(&want) {
                Some(found) => found,
                None => loop {
                    let (i, found) = rx.recv().expect("a segment check ended early");
                    if i == want {
                        break found;
                    }
                    ahead.insert(i, found);
                },
            };
            match log.take(found) {
                Ok(seg) => checked(seg),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    })?;
    if let Some((first_seq, path)) = newest {
        let mut report = RecoveryReport::default();
        let seg = recover_segment(first_seq, path, true, fs, mode, &mut report);
        checked(log.take((seg, report))?);
    }
    log.report.segments = log.segments.len();
    Ok((log.segments, log.report))
}

/// One segment's check: what it left, and what it found.
type Checked = (Result<RecoveredSegment, WalError>, RecoveryReport);

/// The segments checked so far, in order, and what was found in them.
struct Recovered {
    segments: Vec<RecoveredSegment>,
    report: RecoveryReport,
    mode: RecoveryMode,
}

impl Recovered {
    /// Adds the next segment's check, or its error, or that it overlaps the
    /// one before it.
    fn take(&mut self, (seg, part): Checked) -> Result<&RecoveredSegment, WalError> {
        let seg = seg?;
        if let Some(prev) = self.segments.last() {
            if prev.first_seq + prev.records > seg.first_seq && self.mode == RecoveryMode::Strict {
                return Err(WalError::SegmentOverlap {
                    path: seg.path,
                    previous_end: prev.first_seq + prev.records,
                });
            }
        }
        self.report.bytes += part.bytes;
        self.report.skipped.extend(part.skipped);
        self.report.torn_tail = part.torn_tail.or(self.report.torn_tail.take());
        self.report.records += seg.records;
        self.segments.push(seg);
        Ok(self.segments.last().expect("just pushed"))
    }
}

fn recover_segment(
    first_seq: u64,
    path: PathBuf,
    newest: bool,
    fs: &dyn FileSystem,
    mode: RecoveryMode,
    report: &mut RecoveryReport,
) -> Result<RecoveredSegment, WalError> {
    let file_len = std::fs::metadata(&path)
        .map_err(|e| WalError::io("stat", &path, e))?
        .len();
    let map = segment::map_whole(&path, file_len)?;
    let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
    let strict = mode == RecoveryMode::Strict;
    let found = scan::scan(bytes, first_seq, newest, strict, &mut |_, _| {})
        .map_err(|fault| header_error(&path, fault))?;
    if found.unwritten_header {
        // The segment was being created when the process died: its header
        // never reached the disk, so no record did either.
        drop(map);
        rewrite_header(fs, &path, first_seq)?;
        if file_len > 0 {
            report.torn_tail = Some(LostRange {
                path: path.clone(),
                offset: 0,
                bytes: file_len,
                defect: "incomplete segment header".into(),
            });
        }
        return Ok(RecoveredSegment {
            first_seq,
            path,
            len: HEADER_LEN as u64,
            records: 0,
            version: format::VERSION,
        });
    }
    if let (true, Some(bad)) = (strict, found.corrupt.first()) {
        return Err(WalError::Corrupt {
            path,
            offset: bad.offset as u64,
            defect: bad.defect,
        });
    }
    for bad in &found.corrupt {
        tracing::error!(path = %path.display(), offset = bad.offset, bytes = bad.until - bad.offset,
            defect = %bad.defect, "skipping corrupt log data: the records it held are lost");
        report
            .skipped
            .push(lost(&path, bad.offset, bad.until, bad.defect));
    }
    if let Some(torn) = found.torn {
        report.torn_tail = Some(lost(&path, torn.offset, torn.until, torn.defect));
    }
    report.bytes += found.frame_bytes;
    if !found.corrupt.is_empty() {
        let kept = kept_frames(bytes, first_seq, newest).map_err(|f| header_error(&path, f))?;
        drop(map);
        rewrite(fs, &path, &kept)?;
        tracing::warn!(path = %path.display(), bytes = file_len - kept.len() as u64,
            "rewrote the segment without the damage it skipped: later starts open it as this one did");
        return Ok(RecoveredSegment {
            first_seq,
            path,
            len: kept.len() as u64,
            records: found.records,
            version: found.version,
        });
    }
    if newest && (found.valid_end as u64) < file_len {
        drop(map);
        truncate(fs, &path, found.valid_end as u64)?;
        if let Some(torn) = &report.torn_tail {
            tracing::warn!(path = %path.display(), offset = torn.offset, bytes = torn.bytes,
                "cut a torn write off the end of the log (never acknowledged under WAL_FSYNC=always)");
        }
    }
    Ok(RecoveredSegment {
        first_seq,
        path,
        len: if newest {
            found.valid_end as u64
        } else {
            file_len
        },
        records: found.records,
        version: found.version,
    })
}

/// The segment as skip-corrupt recovery reads it: its header and the frames
/// it keeps, byte for byte. A frame that damage cut off from the rest of its
/// batch ends a batch of its own here, as recovery took it.
fn kept_frames(bytes: &[u8], first_seq: u64, newest: bool) -> Result<Vec<u8>, HeaderFault> {
    let mut kept = bytes[..HEADER_LEN].to_vec();
    let mut last: Option<(usize, usize)> = None;
    let mut keep = |offset: usize, body: &[u8]| {
        let end = offset + format::frame_len(body.len());
        if let Some((at, prev_end)) = last {
            if prev_end != offset {
                format::finish_frame(&mut kept[at..], false);
            }
        }
        last = Some((kept.len(), end));
        kept.extend_from_slice(&bytes[offset..end]);
    };
    scan::scan(bytes, first_seq, newest, false, &mut keep)?;
    if let Some((at, _)) = last {
        format::finish_frame(&mut kept[at..], false);
    }
    Ok(kept)
}

fn header_error(path: &Path, fault: HeaderFault) -> WalError {
    let path = path.to_path_buf();
    match fault {
        HeaderFault::Mismatch { header_seq } => WalError::SegmentNameMismatch { path, header_seq },
        HeaderFault::Bad(defect) => WalError::BadHeader { path, defect },
    }
}

/// Replaces the segment at `path` with `bytes`: written whole beside it,
/// then renamed over it, so that a crash leaves the old file or the new.
fn rewrite(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), WalError> {
    let staging = path.with_extension("seg.repair");
    match fs.remove_file(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(WalError::io("remove", &staging, e))
        }
        _ => {}
    }
    let mut file = fs
        .create_new(&staging)
        .map_err(|e| WalError::io("create", &staging, e))?;
    file.write_all_at(bytes, 0)
        .map_err(|e| WalError::io("write", &staging, e))?;
    file.sync_data()
        .map_err(|e| WalError::io("fsync", &staging, e))?;
    drop(file);
    std::fs::rename(&staging, path).map_err(|e| WalError::io("rename", &staging, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir).map_err(|e| WalError::io("fsync", dir, e))
}

fn lost(path: &Path, from: usize, until: usize, defect: FrameDefect) -> LostRange {
    LostRange {
        path: path.to_path_buf(),
        offset: from as u64,
        bytes: (until - from) as u64,
        defect: defect.to_string(),
    }
}

fn truncate(fs: &dyn FileSystem, path: &Path, len: u64) -> Result<(), WalError> {
    let mut file = fs
        .open_write(path)
        .map_err(|e| WalError::io("open", path, e))?;
    file.set_len(len)
        .map_err(|e| WalError::io("truncate", path, e))?;
    file.sync_data().map_err(|e| WalError::io("fsync", path, e))
}

/// Gives a segment that holds no record a new header of this build's
/// version. Safe to be cut short by a crash: a newest segment whose header
/// never reached the disk is recovered as an empty one.
pub(crate) fn rewrite_header(
    fs: &dyn FileSystem,
    path: &Path,
    first_seq: u64,
) -> Result<(), WalError> {
    let mut file = fs
        .open_write(path)
        .map_err(|e| WalError::io("open", path, e))?;
    file.set_len(0)
        .map_err(|e| WalError::io("truncate", path, e))?;
    file.write_all_at(&encode_header(first_seq), 0)
        .map_err(|e| WalError::io("write header", path, e))?;
    file.sync_data().map_err(|e| WalError::io("fsync", path, e))
}
