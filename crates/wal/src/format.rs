//! The on-disk format of the log, as pure functions over byte slices.
//!
//! FORMAT: this file owns every byte layout of the log. Changing a layout
//! means a new `VERSION` and a reader for the old one.

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"EVBRKWAL";
/// Segment format version written by this build. Version 2 gave the frame
/// length field its batch bit ([`CONTINUES`]); a reader of version 1 would
/// take that bit for a damaged length, so it must refuse the segment whole.
pub const VERSION: u32 = 2;
/// The oldest segment format version this build reads. Version 1 frames
/// never have the batch bit set, so each reads as a batch of one record,
/// which is how they were written.
pub const OLDEST_VERSION: u32 = 1;
/// Segment header: `magic[8] | version u32 LE | first_seq u64 LE | crc32 u32 LE`.
pub const HEADER_LEN: usize = 24;
/// Frame header: `len u32 LE | crc32 u32 LE`.
pub const FRAME_HEADER_LEN: usize = 8;
/// Bit 31 of a frame's length field: the next frame belongs to the same
/// batch. The last frame of a batch has it clear, so a batch whose end never
/// reached the disk can be told from a whole one; the checksum covers it.
pub const CONTINUES: u32 = 1 << 31;
/// Largest body a frame may carry. A length field above it is corruption,
/// which keeps a damaged length from sending a reader far past the data.
pub const MAX_BODY_LEN: usize = 64 << 20;

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the segment's first record; also its file name.
    pub first_seq: u64,
    /// The format version the segment was written in.
    pub version: u32,
}

/// Why a segment header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The file is shorter than a header.
    #[error("shorter than the {HEADER_LEN}-byte header")]
    Short,
    /// The header bytes are all zero: the file was created but its header never reached the disk.
    #[error("header is all zero bytes")]
    Zeroed,
    /// The file does not start with the segment magic.
    #[error("not a segment file (bad magic)")]
    BadMagic,
    /// Written by a format version this build cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    /// The header checksum does not match.
    #[error("header checksum mismatch")]
    BadChecksum,
}

/// Encodes a segment header.
pub fn encode_header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32fast::hash(&out[..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the header at the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Err(HeaderError::Short);
    };
    if head.iter().all(|&b| b == 0) {
        return Err(HeaderError::Zeroed);
    }
    if head[..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = u32_at(head, 8);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    if crc32fast::hash(&head[..20]) != u32_at(head, 20) {
        return Err(HeaderError::BadChecksum);
    }
    Ok(SegmentHeader {
        first_seq: u64::from_le_bytes(head[12..20].try_into().expect("8 bytes")),
        version,
    })
}

/// Appends one frame holding `body` to `out`: a batch of one record.
///
/// Panics if `body` is longer than [`MAX_BODY_LEN`]; callers check first.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    start_frame(body, out);
    finish_frame(&mut out[at..], false);
}

/// Appends a frame holding `body` to `out` with its length but without its
/// checksum, which [`finish_frame`] writes once it is known whether the
/// batch goes on after it.
///
/// Panics if `body` is longer than [`MAX_BODY_LEN`]; callers check first.
pub fn start_frame(body: &[u8], out: &mut Vec<u8>) {
    assert!(body.len() <= MAX_BODY_LEN, "frame body over MAX_BODY_LEN");
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
}

/// Completes the frame [`start_frame`] began at the start of `frame`: sets
/// the batch bit when `continues`, and writes the checksum.
pub fn finish_frame(frame: &mut [u8], continues: bool) {
    let body_len = frame_body_len(frame);
    let mut len = body_len as u32;
    if continues {
        len |= CONTINUES;
    }
    frame[..4].copy_from_slice(&len.to_le_bytes());
    let body = &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len];
    let crc = frame_crc(&len.to_le_bytes(), body);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The body length a frame header at the start of `frame` gives, batch bit left out.
pub fn frame_body_len(frame: &[u8]) -> usize {
    (u32_at(frame, 0) & !CONTINUES) as usize
}

/// Bytes a frame with a body of `body_len` bytes takes on disk.
pub fn frame_len(body_len: usize) -> usize {
    FRAME_HEADER_LEN + body_len
}

/// What lies at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole, valid frame.
    Valid {
        /// The record.
        body: &'a [u8],
        /// The frame's size on disk, header included.
        len: usize,
        /// The batch bit: the next frame belongs to the same batch.
        continues: bool,
    },
    /// The slice ends before the frame does.
    Truncated,
    /// The length is impossible or the checksum does not match.
    Invalid(FrameDefect),
}

/// How a frame is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameDefect {
    /// The length field exceeds [`MAX_BODY_LEN`].
    #[error("frame length over the maximum")]
    LengthTooLarge,
    /// The checksum does not cover the bytes read.
    #[error("frame checksum mismatch")]
    BadChecksum,
    /// The data ends inside the frame.
    #[error("frame cut short")]
    Truncated,
    /// Valid frames of a batch without its last frame: the data after them
    /// ends, or is damaged, before the batch does.
    #[error("batch cut short: its last frame is missing or damaged")]
    UnfinishedBatch,
}

/// Decodes the frame at the start of `buf`.
pub fn decode_frame(buf: &[u8]) -> Frame<'_> {
    decode_frame_checking(buf, true)
}

