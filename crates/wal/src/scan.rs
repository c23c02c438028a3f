//! Judging one segment's bytes, without changing anything. Recovery acts on
//! the verdict (cuts a torn tail, refuses or skips corruption) and
//! verification reports it: one set of rules, so a log that verifies is a
//! log that opens.

use super::format::{
    decode_header, find_next_frame, frame_len, FrameDefect, HeaderError, HEADER_LEN,
};
use super::segment::Frames;

/// A damaged run of frame bytes, `offset..until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadRun {
    pub offset: usize,
    pub until: usize,
    pub defect: FrameDefect,
}

/// What a segment holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Valid frames.
    pub records: u64,
    /// Their bytes, frame headers included.
    pub frame_bytes: u64,
    /// End of the last valid frame (the header's end when there is none).
    pub valid_end: usize,
    /// The format version in the segment's header (0 when it has none).
    pub version: u32,
    /// The newest segment's header never reached the disk: it was being
    /// created, so it holds no record.
    pub unwritten_header: bool,
    /// Damage at the end of the newest segment with nothing valid after it
    /// and not only zeros: an interrupted write. It starts at the first frame
    /// of the batch it cut short, so none of that batch is kept.
    pub torn: Option<BadRun>,
    /// Any other damage: data that may once have been acknowledged.
    pub corrupt: Vec<BadRun>,
}

/// The header does not fit the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    /// It cannot be read.
    Bad(HeaderError),
    /// It names another first sequence number than the file name does.
    Mismatch {
        /// The sequence number in the header.
        header_seq: u64,
    },
}

