//! The write-ahead log: an append-only sequence of opaque records in segment
//! files. It knows bytes, not queues.
//!
//! # On disk
//!
//! ```text
//! DATA_DIR/LOCK                       flock'd by the one process that owns DATA_DIR
//! DATA_DIR/wal/<first seq:020>.seg    segments, oldest first
//! DATA_DIR/checkpoints/<name>/        hard links + copied active prefix + manifest.json
//!
//! segment = header | frame* | zero*      zeros only in the active segment: space written ahead
//! header  = magic "EVBRKWAL" | version u32 LE | first_seq u64 LE | crc32 u32 LE   (24 bytes)
//! frame   = len u32 LE | crc32 u32 LE | body[len & 0x7FFF_FFFF]
//!           crc32 (crc32fast) over the len field as written and the body;
//!           bit 31 of len (the batch bit): the next frame belongs to the same batch
//! batch   = frame(bit set)* frame(bit clear)
//! ```
//!
//! Every record has a sequence number: the segment's `first_seq` plus its
//! index in the segment. A [`Position`] names a record by segment and offset.
//!
//! Version 2 (this build) added the batch bit; version 1 segments never set
//! it, so each of their frames reads as a batch of one, as it was written,
//! and this build reads them unchanged. A version 1 reader would take the bit
//! for a damaged length, so the bit only goes into version 2 segments: when
//! the newest segment of a log is older, opening seals it (or, when it holds
//! no record, gives it a new header) before anything is appended.
//!
//! A batch is one frame per record rather than one frame for all: a reader
//! of one record checks one frame's checksum, not its whole batch's, and
//! the largest frame ([`format::MAX_BODY_LEN`], 64 MiB) limits a record,
//! not a batch. A batch has no size limit of its own; it is never split
//! across segments, so one larger than `segment_bytes` fills a segment alone.
//!
//! # Invariants
//!
//! - Only the writer thread writes, and only to the active (newest) segment,
//!   only past its end. Sealed segments never change until deleted.
//! - An append is completed only after its bytes are written and, under
//!   [`FsyncPolicy::Always`], synced with `fdatasync`; one sync serves every
//!   append of a round (group commit).
//! - The frames of one [`Batch`] are in one segment, written by one call,
//!   with the batch bit set on every frame but the last: a crash keeps all of
//!   a batch or none of it (see Recovery).
//! - A failed fsync or write stops the log ([`WalError::Failed`]); it is never
//!   retried, because after a failed fsync the kernel may have dropped the data.
//!   The one exception is a full disk during a write: the partial write is cut
//!   off, the append fails with [`WalError::DiskFull`] and the log goes on.
//!   An fsync that fails with ENOSPC is no exception: written data found no
//!   room at write-back, so it stops the log, and is not
//!   [`WalError::is_disk_full`], which promises that freeing space is enough.
//! - A segment is created with its header synced and the directory synced
//!   before any record goes into it; deletions sync the directory too.
//!
//! # Recovery
//!
//! Opening scans every segment, a batch at a time: the records of a batch
//! count only once its last frame (batch bit clear) has been read. In the
//! newest segment, a damaged frame with no valid frame after it is a torn
//! write, and so is a batch whose last frame is missing. The tear is cut off
//! from the first frame of the batch it fell into, so a crash never leaves
//! part of a batch, and logged (under `always` it was never acknowledged).
//! Zero bytes after the last frame of the newest segment are space the
//! writer had written ahead; they are cut off without a report.
//!
//! Any other damage, a batch cut short at the end of a sealed segment
//! included, refuses to open with the file and byte offset, unless
//! [`RecoveryMode::SkipCorrupt`] was chosen, which skips to the next valid
//! frame and reports the bytes lost. Damage with valid frames after it is
//! reported at the damaged frame, and the whole frames of its batch on
//! either side are kept: damage of that kind is not an interrupted write, so
//! no batch of it was ever unacknowledged, and an operator who skips damage
//! has chosen to keep what can be read. A segment whose damage was skipped
//! is then written again with only the frames kept (beside it, then renamed
//! over it), so the loss is reported once: later starts, strict ones too,
//! open the log as that one did.
//!
//! # Verification
//!
//! [`check_log`] judges a data directory or a checkpoint by the same rules
//! without opening it: read-only, no lock, safe beside a running log.
//!
//! # Deletion
//!
//! Only whole sealed segments from the old end are deleted
//! ([`Wal::delete_before`]): prefix truncation. A record is therefore never
//! deleted while an older record survives, so a record that cancels an
//! earlier one outlives it.

