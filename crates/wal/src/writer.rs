//! The writer thread: it owns the active segment, takes every append queued
//! since its last round, writes them with one call, syncs once per the fsync
//! policy, and only then completes them (group commit).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{is_disk_full_io, WalError};
use super::format::{encode_header, frame_body_len, FRAME_HEADER_LEN, HEADER_LEN};
use super::fs::WritableFile;
use super::segment;
use super::{ActiveSegment, Batch, FsyncPolicy, Position, SealedSegment, Shared};
use event_broker_clock as clock;

/// Called with the outcome of an append, on the log's completion thread: keep it short.
pub type AppendDone = Box<dyn FnOnce(Result<Vec<Position>, WalError>) + Send>;

/// What the writer holds of the log at a moment when everything written is durable.
#[derive(Debug, Clone)]
pub(crate) struct DurableSnapshot {
    /// Sealed segments, oldest first: (first sequence, path, length).
    pub sealed: Vec<(u64, PathBuf, u64)>,
    /// The active segment and its durable length.
    pub active: (u64, PathBuf, u64),
}

pub(crate) enum Command {
    Append(Batch, AppendDone),
    /// Make everything written so far durable, whatever the policy.
    Sync(Box<dyn FnOnce(Result<DurableSnapshot, WalError>) + Send>),
    Shutdown,
}

/// How long a round waits for the appenders of the previous round to come
/// back; a small part of one fsync (about 250 µs here).
const GATHER_WAIT: Duration = Duration::from_micros(50);

/// Large writes go out in chunks of this size, each handed to the disk at
/// once, so copying the next chunk overlaps writing back this one. Below a
/// few MiB the extra `sync_file_range` calls cost more than they overlap
/// (measured with `examples/batch_vs_disk.rs`: 1 MiB chunks of 1 MiB
/// batches ran at 0.66 of the raw disk, no chunking at 0.77).
const WRITEBACK_CHUNK: usize = 4 << 20;

/// Appends of one round with their outcomes, in log order.
/// The batch rides along to be freed off the writer thread: unmapping a large
/// buffer costs the writer time it should spend writing.
pub(crate) type Outcomes = Vec<(AppendDone, Result<Vec<Position>, WalError>, Batch)>;

