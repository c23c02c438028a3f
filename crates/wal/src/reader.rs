//! Reading records back: one by its [`Position`], or all of them in order
//! for replay.

use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use memmap2::Mmap;

use super::error::WalError;
use super::format::{decode_frame, Frame, FRAME_HEADER_LEN, HEADER_LEN};
use super::segment::{self, Frames};
use super::{Position, Wal};

/// The body of one record: borrowed from a mapped sealed segment, or read
/// from the active one.
#[derive(Debug, Clone)]
pub enum ReadBuf {
    /// A range of a mapped segment.
    Mapped(Arc<Mmap>, std::ops::Range<usize>),
    /// Bytes read with `pread`, and the range of them wanted.
    Owned(Vec<u8>, std::ops::Range<usize>),
}

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadBuf::Mapped(map, range) => &map[range.clone()],
            ReadBuf::Owned(bytes, range) => &bytes[range.clone()],
        }
    }
}

impl Wal {
    /// Reads the body of the record at `pos`, checking its checksum.
    pub fn read(&self, pos: &Position) -> Result<ReadBuf, WalError> {
        self.read_at(pos.segment, pos.offset, pos.len)
    }

    /// Reads the body of `len` bytes in the frame at `offset` of segment
    /// `segment`, checking its checksum.
    pub fn read_at(&self, segment: u64, offset: u64, len: u32) -> Result<ReadBuf, WalError> {
        // Only where the frame is matters here, not its sequence number.
        let pos = &Position {
            seq: 0,
            segment,
            offset,
            len,
        };
        let missing = || WalError::NoSuchPosition {
            segment: pos.segment,
            offset: pos.offset,
            len: pos.len,
        };
        let frame_end = pos.offset + (FRAME_HEADER_LEN as u64) + u64::from(pos.len);
        let (sealed, active) = {
            let table = self.shared.table.read().expect("segment table lock");
            (
                table.sealed.get(&pos.segment).cloned(),
                table.active.clone(),
            )
        };
        if let Some(seg) = sealed {
            if frame_end > seg.len {
                return Err(missing());
            }
            let map = seg.mapped()?.ok_or_else(missing)?;
            let start = pos.offset as usize;
            check_frame(&map[start..frame_end as usize], pos, &seg.path)?;
            let body = start + FRAME_HEADER_LEN..frame_end as usize;
            return Ok(ReadBuf::Mapped(map, body));
        }
        if active.first_seq != pos.segment || frame_end > active.written.load(Ordering::Acquire) {
            return Err(missing());
        }
        let start = pos.offset as usize;
        if let Some(map) = active.mapped(frame_end) {
            check_frame(&map[start..frame_end as usize], pos, &active.path)?;
            return Ok(ReadBuf::Mapped(
                map,
                start + FRAME_HEADER_LEN..frame_end as usize,
            ));
        }
        let mut frame = vec![0u8; (frame_end - pos.offset) as usize];
        active
            .file
            .read_exact_at(&mut frame, pos.offset)
            .map_err(|e| WalError::io("read", &active.path, e))?;
        check_frame(&frame, pos, &active.path)?;
        let len = frame.len();
        Ok(ReadBuf::Owned(frame, FRAME_HEADER_LEN..len))
    }

    /// Every record in order, segment by segment, as the log is now.
    /// Replay before appending: records appended later are not included.
    ///
    /// Opening checked every frame's checksum, and skip-corrupt recovery
    /// rewrote the segments it found damage in, so replay walks the frames
    /// by their lengths and takes their checksums on trust: a start reads
    /// the log's bytes through the checksum once, not twice. A read of a
    /// record later checks its frame again.
    pub fn replay(&self) -> Replay {
        let table = self.shared.table.read().expect("segment table lock");
        let mut segments: Vec<(u64, PathBuf, u64)> = table
            .sealed
            .values()
            .map(|s| (s.first_seq, s.path.clone(), s.len))
            .collect();
        segments.push((
            table.active.first_seq,
            table.active.path.clone(),
            table.active.written.load(Ordering::Acquire),
        ));
        segments.reverse();
        Replay { segments }
    }
}

fn check_frame(frame: &[u8], pos: &Position, path: &std::path::Path) -> Result<(), WalError> {
    match decode_frame(frame) {
        Frame::Valid { len, .. } if len == frame.len() => Ok(()),
        Frame::Invalid(defect) => Err(WalError::Corrupt {
            path: path.to_path_buf(),
            offset: pos.offset,
            defect,
        }),
        _ => Err(WalError::NoSuchPosition {
            segment: pos.segment,
            offset: pos.offset,
            len: pos.len,
        }),
    }
}

/// Iterator over the segments of the log for replay; each maps its segment
/// only while it is being read, so replay does not keep the log in memory.
#[derive(Debug)]
pub struct Replay {
    /// Newest first, so `pop` yields the oldest.
    segments: Vec<(u64, PathBuf, u64)>,
}

impl Iterator for Replay {
    type Item = Result<ReplaySegment, WalError>;
    fn next(&mut self) -> Option<Self::Item> {
        let (first_seq, path, len) = self.segments.pop()?;
        Some(ReplaySegment::open(first_seq, path, len))
    }
}

/// One segment during replay.
#[derive(Debug)]
pub struct ReplaySegment {
    first_seq: u64,
    path: PathBuf,
    map: Option<Mmap>,
}

impl ReplaySegment {
    /// Maps the first `len` bytes of a segment for replay. Mapping the
    /// active segment's prefix is safe: the prefix is complete and the log
    /// only ever cuts back bytes past it.
    pub(crate) fn open(first_seq: u64, path: PathBuf, len: u64) -> Result<Self, WalError> {
        let map = segment::map_whole(&path, len)?;
        Ok(ReplaySegment {
            first_seq,
            path,
            map,
        })
    }

    /// The segment's first sequence number.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The segment's records in order, with their positions.
    pub fn records(&self) -> impl Iterator<Item = Result<(Position, &[u8]), WalError>> + '_ {
        let bytes: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let start = HEADER_LEN.min(bytes.len());
        let mut seq = self.first_seq;
        Frames::checked(bytes, start).map(move |item| match item {
            Ok((offset, body)) => {
                let pos = Position {
                    seq,
                    segment: self.first_seq,
                    offset: offset as u64,
                    len: body.len() as u32,
                };
                seq += 1;
                Ok((pos, body))
            }
            Err(bad) => Err(WalError::Corrupt {
                path: self.path.clone(),
                offset: bad.offset as u64,
                defect: bad.defect,
            }),
        })
    }
}