/// [`decode_frame`], taking the checksum on trust unless `check`: for bytes
/// already checked whole, which only the lengths need walking again.
pub fn decode_frame_checking(buf: &[u8], check: bool) -> Frame<'_> {
    let Some(head) = buf.get(..FRAME_HEADER_LEN) else {
        return Frame::Truncated;
    };
    let continues = u32_at(head, 0) & CONTINUES != 0;
    let body_len = frame_body_len(head);
    if body_len > MAX_BODY_LEN {
        return Frame::Invalid(FrameDefect::LengthTooLarge);
    }
    let Some(body) = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len) else {
        return Frame::Truncated;
    };
    if check && frame_crc(&head[..4], body) != u32_at(head, 4) {
        return Frame::Invalid(FrameDefect::BadChecksum);
    }
    Frame::Valid {
        body,
        len: FRAME_HEADER_LEN + body_len,
        continues,
    }
}

/// Offset of the first valid frame in `buf` at or after `from`, if any.
///
/// Used to tell a torn tail (nothing valid follows) from corruption in the
/// middle, and by skip-corrupt recovery to resume after damage.
pub fn find_next_frame(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(FRAME_HEADER_LEN - 1))
        .find(|&at| matches!(decode_frame(&buf[at..]), Frame::Valid { .. }))
}

fn frame_crc(len: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(body);
    hasher.finalize()
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(body, &mut out);
        out
    }

    #[test]
    fn header_round_trips() {
        let h = encode_header(42);
        assert_eq!(
            decode_header(&h),
            Ok(SegmentHeader {
                first_seq: 42,
                version: VERSION
            })
        );
    }

    #[test]
    fn header_defects_are_named() {
        assert_eq!(decode_header(&[0u8; 10]), Err(HeaderError::Short));
        assert_eq!(decode_header(&[0u8; HEADER_LEN]), Err(HeaderError::Zeroed));
        let mut h = encode_header(7);
        h[0] ^= 1;
        assert_eq!(decode_header(&h), Err(HeaderError::BadMagic));
        let mut h = encode_header(7);
        h[8] = 9;
        assert_eq!(decode_header(&h), Err(HeaderError::UnsupportedVersion(9)));
        let mut h = encode_header(7);
        h[13] ^= 0x10;
        assert_eq!(decode_header(&h), Err(HeaderError::BadChecksum));
    }

    #[test]
    fn frame_round_trips_including_empty_body() {
        for body in [&b""[..], b"x", &[7u8; 1000]] {
            let buf = framed(body);
            assert_eq!(
                decode_frame(&buf),
                Frame::Valid {
                    body,
                    len: buf.len(),
                    continues: false,
                }
            );
        }
    }

    fn continuing(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        start_frame(body, &mut out);
        finish_frame(&mut out, true);
        out
    }

    #[test]
    fn the_batch_bit_round_trips_and_leaves_the_length_alone() {
        let buf = continuing(b"first of two");
        assert_eq!(
            decode_frame(&buf),
            Frame::Valid {
                body: b"first of two",
                len: buf.len(),
                continues: true,
            }
        );
        assert_eq!(frame_body_len(&buf), 12);
        assert_eq!(&buf[8..], &framed(b"first of two")[8..], "same body");
    }

    #[test]
    fn the_batch_bit_is_covered_by_the_checksum() {
        let mut ended = framed(b"last");
        ended[3] |= 0x80;
        assert_eq!(
            decode_frame(&ended),
            Frame::Invalid(FrameDefect::BadChecksum)
        );
        let mut open = continuing(b"not last");
        open[3] &= 0x7F;
        assert_eq!(
            decode_frame(&open),
            Frame::Invalid(FrameDefect::BadChecksum)
        );
    }

    #[test]
    fn version_1_segments_are_still_read() {
        let mut h = encode_header(7);
        h[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&h[..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_header(&h),
            Ok(SegmentHeader {
                first_seq: 7,
                version: 1
            })
        );
    }

    #[test]
    fn flipped_byte_anywhere_in_a_frame_is_invalid() {
        let buf = framed(b"hello world");
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(
                !matches!(decode_frame(&bad), Frame::Valid { .. }),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn cut_frame_is_truncated_at_every_length() {
        let buf = framed(b"hello world");
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut]), Frame::Truncated, "cut at {cut}");
        }
    }

    #[test]
    fn zeroed_tail_is_not_a_frame() {
        assert_eq!(
            decode_frame(&[0u8; 64]),
            Frame::Invalid(FrameDefect::BadChecksum)
        );
        assert_eq!(find_next_frame(&[0u8; 64], 0), None);
    }

    #[test]
    fn oversized_length_is_invalid_not_truncated() {
        let mut buf = framed(b"abc");
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_frame(&buf),
            Frame::Invalid(FrameDefect::LengthTooLarge)
        );
    }

    #[test]
    fn next_frame_is_found_after_garbage() {
        let mut buf = vec![0xAB; 13];
        let start = buf.len();
        buf.extend(framed(b"after"));
        assert_eq!(find_next_frame(&buf, 0), Some(start));
        assert_eq!(find_next_frame(&buf, start + 1), None);
    }
}
