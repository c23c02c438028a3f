//! Opening: the log recovered and every record of it applied to a fresh
//! state, the three at once.
//!
//! Recovery checks the segments, reading every byte, and hands each one
//! over in log order once it and all before it passed
//! ([`Wal::open_replaying`]). A decoding thread walks its frames, and the
//! opening thread applies what it decoded, in log order, chunk by chunk.
//! So a start with the log out of the page cache reads it about once, and
//! a start with it in the cache keeps both cores busy. An enqueue, the bulk
//! of any log, crosses between the threads without its payload, which the
//! state does not keep; other records cross as their bytes and are decoded
//! again where they are applied. Without the threads, the opening thread
//! opens the log and then replays it alone.
//!
//! Most of what an enqueue costs to apply is the first write to its index
//! slot: fresh memory is slow to come by, most of all on a virtual machine.
//! So whichever thread has time to spare makes the index pages: the
//! decoding thread makes them while the applying one is behind, and leaves
//! them to it otherwise.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use super::index::{page_of, Page};
use super::record::{self, Extra, Record, Stored};
use super::state::State;
use super::BrokerError;
use event_broker_wal::{Position, RecoveryReport, ReplaySegment, Wal, WalError, WalOptions};

/// Records handed from the decoding thread to the applying one at a time.
const CHUNK: usize = 1024;

/// Chunks decoded ahead of the one being applied.
const AHEAD: usize = 8;

/// A decoded record on its way to be applied.
enum Item {
    /// An enqueue, without its headers and payload.
    Enqueue {
        pos: Position,
        id: u64,
        /// The queue's name, in [`Chunk::queues`].
        queue: u32,
        enqueued_at: u64,
        visible_at: u64,
        key: Option<Box<str>>,
        extra: Extra,
    },
    /// Any other record, as its bytes.
    Other { pos: Position, body: Box<[u8]> },
}

/// Records to apply, and index pages made for their enqueues on the
/// decoding thread (see [`add_spare`](super::index::EventIndex::add_spare)).
///
/// Names of queues are copied into the chunk, once each, rather than
/// shared with the decoding thread, such as by an `Arc`: a count that both
/// threads write on every record moves its cache line between the cores
/// each time, which cost more than all the rest of applying an enqueue.
#[derive(Default)]
struct Chunk {
    items: Vec<Item>,
    pages: Vec<Page>,
    queues: Vec<Box<str>>,
}

/// Opens the log and applies every record of it to `state`: the log, what
/// its recovery found, and the number of records.
pub(super) fn open(
    options: WalOptions,
    state: &mut State,
    now: u64,
) -> Result<(Wal, RecoveryReport, u64), BrokerError> {
    let threaded = std::thread::scope(|scope| {
        let (segments_tx, segments_rx) = mpsc::channel::<Result<ReplaySegment, WalError>>();
        let (chunks_tx, chunks_rx) = mpsc::sync_channel::<Result<Chunk, BrokerError>>(AHEAD);
        // Emptied chunks go back to be filled again rather than freed.
        let (empties_tx, empties_rx) = mpsc::channel::<Vec<Item>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let sent = queued.clone();
        std::thread::Builder::new()
            .name("replay-decode".into())
            .spawn_scoped(scope, move || {
                let mut decoder = Decoder {
                    queued: Some(sent.clone()),
                    empties: Some(empties_rx),
                    ..Decoder::default()
                };
                let mut send = |chunk| {
                    sent.fetch_add(1, Ordering::Relaxed);
                    chunks_tx.send(chunk).is_ok()
                };
                for segment in segments_rx {
                    let going = match segment {
                        Ok(segment) => decoder.segment(&segment, &mut send),
                        Err(e) => {
                            send(Err(e.into()));
                            false
                        }
                    };
                    if !going {
                        return;
                    }
                }
                decoder.flush(send);
            })
            .ok()?;
        let wal_options = options.clone();
        let opener = std::thread::Builder::new()
            .name("wal-open".into())
            .spawn_scoped(scope, move || {
                Wal::open_replaying(wal_options, &mut |segment| {
                    // Nobody takes it only once replay failed.
                    let _ = segments_tx.send(segment);
                })
            })
            .ok()?;
        let mut records = 0u64;
        let mut applied = Ok(());
        for chunk in chunks_rx {
            queued.fetch_sub(1, Ordering::Relaxed);
            match chunk.and_then(|mut chunk| {
                let n = apply(state, &mut chunk, now)?;
                // Gone only once the decoding thread stopped.
                let _ = empties_tx.send(chunk.items);
                Ok(n)
            }) {
                Ok(n) => records += n,
                Err(e) => {
                    applied = Err(e);
                    break;
                }
            }
        }
        let opened = opener.join().expect("the log's open panicked");
        Some(match (opened, applied) {
            (Err(e), _) => Err(e.into()),
            (Ok(_), Err(e)) => Err(e),
            (Ok((wal, report)), Ok(())) => Ok((wal, report, records)),
        })
    });
    // A thread that could not be started touched nothing of the log.
    let opened = threaded.unwrap_or_else(|| alone(options, state, now));
    state.events.drop_spare();
    opened
}