/// Judges the bytes of the segment named `first_seq`, calling `visit` with
/// the offset and body of every valid frame. `newest` says whether it is
/// the newest segment of a log, whose end may hold an interrupted write or
/// zeros written ahead. With `stop_at_corrupt` the walk ends at the first
/// corrupt run; otherwise it resumes at the next valid frame.
pub(crate) fn scan(
    bytes: &[u8],
    first_seq: u64,
    newest: bool,
    stop_at_corrupt: bool,
    visit: &mut dyn FnMut(usize, &[u8]),
) -> Result<SegmentScan, HeaderFault> {
    let mut found = SegmentScan {
        valid_end: HEADER_LEN,
        ..SegmentScan::default()
    };
    match decode_header(bytes) {
        Ok(header) if header.first_seq == first_seq => found.version = header.version,
        Ok(header) => {
            return Err(HeaderFault::Mismatch {
                header_seq: header.first_seq,
            })
        }
        Err(HeaderError::Short | HeaderError::Zeroed)
            if newest && find_next_frame(bytes, HEADER_LEN.min(bytes.len())).is_none() =>
        {
            found.unwritten_header = true;
            return Ok(found);
        }
        Err(defect) => return Err(HeaderFault::Bad(defect)),
    }
    let mut frames = Frames::new(bytes, HEADER_LEN, false);
    while let Some(item) = frames.next() {
        match item {
            Ok((offset, body)) => {
                visit(offset, body);
                found.records += 1;
                found.valid_end = offset + frame_len(body.len());
                found.frame_bytes += frame_len(body.len()) as u64;
            }
            Err(bad) if bad.resume.is_none() && newest => {
                // Zeros the writer wrote ahead of its data are unused space, not a tear.
                if bytes[bad.offset..].iter().any(|&b| b != 0) {
                    found.torn = Some(BadRun {
                        offset: bad.offset,
                        until: bytes.len(),
                        defect: bad.defect,
                    });
                }
                break;
            }
            Err(bad) => {
                found.corrupt.push(BadRun {
                    offset: bad.offset,
                    until: bad.resume.unwrap_or(bytes.len()),
                    defect: bad.defect,
                });
                match bad.resume {
                    Some(next) if !stop_at_corrupt => frames.resume_at(next),
                    _ => break,
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_frame, encode_header, finish_frame, start_frame};

    /// A segment starting at 5 with frames of 100, 200 and 300 bytes of body.
    fn segment() -> (Vec<u8>, Vec<usize>) {
        let mut buf = encode_header(5).to_vec();
        let mut starts = Vec::new();
        for len in [100, 200, 300] {
            starts.push(buf.len());
            encode_frame(&vec![len as u8; len], &mut buf);
        }
        (buf, starts)
    }

    /// A segment starting at 5 with one record, then a batch of three;
    /// the offsets of the batch's frames and where it ends.
    fn segment_with_batch() -> (Vec<u8>, Vec<usize>, usize) {
        let mut buf = encode_header(5).to_vec();
        encode_frame(b"alone", &mut buf);
        let mut starts = Vec::new();
        for (i, body) in [&b"one"[..], b"two", b"three"].iter().enumerate() {
            let at = buf.len();
            starts.push(at);
            start_frame(body, &mut buf);
            finish_frame(&mut buf[at..], i < 2);
        }
        let end = buf.len();
        (buf, starts, end)
    }

    #[test]
    fn a_whole_batch_yields_its_records_in_order() {
        let (buf, starts, end) = segment_with_batch();
        let mut seen = Vec::new();
        let found = scan(&buf, 5, true, false, &mut |at, body| {
            seen.push((at, body.to_vec()))
        })
        .unwrap();
        assert_eq!((found.records, found.valid_end, found.torn), (4, end, None));
        assert_eq!(
            &seen[1..],
            &[
                (starts[0], b"one".to_vec()),
                (starts[1], b"two".to_vec()),
                (starts[2], b"three".to_vec())
            ]
        );
    }

    #[test]
    fn a_batch_cut_anywhere_is_a_torn_tail_from_its_first_frame_in_the_newest_segment() {
        let (buf, starts, end) = segment_with_batch();
        for cut in starts[0] + 1..end {
            let mut seen = 0;
            let found = scan(&buf[..cut], 5, true, false, &mut |_, _| seen += 1).unwrap();
            assert_eq!(
                (found.records, seen),
                (1, 1),
                "cut at {cut}: none of the batch"
            );
            assert_eq!(found.valid_end, starts[0], "cut at {cut}");
            let torn = found.torn.expect("a torn tail");
            assert_eq!((torn.offset, torn.until), (starts[0], cut), "cut at {cut}");
            assert!(found.corrupt.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn a_batch_followed_by_zeros_instead_of_its_end_is_torn_not_unused_space() {
        let (buf, starts, _) = segment_with_batch();
        let mut cut = buf[..starts[2]].to_vec();
        cut.resize(cut.len() + 4096, 0);
        let found = judge(&cut, true).unwrap();
        assert_eq!(found.records, 1);
        let torn = found.torn.expect("a torn tail");
        assert_eq!(
            (torn.offset, torn.defect),
            (starts[0], FrameDefect::UnfinishedBatch)
        );
    }

    #[test]
    fn a_batch_cut_short_at_the_end_of_a_sealed_segment_is_corruption() {
        let (buf, starts, _) = segment_with_batch();
        let found = judge(&buf[..starts[2]], false).unwrap();
        assert_eq!(found.torn, None);
        assert_eq!(found.corrupt.len(), 1);
        assert_eq!(found.corrupt[0].offset, starts[0]);
        assert_eq!(found.corrupt[0].defect, FrameDefect::UnfinishedBatch);
    }

    #[test]
    fn damage_inside_a_batch_with_valid_frames_after_it_is_corruption_where_it_is() {
        let (mut buf, starts, _) = segment_with_batch();
        buf[starts[1] + 9] ^= 1;
        let found = judge(&buf, true).unwrap();
        assert_eq!(found.torn, None, "a valid frame follows: not a tear");
        assert_eq!(found.corrupt.len(), 1);
        let bad = found.corrupt[0];
        assert_eq!((bad.offset, bad.until), (starts[1], starts[2]));
        assert_eq!(bad.defect, FrameDefect::BadChecksum);
        assert_eq!(found.records, 3, "only the damaged frame is lost");
    }

    fn judge(bytes: &[u8], newest: bool) -> Result<SegmentScan, HeaderFault> {
        scan(bytes, 5, newest, false, &mut |_, _| {})
    }

    #[test]
    fn a_clean_segment_yields_every_frame_in_order() {
        let (buf, starts) = segment();
        let mut seen = Vec::new();
        let found = scan(&buf, 5, false, false, &mut |at, body| {
            seen.push((at, body.len()))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(starts[0], 100), (starts[1], 200), (starts[2], 300)]
        );
        assert_eq!((found.records, found.valid_end), (3, buf.len()));
        assert_eq!((found.torn, found.corrupt.len()), (None, 0));
    }

    #[test]
    fn a_cut_last_frame_is_a_torn_tail_in_the_newest_segment_only() {
        let (buf, starts) = segment();
        let cut = &buf[..buf.len() - 10];
        let newest = judge(cut, true).unwrap();
        assert_eq!(newest.torn.map(|t| t.offset), Some(starts[2]));
        assert_eq!((newest.records, newest.valid_end), (2, starts[2]));
        assert!(newest.corrupt.is_empty());
        let sealed = judge(cut, false).unwrap();
        assert_eq!(sealed.torn, None);
        assert_eq!(sealed.corrupt[0].offset, starts[2]);
    }

    #[test]
    fn zeros_after_the_last_frame_of_the_newest_segment_are_unused_space() {
        let (mut buf, _) = segment();
        let end = buf.len();
        buf.resize(end + 4096, 0);
        let found = judge(&buf, true).unwrap();
        assert_eq!((found.records, found.valid_end, found.torn), (3, end, None));
        assert!(found.corrupt.is_empty());
    }

    #[test]
    fn a_flipped_byte_before_a_valid_frame_is_corruption_even_in_the_newest_segment() {
        let (mut buf, starts) = segment();
        buf[starts[1] + 50] ^= 1;
        let found = judge(&buf, true).unwrap();
        assert_eq!(found.torn, None);
        assert_eq!(found.corrupt.len(), 1);
        assert_eq!(found.corrupt[0].offset, starts[1]);
        assert_eq!(found.corrupt[0].until, starts[2]);
        assert_eq!(found.corrupt[0].defect, FrameDefect::BadChecksum);
        assert_eq!(found.records, 2, "the frame after the damage is still read");
        let stopped = scan(&buf, 5, true, true, &mut |_, _| {}).unwrap();
        assert_eq!(stopped.records, 1);
    }

    #[test]
    fn an_unwritten_header_of_the_newest_segment_holds_nothing() {
        let found = judge(&[0u8; 10], true).unwrap();
        assert!(found.unwritten_header);
        assert_eq!(
            judge(&[0u8; 10], false),
            Err(HeaderFault::Bad(HeaderError::Short))
        );
    }

    #[test]
    fn a_header_naming_another_sequence_is_a_fault() {
        let (buf, _) = segment();
        assert_eq!(
            scan(&buf, 6, false, false, &mut |_, _| {}),
            Err(HeaderFault::Mismatch { header_seq: 5 })
        );
    }
}
