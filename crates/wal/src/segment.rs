//! Segment files: names, listing, and the walk over the frames of one segment.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use super::error::WalError;
use super::format::{
    decode_frame_checking, find_next_frame, frame_body_len, Frame, FrameDefect, FRAME_HEADER_LEN,
};

/// File name of the segment whose first record has sequence number `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number a segment file name stands for, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, oldest first, as (first sequence number, path).
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io("list", dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_file_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(found)
}

/// Maps the first `len` bytes of a file read-only.
///
/// Only bytes that are never truncated may be mapped (touching a mapped page
/// past the end of a file raises SIGBUS): sealed segments, and the prefix of
/// the active one that the writer has already completed.
pub fn map(path: &Path, len: u64) -> Result<Option<Mmap>, WalError> {
    map_with(path, len, false)
}

/// [`map`] for a walk over every byte: the pages are mapped in one call
/// (`MAP_POPULATE`), not fault by fault as the walk first touches them.
pub fn map_whole(path: &Path, len: u64) -> Result<Option<Mmap>, WalError> {
    map_with(path, len, true)
}

fn map_with(path: &Path, len: u64, populate: bool) -> Result<Option<Mmap>, WalError> {
    if len == 0 {
        return Ok(None);
    }
    let file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let mut options = MmapOptions::new();
    options.len(len as usize);
    if populate {
        options.populate();
    }
    // SAFETY: the mapped range is never truncated or rewritten while mapped
    // (see above); the log only appends past it.
    let map = unsafe { options.map(&file) }.map_err(|e| WalError::io("map", path, e))?;
    Ok(Some(map))
}

/// A damaged frame met while walking a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFrame {
    /// Offset of the damaged frame; when nothing valid follows it, of the
    /// first frame of the batch it cut short.
    pub offset: usize,
    /// What is wrong with it: [`FrameDefect::UnfinishedBatch`] when a batch
    /// was cut short and nothing valid follows.
    pub defect: FrameDefect,
    /// Offset of the next valid frame after the damage, if there is one.
    pub resume: Option<usize>,
}

/// Walks the frames of a segment's bytes from a start offset, a batch at a
/// time: the frames of a batch come out only once its last frame has been
/// read, so a batch cut short at the end of the bytes (a write a crash
/// interrupted) yields none of its records. Frames before damage that valid
/// frames follow are yielded, then the damage: that is corruption, not an
/// interrupted write, and what was lost is only the damaged run.
///
/// Without `skip_damage` the walk ends with the first damaged frame, yielded
/// as an error; the caller may [`Frames::resume_at`] past it. With it, damage
/// is stepped over silently (recovery has reported it already).
///
/// [`Frames::checked`] walks bytes whose every frame was checked already:
/// it reads the lengths and takes the checksums on trust.
#[derive(Debug)]
pub struct Frames<'a> {
    buf: &'a [u8],
    at: usize,
    skip_damage: bool,
    trust_checksums: bool,
    done: bool,
    /// Bytes of whole frames checked already and not yet yielded: walked
    /// again by their lengths only.
    ready: Range<usize>,
    /// Damage met after the frames in `ready`, to yield once they are.
    damage: Option<BadFrame>,
    /// How far the bytes were asked for ahead of the walk.
    prefetched: usize,
}

/// How far ahead of a walk its bytes are asked for: a few frames.
const PREFETCH_AHEAD: usize = 2048;

/// Asks the processor for the bytes of `buf` from `from` to
/// [`PREFETCH_AHEAD`] past `at`, a cache line at a time; how far that went.
#[inline]
fn prefetch(buf: &[u8], mut from: usize, at: usize) -> usize {
    let until = (at + PREFETCH_AHEAD).min(buf.len());
    while from < until {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it reads nothing the program sees
        // and never faults, and the address is inside `buf`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(buf.as_ptr().add(from).cast());
        }
        from += 64;
    }
    from
}

impl<'a> Frames<'a> {
    /// Walks `buf` from `start`.
    pub fn new(buf: &'a [u8], start: usize, skip_damage: bool) -> Self {
        Frames {
            buf,
            at: start,
            skip_damage,
            trust_checksums: false,
            done: false,
            ready: start..start,
            damage: None,
            prefetched: start,
        }
    }

    /// Walks `buf` from `start`, its frames all checked already.
    pub fn checked(buf: &'a [u8], start: usize) -> Self {
        Frames {
            trust_checksums: true,
            ..Frames::new(buf, start, true)
        }
    }