mod checkpoint;
mod error;
pub mod format;
pub mod fs;
mod reader;
mod recovery;
mod scan;
mod segment;
mod verify;
mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use memmap2::{Mmap, MmapOptions};

pub use checkpoint::{verify_checkpoint, CheckpointInfo, CheckpointVerified};
pub use error::WalError;
pub use reader::{ReadBuf, Replay, ReplaySegment};
pub use recovery::{LostRange, RecoveryMode, RecoveryReport};
pub use verify::{check_log, CheckedSegment, LogCheck, LogKind};
pub use writer::AppendDone;

use format::{finish_frame, frame_len, start_frame, MAX_BODY_LEN};
use fs::{FileSystem, RealFs};
use writer::{Command, Writer};

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `fdatasync` before an append completes (the default).
    #[default]
    Always,
    /// Appends complete once written; a sync follows within the interval.
    Interval(Duration),
    /// The operating system writes back when it likes.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            || "expected always, never or interval:<ms> with 1 <= ms <= 60000".to_string();
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms: u64 = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse().ok())
                    .ok_or_else(expected)?;
                if !(1..=60_000).contains(&ms) {
                    return Err(expected());
                }
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// Told about each group commit and fsync, for metrics.
pub trait WalObserver: Send + Sync {
    /// A round wrote `records` records in `bytes` bytes.
    fn committed(&self, records: usize, bytes: usize);
    /// One `fdatasync` took `took`.
    fn synced(&self, took: Duration);
}

/// The largest `segment_bytes` honoured: the index keeps a record's offset
/// in 37 bits, and a segment ends within one batch of this.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 34;

/// How to open the log.
#[derive(Clone)]
pub struct WalOptions {
    /// The data directory; the log lives in its `wal/` folder.
    pub data_dir: PathBuf,
    /// A new segment is started when a batch would take the active one past
    /// this size; at most [`MAX_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// When appends are made durable.
    pub fsync: FsyncPolicy,
    /// What to do with damage that is not a torn tail.
    pub recovery: RecoveryMode,
    /// The filesystem seam; [`RealFs`] outside tests.
    pub fs: Arc<dyn FileSystem>,
    /// Told about commits and syncs.
    pub observer: Option<Arc<dyn WalObserver>>,
}

impl WalOptions {
    /// Defaults: 64 MiB segments, `always`, strict recovery, the real filesystem.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            data_dir: data_dir.into(),
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::Always,
            recovery: RecoveryMode::Strict,
            fs: Arc::new(RealFs),
            observer: None,
        }
    }
}

/// Where a record is: its body is `len` bytes at `offset + 8` of segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The record's sequence number.
    pub seq: u64,
    /// First sequence number of the segment holding it.
    pub segment: u64,
    /// Offset of its frame in the segment file.
    pub offset: u64,
    /// Length of its body.
    pub len: u32,
}

