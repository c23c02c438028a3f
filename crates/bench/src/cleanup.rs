//! After a run: the events it left in a queue it named itself are leased
//! and acked, so that no `bench-*` queue keeps them and their disk. The API
//! has no route to delete a queue, so the name stays listed, empty.

use std::sync::Arc;

use super::consumer::Consumer;
use super::scrape::Scraper;
use super::tally::Tally;
use super::worker::Worker;
use super::{BenchError, Setup, PATIENCE};

/// Most events per lease of the cleanup (the broker's default `MAX_BATCH`).
const LEASE_MAX: u64 = 1000;

/// What the cleanup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Events acked.
    pub acked: u64,
    /// Events of the queue left: leased by a worker that stopped mid-round,
    /// they are ready again when their lease expires.
    pub left: Option<u64>,
}

/// Leases and acks the run's queue until a lease finds it empty; on its own
/// halt, so that a run that ended early is cleaned up all the same.
pub async fn drain(setup: &Setup) -> Result<Drained, BenchError> {
    let setup = Setup {
        halt: Arc::default(),
        ..setup.clone()
    };
    let worker = Worker::connect(&setup, Arc::new(Tally::default()), PATIENCE).await?;
    let max = setup.limits.batch(LEASE_MAX) as u32;
    let mut consumer = Consumer::new(worker, &setup.queue, max);
    let mut acked = 0;
    loop {
        let round = consumer.round(0, None, |_| {}).await?;
        acked += round.acked as u64;
        if round.leased == 0 {
            break;
        }
    }
    let left = Scraper::open(&setup.target)
        .await?
        .depth(&setup.queue)
        .await;
    Ok(Drained { acked, left })
}
