//! Consuming: one round of lease then ack, and the ledger that checks every
//! event of a run comes back exactly once.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::bitset::Bitset;
use super::payload::{AckRequest, Leased, Settled, Stamp};
use super::worker::Worker;
use super::BenchError;

/// Which events `0..len` of a run were delivered and acked, shared by its
/// consumers.
#[derive(Debug)]
pub struct Ledger {
    delivered: Bitset,
    acked: Bitset,
    acked_count: AtomicU64,
    duplicates: AtomicU64,
}

impl Ledger {
    /// A ledger of events `0..len`, none seen.
    pub fn new(len: u64) -> Ledger {
        Ledger {
            delivered: Bitset::new(len),
            acked: Bitset::new(len),
            acked_count: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }

    /// Events acked at least once.
    pub fn acked(&self) -> u64 {
        self.acked_count.load(Ordering::SeqCst)
    }

    /// Events delivered at least once.
    pub fn delivered(&self) -> u64 {
        self.delivered.count()
    }

    /// Deliveries of an event already delivered before (redeliveries).
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
}

/// What one round gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    /// Events leased.
    pub leased: usize,
    /// Of those, acked with status `ok`.
    pub acked: usize,
}

/// A worker that leases from one queue and acks what it got.
pub struct Consumer {
    worker: Worker,
    lease_path: String,
    ack_path: String,
    max: u32,
}

impl Consumer {
    /// A consumer of `queue` leasing up to `max` events a round.
    pub fn new(worker: Worker, queue: &str, max: u32) -> Consumer {
        Consumer {
            worker,
            lease_path: format!("/api/queues/{queue}/lease"),
            ack_path: format!("/api/queues/{queue}/ack"),
            max,
        }
    }

    /// Leases up to `max` events, waiting up to `wait_ms` for the first,
    /// calls `received` with each one's stamp, then acks them all in one
    /// request. With a ledger, checks each event against it.
    pub async fn round(
        &mut self,
        wait_ms: u64,
        ledger: Option<&Ledger>,
        mut received: impl FnMut(Stamp),
    ) -> Result<Round, BenchError> {
        let lease = format!("{{\"max\":{},\"wait_ms\":{wait_ms}}}", self.max);
        let Some(body) = self.worker.post(&self.lease_path, lease.into()).await? else {
            return Ok(Round::default());
        };
        let leased: Leased = match serde_json::from_slice(&body) {
            Ok(leased) => leased,
            Err(e) => {
                self.worker.tally().error(|| format!("lease answer: {e}"));
                return Ok(Round::default());
            }
        };
        if leased.events.is_empty() {
            return Ok(Round::default());
        }
        for event in &leased.events {
            received(event.payload);
            if let Some(ledger) = ledger {
                self.check_delivery(ledger, event.payload.seq);
            }
        }
        let receipts = leased.events.iter().map(|e| e.receipt.as_ref()).collect();
        let ack = serde_json::to_vec(&AckRequest { receipts }).expect("strings serialise");
        let leased_n = leased.events.len();
        let Some(body) = self.worker.post(&self.ack_path, ack.into()).await? else {
            return Ok(Round {
                leased: leased_n,
                acked: 0,
            });
        };
        let acked = self.settle(&body, &leased, ledger);
        self.worker.tally().add_events(acked as u64);
        Ok(Round {
            leased: leased_n,
            acked,
        })
    }

    fn check_delivery(&self, ledger: &Ledger, seq: u64) {
        match ledger.delivered.insert(seq) {
            Some(true) => {}
            Some(false) => {
                ledger.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            None => self
                .worker
                .tally()
                .error(|| format!("event with seq {seq} is not of this run")),
        }
    }

    /// Counts the receipts acked `ok`; any other result is a failure.
    fn settle(&self, body: &[u8], leased: &Leased<'_>, ledger: Option<&Ledger>) -> usize {
        let tally = self.worker.tally();
        let settled: Settled = match serde_json::from_slice(body) {
            Ok(settled) => settled,
            Err(e) => {
                tally.error(|| format!("ack answer: {e}"));
                return 0;
            }
        };
        if settled.results.len() != leased.events.len() {
            tally.error(|| {
                let (got, sent) = (settled.results.len(), leased.events.len());
                format!("ack answered {got} results for {sent} receipts")
            });
            return 0;
        }
        let mut acked = 0;
        for (event, result) in leased.events.iter().zip(&settled.results) {
            if result.status != "ok" {
                let seq = event.payload.seq;
                tally.error(|| format!("ack of event seq {seq}: {}", result.status));
                continue;
            }
            acked += 1;
            if let Some(ledger) = ledger {
                if ledger.acked.insert(event.payload.seq) == Some(true) {
                    ledger.acked_count.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        acked
    }

    /// The latency of every lease and ack answered 2xx.
    pub fn into_latency(self) -> Histogram<u64> {
        self.worker.into_latency()
    }

    /// Whether the run is ending early.
    pub fn halted(&self) -> bool {
        self.worker.halted()
    }
}