/// Records to append together: framed (and checksummed) on the caller's
/// thread, written by one call, never split across segments, and kept or
/// lost whole by a crash (every frame but the last carries the batch bit).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    buf: Vec<u8>,
    count: usize,
    /// Offset of the last frame, whose checksum waits until it is known
    /// whether another frame follows it: only then is its batch bit known,
    /// and checksumming it once keeps a batch at one pass over its bytes.
    unfinished: Option<usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` bytes of records (8 bytes of
    /// frame header each included).
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            buf: Vec::with_capacity(bytes),
            count: 0,
            unfinished: None,
        }
    }

    /// A batch of one record.
    pub fn of(body: &[u8]) -> Result<Self, WalError> {
        let mut batch = Batch::new();
        batch.push(body)?;
        Ok(batch)
    }

    /// Adds a record.
    pub fn push(&mut self, body: &[u8]) -> Result<(), WalError> {
        if body.len() > MAX_BODY_LEN {
            return Err(WalError::RecordTooLarge {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        if let Some(at) = self.unfinished {
            finish_frame(&mut self.buf[at..], true);
        }
        self.buf.reserve(frame_len(body.len()));
        self.unfinished = Some(self.buf.len());
        start_frame(body, &mut self.buf);
        self.count += 1;
        Ok(())
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch takes on disk.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Checksums the last frame, with its batch bit clear: the batch ends there.
    fn finish(&mut self) {
        if let Some(at) = self.unfinished.take() {
            finish_frame(&mut self.buf[at..], false);
        }
    }
}

/// A batch the log would not take, with its completion handle given back.
pub struct Refused {
    /// Why.
    pub error: WalError,
    /// The handle, not called.
    pub done: AppendDone,
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("error", &self.error)
            .finish()
    }
}

/// Size and shape of the log, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalStatus {
    /// Segment files, the active one included.
    pub segments: usize,
    /// Bytes in all segments.
    pub bytes: u64,
    /// First sequence number of the oldest segment.
    pub oldest_segment: u64,
    /// First sequence number of the active segment.
    pub active_segment: u64,
    /// The fsync policy in force.
    pub fsync: FsyncPolicy,
    /// Whether the log refuses writes, and why.
    pub failure: Option<String>,
}

/// One segment in [`Wal::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its first sequence number, which names it.
    pub first_seq: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// False for the active segment.
    pub sealed: bool,
}

pub(crate) struct SealedSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub len: u64,
    map: OnceLock<Option<Arc<Mmap>>>,
}

impl SealedSegment {
    pub fn new(first_seq: u64, path: PathBuf, len: u64) -> Self {
        SealedSegment {
            first_seq,
            path,
            len,
            map: OnceLock::new(),
        }
    }

    /// The segment mapped into memory, on first use.
    pub fn mapped(&self) -> Result<Option<Arc<Mmap>>, WalError> {
        if let Some(map) = self.map.get() {
            return Ok(map.clone());
        }
        let map = segment::map(&self.path, self.len)?.map(Arc::new);
        Ok(self.map.get_or_init(|| map).clone())
    }
}

pub(crate) struct ActiveSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Read handle, for frames past the mapping.
    pub file: File,
    /// Bytes written and completed; reads stay below it.
    pub written: AtomicU64,
    /// Bytes known durable.
    pub durable: AtomicU64,
    /// How much of the file reads map: the segment size. The file grows into
    /// the mapping as it is written; only bytes below `written` are ever read,
    /// and a disk-full rollback only cuts bytes past `written`, so no read
    /// touches a page past the end of the file.
    map_len: u64,
    /// Mapped at the first read; `None` when mapping failed (reads use `pread`).
    map: OnceLock<Option<Arc<Mmap>>>,
}

impl ActiveSegment {
    pub fn open(first_seq: u64, path: PathBuf, len: u64, map_len: u64) -> Result<Self, WalError> {
        let file = File::open(&path).map_err(|e| WalError::io("open", &path, e))?;
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            written: AtomicU64::new(len),
            durable: AtomicU64::new(len),
            map_len,
            map: OnceLock::new(),
        })
    }

    /// The mapping, when `end` lies within it.
    pub fn mapped(&self, end: u64) -> Option<Arc<Mmap>> {
        if end > self.map_len {
            return None;
        }
        self.map
            .get_or_init(|| {
                // SAFETY: see `map_len`: no byte read through the mapping is
                // ever cut from the file or rewritten.
                let map = unsafe { MmapOptions::new().len(self.map_len as usize).map(&self.file) };
                match map {
                    Ok(map) => Some(Arc::new(map)),
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "cannot map the active segment; reading it with pread");
                        None
                    }
                }
            })
            .clone()
    }
}

