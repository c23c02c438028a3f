//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use event_broker_wal::{Batch, Position, Wal, WalOptions};

/// Deterministic bytes for record `seed`, `len` long, so a test can rebuild
/// what it wrote without keeping it.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Options for a log in `dir` with small segments.
pub fn options(dir: &Path, segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::new(dir)
    }
}

/// Every record of the log, in order.
pub fn replay_all(wal: &Wal) -> Vec<(Position, Vec<u8>)> {
    let mut out = Vec::new();
    for segment in wal.replay() {
        let segment = segment.expect("segment maps");
        for record in segment.records() {
            let (pos, body) = record.expect("record is valid");
            out.push((pos, body.to_vec()));
        }
    }
    out
}

/// Appends each body as its own batch; returns their positions.
pub fn append_each(wal: &Wal, bodies: &[Vec<u8>]) -> Vec<Position> {
    bodies
        .iter()
        .map(|b| wal.append(Batch::of(b).unwrap()).expect("append")[0])
        .collect()
}

pub mod api;
pub mod broker;
pub mod server;

/// Offsets of the frames of a segment file's bytes, up to the zeros written
/// ahead of the data or the end of the file.
pub fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = event_broker_wal::format::HEADER_LEN;
    let mut starts = Vec::new();
    while at + 8 <= bytes.len() {
        let len = event_broker_wal::format::frame_body_len(&bytes[at..]);
        if len == 0 && bytes[at + 4..at + 8] == [0; 4] {
            break;
        }
        starts.push(at);
        at += 8 + len;
    }
    starts
}
