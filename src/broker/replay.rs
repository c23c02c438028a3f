//! Replay at open: every record of the log applied to a fresh state.
//!
//! Walking and decoding the frames is about half the work and applying them
//! the other half, so with a second core one thread decodes while the
//! opening thread applies, in log order, chunk by chunk. Records borrow from
//! the mapped segments, which are all mapped for the length of the replay:
//! a mapping costs address space, not memory, and the pages it reads are
//! the page cache's. Without a second thread the opening one does both.

use std::sync::mpsc;

use super::record::{self, Record};
use super::state::State;
use super::BrokerError;
use crate::wal::{Position, ReplaySegment, Wal};

/// Records handed from the decoding thread to the applying one at a time.
const CHUNK: usize = 1024;

/// Chunks decoded ahead of the one being applied.
const AHEAD: usize = 8;

type Chunk<'a> = Vec<(Position, Record<'a>)>;

/// Applies every record of `wal` to `state`; the number of records.
pub(super) fn replay(wal: &Wal, state: &mut State, now: u64) -> Result<u64, BrokerError> {
    let segments = wal.replay().collect::<Result<Vec<_>, _>>()?;
    let mut records = 0u64;
    let mut apply = |chunk: Chunk<'_>| {
        records += chunk.len() as u64;
        for (pos, record) in &chunk {
            state.apply(record, pos, now);
        }
    };
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Chunk<'_>, BrokerError>>(AHEAD);
        let segments = &segments;
        let decoder = std::thread::Builder::new()
            .name("replay-decode".into())
            .spawn_scoped(scope, move || {
                decode(segments, |chunk| tx.send(chunk).is_ok());
            });
        match decoder {
            Ok(_) => {
                for chunk in rx {
                    apply(chunk?);
                }
                Ok(())
            }
            Err(_) => {
                let mut failed = None;
                decode(segments, |chunk| match chunk {
                    Ok(chunk) => {
                        apply(chunk);
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                });
                failed.map_or(Ok(()), Err)
            }
        }
    })?;
    Ok(records)
}

/// Decodes the records of `segments` in order, in chunks, into `sink`
/// until it says to stop; a record that cannot be decoded is the last thing
/// it is given.
fn decode<'a>(
    segments: &'a [ReplaySegment],
    mut sink: impl FnMut(Result<Chunk<'a>, BrokerError>) -> bool,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for segment in segments {
        for item in segment.records() {
            let decoded = item.map_err(BrokerError::from).and_then(|(pos, body)| {
                let record = record::decode(body).map_err(|source| BrokerError::BadRecord {
                    segment: pos.segment,
                    offset: pos.offset,
                    source,
                })?;
                Ok((pos, record))
            });
            match decoded {
                Ok(done) => chunk.push(done),
                Err(e) => {
                    sink(Err(e));
                    return;
                }
            }
            if chunk.len() == CHUNK
                && !sink(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
            {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        sink(Ok(chunk));
    }
}