pub(crate) struct SegmentTable {
    pub sealed: BTreeMap<u64, Arc<SealedSegment>>,
    pub active: Arc<ActiveSegment>,
}

pub(crate) struct Shared {
    pub wal_dir: PathBuf,
    pub fs: Arc<dyn FileSystem>,
    pub table: RwLock<SegmentTable>,
    /// Set once, by the first write or fsync failure.
    pub failure: OnceLock<Arc<WalError>>,
    /// Held while segments are deleted or linked into a checkpoint.
    pub maintenance: Mutex<()>,
    pub observer: Option<Arc<dyn WalObserver>>,
}

/// The write-ahead log. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Wal {
    shared: Arc<Shared>,
    tx: Sender<Command>,
    writer: Mutex<Option<JoinHandle<Result<(), WalError>>>>,
    data_dir: PathBuf,
    fsync: FsyncPolicy,
    /// Held from open to close: the flock on `DATA_DIR/LOCK`.
    lock: Mutex<Option<File>>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Locks the data directory, recovers the log and starts the writer thread.
    pub fn open(options: WalOptions) -> Result<(Wal, RecoveryReport), WalError> {
        Wal::open_replaying(options, &mut |_| {})
    }

    /// Like [`Wal::open`], and hands each segment to `replay` in log order
    /// as soon as recovery has checked it and every one before it, so that
    /// its records can be replayed while later segments are still being
    /// read (as [`Wal::replay`] would give them after the open, its frames
    /// to be walked without checking their checksums again). A segment that
    /// could not be mapped comes as its error. When the open fails, what was
    /// handed over so far was good, but the log is not open.
    pub fn open_replaying(
        options: WalOptions,
        replay: &mut dyn FnMut(Result<ReplaySegment, WalError>),
    ) -> Result<(Wal, RecoveryReport), WalError> {
        let data_dir = options.data_dir.clone();
        let wal_dir = data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)
            .map_err(|e| WalError::io("create directory", &wal_dir, e))?;
        let lock = lock_data_dir(&data_dir)?;
        checkpoint::remove_unfinished(&data_dir);
        let (mut segments, mut report) = recovery::recover(
            &wal_dir,
            options.fs.as_ref(),
            options.recovery,
            &mut |seg| {
                replay(ReplaySegment::open(
                    seg.first_seq,
                    seg.path.clone(),
                    seg.len,
                ));
            },
        )?;
        if segments.is_empty() {
            segments.push(create_segment(&wal_dir, options.fs.as_ref(), 0)?);
            report.segments = 1;
        }
        let mut newest = segments.pop().expect("at least one segment");
        if newest.version < format::VERSION {
            newest = upgrade_newest(&wal_dir, options.fs.as_ref(), newest, &mut segments)?;
            report.segments = segments.len() + 1;
        }
        let active = Arc::new(ActiveSegment::open(
            newest.first_seq,
            newest.path.clone(),
            newest.len,
            options.segment_bytes.max(newest.len),
        )?);
        let sealed = segments
            .into_iter()
            .map(|s| {
                (
                    s.first_seq,
                    Arc::new(SealedSegment::new(s.first_seq, s.path, s.len)),
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            wal_dir,
            fs: options.fs.clone(),
            table: RwLock::new(SegmentTable {
                sealed,
                active: active.clone(),
            }),
            failure: OnceLock::new(),
            maintenance: Mutex::new(()),
            observer: options.observer.clone(),
        });
        let file = options
            .fs
            .open_write(&newest.path)
            .map_err(|e| WalError::io("open", &newest.path, e))?;
        let (tx, rx) = mpsc::channel();
        let (completions, completed) = mpsc::channel();
        let completions_queued = Arc::new(AtomicUsize::new(0));
        let queued = completions_queued.clone();
        let completer = spawn("wal-completer", &data_dir, move || {
            writer::run_completer(completed, queued)
        })?;
        let writer = Writer {
            shared: shared.clone(),
            rx,
            file,
            active,
            len: newest.len,
            durable: newest.len,
            next_seq: newest.first_seq + newest.records,
            policy: options.fsync,
            segment_bytes: options.segment_bytes.min(MAX_SEGMENT_BYTES),
            last_sync: event_broker_clock::monotonic_now(),
            completions,
            completions_queued,
            last_round: 0,
            file_end: newest.len,
        };
        let handle = spawn("wal-writer", &data_dir, move || {
            let result = writer.run();
            // Every completion has run before close() returns.
            let _ = completer.join();
            result
        })?;
        let wal = Wal {
            shared,
            tx,
            writer: Mutex::new(Some(handle)),
            data_dir: options.data_dir,
            fsync: options.fsync,
            lock: Mutex::new(Some(lock)),
        };
        Ok((wal, report))
    }

    /// Appends a batch and waits until it is complete under the fsync policy.
    pub fn append(&self, batch: Batch) -> Result<Vec<Position>, WalError> {
        let slot = Arc::new(Mutex::new(None));
        let filled = slot.clone();
        let waiter = std::thread::current();
        self.append_with(
            batch,
            Box::new(move |result| {
                *filled.lock().expect("append slot") = Some(result);
                waiter.unpark();
            }),
        );
        // park() may wake spuriously, and an unpark may come before the park.
        loop {
            if let Some(result) = slot.lock().expect("append slot").take() {
                return result;
            }
            std::thread::park();
        }
    }

    /// Hands a batch to the writer; `done` is called on the log's completion
    /// thread when it is complete under the fsync policy, or failed.
    pub fn append_with(&self, batch: Batch, done: AppendDone) {
        if batch.is_empty() {
            return done(Ok(Vec::new()));
        }
        if let Err(refused) = self.submit(batch, done) {
            (refused.done)(Err(refused.error));
        }
    }

    /// Like [`Wal::append_with`], but when the log refuses the batch at once
    /// (failed, closed, or an empty batch) the error and `done` come back
    /// here instead of `done` being called, so a caller holding a lock that
    /// `done` takes cannot deadlock.
    pub fn submit(&self, mut batch: Batch, done: AppendDone) -> Result<(), Refused> {
        batch.finish();
        if let Some(cause) = self.shared.failure.get() {
            let error = WalError::Failed {
                cause: cause.clone(),
            };
            return Err(Refused { error, done });
        }
        if batch.is_empty() {
            let error = WalError::EmptyBatch;
            return Err(Refused { error, done });
        }
        match self.tx.send(Command::Append(batch, done)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(Command::Append(_, done))) => Err(Refused {
                error: WalError::Closed,
                done,
            }),
            Err(_) => unreachable!("the command sent was an append"),
        }
    }

    /// Makes everything appended so far durable, whatever the policy.
    pub fn sync(&self) -> Result<(), WalError> {
        self.durable_snapshot().map(|_| ())
    }

    pub(crate) fn durable_snapshot(&self) -> Result<writer::DurableSnapshot, WalError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let cmd = Command::Sync(Box::new(move |result| {
            let _receiver_gone = tx.send(result);
        }));
        self.tx.send(cmd).map_err(|_| WalError::Closed)?;
        rx.recv().unwrap_or(Err(WalError::Closed))
    }

    /// The error that stopped the log, if one did.
    pub fn failure(&self) -> Option<Arc<WalError>> {
        self.shared.failure.get().cloned()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let table = self.shared.table.read().expect("segment table lock");
        let mut out: Vec<SegmentInfo> = table
            .sealed
            .values()
            .map(|s| SegmentInfo {
                first_seq: s.first_seq,
                bytes: s.len,
                sealed: true,
            })
            .collect();
        out.push(SegmentInfo {
            first_seq: table.active.first_seq,
            bytes: table.active.written.load(Ordering::Acquire),
            sealed: false,
        });
        out
    }

    /// Size and health of the log.
    pub fn status(&self) -> WalStatus {
        let segments = self.segments();
        WalStatus {
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.bytes).sum(),
            oldest_segment: segments[0].first_seq,
            active_segment: segments[segments.len() - 1].first_seq,
            fsync: self.fsync,
            failure: self.failure().map(|e| e.to_string()),
        }
    }

    /// Deletes the sealed segments whose first sequence number is below
    /// `first_seq`, oldest first; never the active one. Returns how many went.
    pub fn delete_before(&self, first_seq: u64) -> Result<usize, WalError> {
        let _maintenance = self.shared.maintenance.lock().expect("maintenance lock");
        let doomed: Vec<Arc<SealedSegment>> = {
            let table = self.shared.table.read().expect("segment table lock");
            table
                .sealed
                .range(..first_seq)
                .map(|(_, s)| s.clone())
                .collect()
        };
        for seg in &doomed {
            // Oldest first: a failure leaves a log that still starts at a whole segment.
            self.shared
                .fs
                .remove_file(&seg.path)
                .map_err(|e| WalError::io("delete segment", &seg.path, e))?;
            self.shared
                .table
                .write()
                .expect("segment table lock")
                .sealed
                .remove(&seg.first_seq);
        }
        if !doomed.is_empty() {
            self.shared
                .fs
                .sync_dir(&self.shared.wal_dir)
                .map_err(|e| WalError::io("fsync directory", &self.shared.wal_dir, e))?;
        }
        Ok(doomed.len())
    }

    /// Flushes, syncs and stops the writer. Appends after this fail with [`WalError::Closed`].
    pub fn close(&self) -> Result<(), WalError> {
        let Some(handle) = self.writer.lock().expect("writer handle lock").take() else {
            return Ok(());
        };
        let _already_stopped = self.tx.send(Command::Shutdown);
        let result = handle.join().unwrap_or(Err(WalError::Closed));
        // Nothing writes any more: another log may open the directory.
        drop(self.lock.lock().expect("lock file lock").take());
        result
    }

    /// The data directory this log lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the log failed");
        }
    }
}