/// Opens the log and replays it on this thread only.
fn alone(
    options: WalOptions,
    state: &mut State,
    now: u64,
) -> Result<(Wal, RecoveryReport, u64), BrokerError> {
    let (wal, report) = Wal::open(options)?;
    let mut decoder = Decoder::default();
    let mut chunks = Vec::new();
    let mut records = 0;
    for segment in wal.replay() {
        decoder.segment(&segment?, |chunk| {
            chunks.push(chunk);
            true
        });
        decoder.flush(|chunk| {
            chunks.push(chunk);
            true
        });
        for chunk in chunks.drain(..) {
            records += apply(state, &mut chunk?, now)?;
        }
    }
    Ok((wal, report, records))
}

/// Applies a chunk, leaving it empty; how many records it held.
fn apply(state: &mut State, chunk: &mut Chunk, now: u64) -> Result<u64, BrokerError> {
    let records = chunk.items.len() as u64;
    state.events.add_spare(std::mem::take(&mut chunk.pages));
    let queues = std::mem::take(&mut chunk.queues);
    for item in chunk.items.drain(..) {
        match item {
            Item::Enqueue {
                pos,
                id,
                queue,
                enqueued_at,
                visible_at,
                key,
                extra,
            } => {
                let stored = Stored {
                    id,
                    queue: Cow::Borrowed(&queues[queue as usize]),
                    enqueued_at,
                    visible_at,
                    idempotency_key: key.as_deref().map(Cow::Borrowed),
                    headers: Cow::Borrowed(&[]),
                    payload: Cow::Borrowed(&[]),
                };
                let record = Record::enqueue(stored, extra, None);
                state.apply(&record, &pos, now);
            }
            Item::Other { pos, body } => {
                let record = record::decode(&body).map_err(|source| BrokerError::BadRecord {
                    segment: pos.segment,
                    offset: pos.offset,
                    source,
                })?;
                state.apply(&record, &pos, now);
            }
        }
    }
    Ok(records)
}

/// Decodes segments into chunks.
#[derive(Default)]
struct Decoder {
    chunk: Chunk,
    /// The queue of the enqueue decoded last, and its place in the chunk's
    /// names when the chunk has it.
    queue: (String, Option<u32>),
    /// The newest index page an enqueue was decoded for.
    page: Option<u64>,
    /// Chunks handed over and not yet taken, when another thread applies
    /// them: while it is behind, this one makes the index pages.
    queued: Option<Arc<AtomicUsize>>,
    /// Chunks given back once applied.
    empties: Option<mpsc::Receiver<Vec<Item>>>,
}

impl Decoder {
    /// Decodes a segment's records into `sink`, a chunk at a time, until it
    /// says to stop or a record cannot be decoded, which is the last thing
    /// it is given; whether to go on.
    fn segment(
        &mut self,
        segment: &ReplaySegment,
        mut sink: impl FnMut(Result<Chunk, BrokerError>) -> bool,
    ) -> bool {
        for item in segment.records() {
            match item
                .map_err(BrokerError::from)
                .and_then(|(pos, body)| self.item(pos, body))
            {
                Ok(item) => self.chunk.items.push(item),
                Err(e) => {
                    sink(Err(e));
                    return false;
                }
            }
            if self.chunk.items.len() == CHUNK && !sink(Ok(self.take())) {
                return false;
            }
        }
        true
    }

    /// Hands over what is left.
    fn flush(&mut self, mut sink: impl FnMut(Result<Chunk, BrokerError>) -> bool) {
        if !self.chunk.items.is_empty() {
            sink(Ok(self.take()));
        }
    }

    fn take(&mut self) -> Chunk {
        let items = self
            .empties
            .as_ref()
            .and_then(|empties| empties.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let fresh = Chunk {
            items,
            pages: Vec::new(),
            queues: Vec::new(),
        };
        self.queue.1 = None;
        std::mem::replace(&mut self.chunk, fresh)
    }

    fn item(&mut self, pos: Position, body: &[u8]) -> Result<Item, BrokerError> {
        let record = record::decode(body).map_err(|source| BrokerError::BadRecord {
            segment: pos.segment,
            offset: pos.offset,
            source,
        })?;
        let (stored, extra) = match record {
            Record::Enqueue(stored) => (stored, Extra::default()),
            Record::EnqueueWith(stored, extra) => (stored, extra),
            _ => {
                return Ok(Item::Other {
                    pos,
                    body: Box::from(body),
                })
            }
        };
        let page = page_of(stored.id);
        if self.page.is_none_or(|newest| page > newest) {
            self.page = Some(page);
            if self
                .queued
                .as_ref()
                .is_some_and(|q| q.load(Ordering::Relaxed) >= AHEAD / 4)
            {
                self.chunk.pages.push(Page::new());
            }
        }
        let (name, slot) = &mut self.queue;
        if *name != *stored.queue {
            name.clear();
            name.push_str(&stored.queue);
            *slot = None;
        }
        let queue = *slot.get_or_insert_with(|| {
            self.chunk.queues.push(Box::from(name.as_str()));
            (self.chunk.queues.len() - 1) as u32
        });
        Ok(Item::Enqueue {
            pos,
            id: stored.id,
            queue,
            enqueued_at: stored.enqueued_at,
            visible_at: stored.visible_at,
            key: stored.idempotency_key.map(|k| Box::from(&*k)),
            extra,
        })
    }
}
