//! Errors of the log layer.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::format::{FrameDefect, HeaderError};

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Another process holds the data directory's lock.
    #[error("data directory {} is in use by another process (lock file {})", dir.display(), lock.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file that is held.
        lock: PathBuf,
    },
    /// An operating-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the log was doing, as a verb phrase ("write segment").
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The error of the operating system.
        source: io::Error,
    },
    /// A segment header cannot be read.
    #[error("segment {} has a bad header: {defect}", path.display())]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong with it.
        defect: HeaderError,
    },
    /// A frame in the middle of the log is damaged: data that was once
    /// acknowledged may be lost, so the log refuses to open.
    #[error("corrupt log: {defect} in {} at byte offset {offset}; start with --recover=skip-corrupt to skip it and lose what it held", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged frame in that file.
        offset: u64,
        /// What is wrong with the frame.
        defect: FrameDefect,
    },
    /// A segment's header names another sequence number than its file name.
    #[error("segment {} says in its header that it starts at sequence {header_seq}, not as its name says", path.display())]
    SegmentNameMismatch {
        /// The segment file.
        path: PathBuf,
        /// The sequence number in its header.
        header_seq: u64,
    },
    /// A segment starts before the previous one ends: files were renamed or copied in by hand.
    #[error("segment {} starts before the previous segment ends (sequence {previous_end})", path.display())]
    SegmentOverlap {
        /// The segment file.
        path: PathBuf,
        /// The sequence number after the previous segment's last record.
        previous_end: u64,
    },
    /// The disk is full; nothing of the failed append was kept.
    #[error("the disk is full: nothing of this append was stored ({source})")]
    DiskFull {
        /// The error of the operating system (ENOSPC or EDQUOT).
        source: io::Error,
    },
    /// An earlier write or fsync failed; the log takes no more writes until
    /// it is reopened, because a failed fsync may have dropped data silently.
    #[error("the log refuses writes since an earlier failure: {cause}")]
    Failed {
        /// The failure that stopped the log.
        cause: Arc<WalError>,
    },
    /// A record body is larger than a frame may be.
    #[error("record of {len} bytes is over the limit of {max} bytes")]
    RecordTooLarge {
        /// The body's length.
        len: usize,
        /// The largest body allowed.
        max: usize,
    },
    /// A read asked for bytes the log does not hold.
    #[error("no record at segment {segment} offset {offset} ({len} bytes)")]
    NoSuchPosition {
        /// The segment asked for.
        segment: u64,
        /// The offset asked for.
        offset: u64,
        /// The length asked for.
        len: u32,
    },
    /// The checkpoint name is not `[A-Za-z0-9_.-]{1,128}`.
    #[error("invalid checkpoint name {name:?}: {reason}")]
    BadCheckpointName {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A checkpoint of that name exists, or is being made; it is never replaced.
    #[error("a checkpoint named {name:?} exists")]
    CheckpointExists {
        /// The name given.
        name: String,
    },
    /// A checkpoint's files do not match its manifest.
    #[error("checkpoint {} does not verify: {reason}", path.display())]
    CheckpointMismatch {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A directory to check holds neither a checkpoint nor a log.
    #[error("{} is neither a checkpoint (no manifest.json) nor a data directory (no wal/ folder)", dir.display())]
    NotALog {
        /// The directory.
        dir: PathBuf,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// [`Wal::submit`](super::Wal::submit) was given a batch with no record.
    #[error("an empty batch has nothing to append")]
    EmptyBatch,
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the disk or quota is full and nothing was stored: retrying
    /// once space is freed may succeed. Never for a stopped log
    /// ([`WalError::Failed`]), even when what stopped it was ENOSPC from an
    /// fsync: the data that found no room may be gone from the page cache,
    /// so no amount of space makes the log whole again; a restart does.
    pub fn is_disk_full(&self) -> bool {
        match self {
            WalError::DiskFull { .. } => true,
            WalError::Io { source, .. } => is_disk_full_io(source),
            _ => false,
        }
    }

    /// The same failure, for another append of the same failed round.
    pub(crate) fn for_another_waiter(&self) -> WalError {
        match self {
            WalError::DiskFull { source } => WalError::DiskFull {
                source: io::Error::new(source.kind(), source.to_string()),
            },
            WalError::Failed { cause } => WalError::Failed {
                cause: cause.clone(),
            },
            other => WalError::Failed {
                cause: Arc::new(WalError::io(
                    "append",
                    PathBuf::new(),
                    io::Error::other(other.to_string()),
                )),
            },
        }
    }

    /// True when the log no longer takes writes until it is reopened.
    pub fn is_failed(&self) -> bool {
        matches!(self, WalError::Failed { .. } | WalError::Closed)
    }
}

pub(crate) fn is_disk_full_io(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