/// Runs completions on their own thread, so that waking the appenders of one
/// round overlaps the write and fsync of the next instead of delaying it.
/// `queued` counts the rounds sent to it and not yet completed.
pub(crate) fn run_completer(rx: Receiver<Outcomes>, queued: Arc<AtomicUsize>) {
    for outcomes in rx {
        complete(outcomes);
        queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Rounds of at most this many appends are completed by the writer itself
/// when the completer has nothing queued: handing a few completions to
/// another thread costs them a thread wake-up, longer than running them.
const INLINE_COMPLETIONS: usize = 4;

fn complete(outcomes: Outcomes) {
    for (done, outcome, _written) in outcomes {
        done(outcome);
    }
}

/// Batches at least this large are written from their own buffer, not joined.
const JOIN_BELOW: usize = 64 << 10;

/// Stop taking more commands into one round past this many bytes, so a
/// round's buffer stays bounded however many appenders wait.
const ROUND_BYTES: usize = 32 << 20;

/// Under `always`, the writer keeps up to this many zero bytes written and
/// synced past the end of the data. A round that lands in them overwrites
/// blocks the file already has, so its `fdatasync` need not also write the
/// file's new size and block map: on the ext4 disk here that took the mean
/// sync of single events from 253–304 µs to 159–197 µs. The
/// zeros are written a chunk at a time, with the round that runs low on them,
/// and cut off again when the segment is sealed or the log closes; recovery
/// treats a zero tail of the newest segment as unused space.
const ZERO_AHEAD: u64 = 1 << 20;

/// Only rounds smaller than this write zeros ahead: a larger one amortises
/// the journal commit by itself, and zeros would double its bytes (4 × 100
/// events a request ran at 317k/s with zeros, 349k/s without). 32 single
/// events of 256 bytes take 11 KiB.
const ZERO_AHEAD_BELOW: usize = 16 << 10;

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: Receiver<Command>,
    pub file: Box<dyn WritableFile>,
    pub active: Arc<ActiveSegment>,
    /// Bytes in the active segment, all written.
    pub len: u64,
    /// Bytes of the active segment known durable.
    pub durable: u64,
    pub next_seq: u64,
    pub policy: FsyncPolicy,
    pub segment_bytes: u64,
    pub last_sync: Instant,
    pub completions: Sender<Outcomes>,
    /// Rounds sent to the completer and not yet completed.
    pub completions_queued: Arc<AtomicUsize>,
    /// Appends in the previous round.
    pub last_round: usize,
    /// End of the active segment file: past `len`, zero bytes written ahead.
    pub file_end: u64,
}

/// Appends waiting in the current round for their write and sync.
#[derive(Default)]
struct Group {
    waiting: Vec<Waiting>,
    /// Bytes of all waiting batches.
    bytes: usize,
    /// Where the small batches of a round are joined for one write.
    joined: Vec<u8>,
}

struct Waiting {
    first_seq: u64,
    offset: u64,
    batch: Batch,
    done: AppendDone,
}

impl Writer {
    /// Runs until shut down or until every sender is gone; the result is that
    /// of the final sync.
    pub fn run(mut self) -> Result<(), WalError> {
        let mut group = Group::default();
        let mut shutting_down = false;
        while !shutting_down {
            let Some(first) = self.next_command() else {
                break;
            };
            let mut taken = 0usize;
            let mut appends = 0usize;
            let mut command = Some(first);
            while let Some(cmd) = command.take() {
                match cmd {
                    Command::Append(batch, done) => {
                        taken += batch.buf.len();
                        appends += 1;
                        self.add(&mut group, batch, done);
                    }
                    Command::Sync(done) => {
                        self.commit(&mut group);
                        done(self.sync_now().map(|()| self.snapshot()));
                    }
                    Command::Shutdown => {
                        shutting_down = true;
                        break;
                    }
                }
                if taken < ROUND_BYTES {
                    command = self.rx.try_recv().ok().or_else(|| self.gather(appends));
                }
            }
            self.last_round = appends;
            self.commit(&mut group);
        }
        self.sync_now()?;
        self.cut_zeros()
    }

    /// Under `always`, an fsync costs the same for one append as for a
    /// hundred. When this round is still smaller than the last one, the
    /// appenders of the last round are most likely resubmitting right now:
    /// give them a moment to join this round rather than pay for another fsync.
    fn gather(&mut self, appends: usize) -> Option<Command> {
        if self.policy != FsyncPolicy::Always || appends >= self.last_round {
            return None;
        }
        self.rx.recv_timeout(GATHER_WAIT).ok()
    }

    /// Waits for the next command; under an interval policy, wakes up to
    /// sync written data when its interval is up.
    fn next_command(&mut self) -> Option<Command> {
        loop {
            let FsyncPolicy::Interval(every) = self.policy else {
                return self.rx.recv().ok();
            };
            if self.durable == self.len {
                return self.rx.recv().ok();
            }
            let wait = every.saturating_sub(clock::monotonic_now() - self.last_sync);
            match self.rx.recv_timeout(wait) {
                Ok(cmd) => return Some(cmd),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.sync_now() {
                        tracing::error!(error = %e, "interval fsync failed");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn add(&mut self, group: &mut Group, batch: Batch, done: AppendDone) {
        if let Some(cause) = self.shared.failure.get() {
            done(Err(WalError::Failed {
                cause: cause.clone(),
            }));
            return;
        }
        let pending = self.len + group.bytes as u64;
        let fits = pending + batch.buf.len() as u64 <= self.segment_bytes;
        // A batch never spans two segments, and an empty segment takes any batch.
        if !fits && pending > HEADER_LEN as u64 {
            self.commit(group);
            if let Err(e) = self.rotate() {
                done(Err(e));
                return;
            }
        }
        self.next_seq += batch.count as u64;
        let bytes = batch.buf.len();
        group.waiting.push(Waiting {
            first_seq: self.next_seq - batch.count as u64,
            offset: self.len + group.bytes as u64,
            done,
            batch,
        });
        group.bytes += bytes;
    }

    /// Writes the group, syncs per policy, completes its appends.
    fn commit(&mut self, group: &mut Group) {
        if group.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut group.waiting);
        let bytes = std::mem::take(&mut group.bytes);
        let result = self.write_round(&waiting, &mut group.joined);
        let records: usize = waiting.iter().map(|w| w.batch.count).sum();
        match &result {
            Ok(()) => {
                if let Some(observer) = &self.shared.observer {
                    observer.committed(records, bytes);
                }
            }
            // Sequence numbers handed to failed appends are reused; nothing of them is on disk.
            Err(_) => self.next_seq -= records as u64,
        }
        let segment = self.active.first_seq;
        let outcomes: Outcomes = waiting
            .into_iter()
            .map(|w| {
                let outcome = match &result {
                    Ok(()) => Ok(positions(&w.batch, w.first_seq, segment, w.offset)),
                    Err(e) => Err(e.for_another_waiter()),
                };
                (w.done, outcome, w.batch)
            })
            .collect();
        // Completing here keeps log order only while no earlier round waits
        // at the completer.
        if outcomes.len() <= INLINE_COMPLETIONS
            && self.completions_queued.load(Ordering::Acquire) == 0
        {
            complete(outcomes);
            return;
        }
        self.completions_queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(outcomes)) = self.completions.send(outcomes) {
            complete(outcomes);
        }
    }

    /// Writes the batches of a round after the end of the active segment,
    /// then syncs per policy. Small batches are joined so that a round of
    /// many single-record appends is one write; large ones are written from
    /// their own buffers, since copying them costs more than a system call.
    fn write_round(&mut self, waiting: &[Waiting], joined: &mut Vec<u8>) -> Result<(), WalError> {
        let mut at = self.len;
        joined.clear();
        for w in waiting {
            let buf = &w.batch.buf;
            if buf.len() < JOIN_BELOW {
                joined.extend_from_slice(buf);
                continue;
            }
            at = self.write_at(joined, at)?;
            joined.clear();
            at = self.write_at(buf, at)?;
        }
        at = self.write_at(joined, at)?;
        self.file_end = self.file_end.max(at);
        if self.policy == FsyncPolicy::Always && at - self.len < ZERO_AHEAD_BELOW as u64 {
            self.zero_ahead(at);
        }
        self.len = at;
        self.active
            .written
            .store(self.len, std::sync::atomic::Ordering::Release);
        match self.policy {
            FsyncPolicy::Always => self.sync_now(),
            FsyncPolicy::Interval(every) if clock::monotonic_now() - self.last_sync >= every => {
                self.sync_now()
            }
            _ => Ok(()),
        }
    }

    /// Writes `buf` at `at`; where it ends. On failure nothing of the round
    /// counts: `self.len` still marks the end of the previous one.
    fn write_at(&mut self, buf: &[u8], mut at: u64) -> Result<u64, WalError> {
        for chunk in buf.chunks(WRITEBACK_CHUNK) {
            if let Err(e) = self.file.write_all_at(chunk, at) {
                return Err(self.write_failed(e));
            }
            if buf.len() > WRITEBACK_CHUNK && self.policy != FsyncPolicy::Never {
                self.file.start_writeback(at, chunk.len() as u64);
            }
            at += chunk.len() as u64;
        }
        Ok(at)
    }

    /// Writes the next chunk of zeros once less than a quarter of one is
    /// left past `end`, never past the segment size. Failing to is no error:
    /// the zeros are cut off again and rounds extend the file, as without them.
    fn zero_ahead(&mut self, end: u64) {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        if self.file_end >= end + ZERO_AHEAD / 4 || self.file_end >= self.segment_bytes {
            return;
        }
        let target = (end + ZERO_AHEAD).min(self.segment_bytes);
        let mut at = self.file_end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            if self.file.write_all_at(&ZEROS[..n as usize], at).is_err() {
                break;
            }
            at += n;
        }
        if at < target && self.file.set_len(self.file_end).is_ok() {
            return;
        }
        // Where a cut failed, zeros may reach as far as the target.
        self.file_end = target;
    }

    /// A failed write leaves the log usable only if the disk was full and the
    /// partial write could be cut off again; anything else stops the log.
    fn write_failed(&mut self, err: std::io::Error) -> WalError {
        if is_disk_full_io(&err) {
            match self.file.set_len(self.len) {
                Ok(()) => {
                    self.file_end = self.len;
                    return WalError::DiskFull { source: err };
                }
                Err(cut) => {
                    return self.poison(WalError::io(
                        "cut back a partial write to",
                        &self.active.path,
                        cut,
                    ))
                }
            }
        }
        self.poison(WalError::io("write", &self.active.path, err))
    }

    /// Makes the active segment durable. A failed fsync is never retried: the
    /// kernel may have dropped the dirty pages, so the log stops.
    fn sync_now(&mut self) -> Result<(), WalError> {
        if let Some(cause) = self.shared.failure.get() {
            return Err(WalError::Failed {
                cause: cause.clone(),
            });
        }
        if self.durable == self.len {
            return Ok(());
        }
        let started = clock::monotonic_now();
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison(WalError::io("fsync", &self.active.path, e)));
        }
        self.last_sync = clock::monotonic_now();
        if let Some(observer) = &self.shared.observer {
            observer.synced(self.last_sync - started);
        }
        self.durable = self.len;
        self.active
            .durable
            .store(self.len, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn poison(&self, err: WalError) -> WalError {
        tracing::error!(error = %err, "the log stops taking writes until restarted");
        let cause = self.shared.failure.get_or_init(|| Arc::new(err)).clone();
        WalError::Failed { cause }
    }

    /// Seals the active segment and starts a new one at the next sequence number.
    fn rotate(&mut self) -> Result<(), WalError> {
        if self.policy != FsyncPolicy::Never {
            self.sync_now()?;
        }
        self.cut_zeros()?;
        let path = self.shared.wal_dir.join(segment::file_name(self.next_seq));
        let file = self.create_segment(&path)?;
        let active = Arc::new(ActiveSegment::open(
            self.next_seq,
            path,
            HEADER_LEN as u64,
            self.segment_bytes,
        )?);
        let old = std::mem::replace(&mut self.active, active.clone());
        {
            let mut table = self.shared.table.write().expect("segment table lock");
            table.sealed.insert(
                old.first_seq,
                Arc::new(SealedSegment::new(
                    old.first_seq,
                    old.path.clone(),
                    self.len,
                )),
            );
            table.active = active;
        }
        self.file = file;
        self.len = HEADER_LEN as u64;
        self.durable = self.len;
        self.file_end = self.len;
        Ok(())
    }

    /// Cuts the zeros written ahead off the segment, durably, before it is
    /// sealed or the log closes: only a crash leaves them for recovery, and
    /// then only in the newest segment.
    fn cut_zeros(&mut self) -> Result<(), WalError> {
        if self.file_end == self.len {
            return Ok(());
        }
        let path = &self.active.path;
        // A full fsync: a smaller size is not data that fdatasync must keep.
        let cut = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all());
        if let Err(e) = cut {
            return Err(self.poison(WalError::io("cut the unused end of", path, e)));
        }
        self.file_end = self.len;
        Ok(())
    }

    fn create_segment(
        &mut self,
        path: &std::path::Path,
    ) -> Result<Box<dyn WritableFile>, WalError> {
        let fs = self.shared.fs.clone();
        let mut file = fs
            .create_new(path)
            .map_err(|e| self.segment_failed("create", path, e))?;
        if let Err(e) = file.write_all_at(&encode_header(self.next_seq), 0) {
            let _removed = fs.remove_file(path);
            return Err(self.segment_failed("write header of", path, e));
        }
        file.sync_data()
            .map_err(|e| self.poison(WalError::io("fsync", path, e)))?;
        fs.sync_dir(&self.shared.wal_dir)
            .map_err(|e| self.poison(WalError::io("fsync directory", &self.shared.wal_dir, e)))?;
        Ok(file)
    }

    fn segment_failed(
        &self,
        op: &'static str,
        path: &std::path::Path,
        err: std::io::Error,
    ) -> WalError {
        if is_disk_full_io(&err) {
            WalError::DiskFull { source: err }
        } else {
            self.poison(WalError::io(op, path, err))
        }
    }

    fn snapshot(&self) -> DurableSnapshot {
        let table = self.shared.table.read().expect("segment table lock");
        DurableSnapshot {
            sealed: table
                .sealed
                .values()
                .map(|s| (s.first_seq, s.path.clone(), s.len))
                .collect(),
            active: (
                self.active.first_seq,
                self.active.path.clone(),
                self.durable,
            ),
        }
    }
}

/// Positions of the frames of `batch`, written at `offset`.
fn positions(batch: &Batch, first_seq: u64, segment: u64, offset: u64) -> Vec<Position> {
    let (framed, count) = (&batch.buf, batch.count);
    let mut out = Vec::with_capacity(count);
    let mut at = 0usize;
    for i in 0..count as u64 {
        let len = frame_body_len(&framed[at..]);
        out.push(Position {
            seq: first_seq + i,
            segment,
            offset: offset + at as u64,
            len: len as u32,
        });
        at += FRAME_HEADER_LEN + len;
    }
    out
}