fn spawn<T: Send + 'static>(
    name: &str,
    data_dir: &Path,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, WalError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| WalError::io("start a thread for the log in", data_dir, e))
}

fn lock_data_dir(data_dir: &Path) -> Result<File, WalError> {
    let path = data_dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WalError::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(WalError::Locked {
            dir: data_dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(WalError::io("lock", &path, e)),
    }
}

/// Puts appends to a log written by an older build into a segment of this
/// build's version: a reader of the older version would take the batch bit
/// for damage, so a segment may hold it only when its header says so. A
/// segment that holds records is sealed as it is; an empty one gets a new
/// header instead, as its name is the next segment's.
fn upgrade_newest(
    wal_dir: &Path,
    fs: &dyn FileSystem,
    newest: recovery::RecoveredSegment,
    sealed: &mut Vec<recovery::RecoveredSegment>,
) -> Result<recovery::RecoveredSegment, WalError> {
    if newest.records == 0 {
        recovery::rewrite_header(fs, &newest.path, newest.first_seq)?;
        return Ok(recovery::RecoveredSegment {
            len: format::HEADER_LEN as u64,
            version: format::VERSION,
            ..newest
        });
    }
    let next = create_segment(wal_dir, fs, newest.first_seq + newest.records)?;
    sealed.push(newest);
    Ok(next)
}

fn create_segment(
    wal_dir: &Path,
    fs: &dyn FileSystem,
    first_seq: u64,
) -> Result<recovery::RecoveredSegment, WalError> {
    let path = wal_dir.join(segment::file_name(first_seq));
    let mut file = fs
        .create_new(&path)
        .map_err(|e| WalError::io("create", &path, e))?;
    file.write_all_at(&format::encode_header(first_seq), 0)
        .map_err(|e| WalError::io("write header of", &path, e))?;
    file.sync_data()
        .map_err(|e| WalError::io("fsync", &path, e))?;
    fs.sync_dir(wal_dir)
        .map_err(|e| WalError::io("fsync directory", wal_dir, e))?;
    Ok(recovery::RecoveredSegment {
        first_seq,
        path,
        len: format::HEADER_LEN as u64,
        records: 0,
        version: format::VERSION,
    })
}