    /// Continues the walk at `offset` after a damaged frame.
    pub fn resume_at(&mut self, offset: usize) {
        self.at = offset;
        self.prefetched = offset;
        self.done = false;
    }

    /// Reads the batch at `self.at` to its end and marks its frames ready;
    /// on damage, marks the frames before it ready when valid frames follow
    /// it, and keeps the damage. False once the bytes end.
    fn read_batch(&mut self) -> bool {
        let start = self.at;
        while self.at < self.buf.len() {
            self.prefetch();
            let defect = match decode_frame_checking(&self.buf[self.at..], !self.trust_checksums) {
                Frame::Valid { len, continues, .. } => {
                    self.at += len;
                    if continues {
                        continue;
                    }
                    self.ready = start..self.at;
                    return true;
                }
                Frame::Truncated => FrameDefect::Truncated,
                Frame::Invalid(defect) => defect,
            };
            let resume = find_next_frame(self.buf, self.at + 1);
            self.damage = Some(if resume.is_some() {
                self.ready = start..self.at;
                BadFrame {
                    offset: self.at,
                    defect,
                    resume,
                }
            } else {
                self.unfinished(start, defect)
            });
            return true;
        }
        if self.at == start {
            return false;
        }
        self.damage = Some(self.unfinished(start, FrameDefect::UnfinishedBatch));
        true
    }

    /// Asks the processor for the bytes [`PREFETCH_AHEAD`] past the walk.
    /// Each frame's place comes from the length of the one before, so
    /// without it every frame header is a wait on memory, one after the
    /// other; with it they are on their way before the walk needs them.
    #[inline]
    fn prefetch(&mut self) {
        self.prefetched = prefetch(self.buf, self.prefetched.max(self.at), self.at);
    }

    /// The damage where the bytes end, or hold nothing valid any more,
    /// before the batch that began at `start` does.
    fn unfinished(&self, start: usize, defect: FrameDefect) -> BadFrame {
        BadFrame {
            offset: start,
            defect: if self.at > start {
                FrameDefect::UnfinishedBatch
            } else {
                defect
            },
            resume: None,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(usize, &'a [u8]), BadFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        // Checked bytes hold whole batches only (recovery cut or rewrote
        // what did not), so their frames are yielded as they are walked, not
        // once their batch is: each is read once, while it is still in the
        // cache. Anything else goes the careful way below.
        if self.trust_checksums && self.ready.is_empty() && self.damage.is_none() && !self.done {
            self.prefetch();
            if let Frame::Valid { body, len, .. } =
                decode_frame_checking(&self.buf[self.at..], false)
            {
                let at = self.at;
                self.at += len;
                return Some(Ok((at, body)));
            }
        }
        loop {
            if !self.ready.is_empty() {
                let at = self.ready.start;
                let body_at = at + FRAME_HEADER_LEN;
                let body = &self.buf[body_at..body_at + frame_body_len(&self.buf[at..])];
                self.ready.start = body_at + body.len();
                return Some(Ok((at, body)));
            }
            if let Some(bad) = self.damage.take() {
                match bad.resume {
                    Some(next) if self.skip_damage => self.at = next,
                    _ if self.skip_damage => self.done = true,
                    _ => {
                        self.done = true;
                        return Some(Err(bad));
                    }
                }
            }
            if self.done || !self.read_batch() {
                self.done = true;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{finish_frame, start_frame};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_checked_walk_yields_what_a_careful_one_does(
            batches in proptest::collection::vec(proptest::collection::vec(0usize..700, 1..6), 0..40),
            start in 0usize..3,
        ) {
            let mut buf = vec![7u8; start];
            for batch in &batches {
                for (i, len) in batch.iter().enumerate() {
                    let at = buf.len();
                    start_frame(&vec![i as u8; *len], &mut buf);
                    finish_frame(&mut buf[at..], i + 1 < batch.len());
                }
            }
            let careful: Vec<_> = Frames::new(&buf, start, true).collect();
            let checked: Vec<_> = Frames::checked(&buf, start).collect();
            prop_assert_eq!(careful.len(), batches.iter().map(Vec::len).sum::<usize>());
            prop_assert_eq!(checked, careful);
        }
    }

    #[test]
    fn file_names_round_trip_and_reject_others() {
        assert_eq!(file_name(17), "00000000000000000017.seg");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("17.seg"), None);
        assert_eq!(parse_file_name("0000000000000000001x.seg"), None);
        assert_eq!(parse_file_name("00000000000000000017.seg.tmp"), None);
    }
}
