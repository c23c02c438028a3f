//! Acks and nacks of a [`Consumer`](crate::Consumer), batched: a task takes
//! every settle waiting when it is free and sends them as one ack and one
//! nack per distinct error, so that while a request is on its way the next
//! batch gathers, as the broker's group commit does with fsyncs.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::Error;
use crate::types::{Nack, SettleResult, SettleStatus};

/// The most receipts in one request; the broker's default `MAX_BATCH`.
pub(crate) const MAX_RECEIPTS: usize = 1000;

/// How the handler's run ended.
#[derive(Debug)]
pub(crate) enum Settle {
    /// Done: ack.
    Ack(String),
    /// Failed: nack with this error, after this delay (`None`: the backoff).
    Nack {
        receipt: String,
        error: String,
        delay_ms: Option<u64>,
    },
}

/// What the settles came to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Settled {
    pub acked: u64,
    pub nacked: u64,
    /// Receipts whose lease was gone by the time they were sent: the event
    /// was or will be delivered again.
    pub lost: u64,
}

/// Sends what arrives on `rx` until it closes, then returns the counts.
/// A request that fails for a transient reason is tried again until
/// `give_up_after`: past the lease's end there is nothing left to settle.
pub(crate) async fn run(
    client: Client,
    queue: String,
    mut rx: mpsc::UnboundedReceiver<Settle>,
    give_up_after: Duration,
) -> Settled {
    let mut settled = Settled::default();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_RECEIPTS {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut acks = Vec::new();
        let mut nacks: BTreeMap<(String, Option<u64>), Vec<String>> = BTreeMap::new();
        for settle in batch {
            match settle {
                Settle::Ack(receipt) => acks.push(receipt),
                Settle::Nack {
                    receipt,
                    error,
                    delay_ms,
                } => nacks.entry((error, delay_ms)).or_default().push(receipt),
            }
        }
        if !acks.is_empty() {
            let results = send(give_up_after, || client.ack_events(&queue, &acks)).await;
            count(
                &results,
                acks.len(),
                &mut settled.acked,
                &mut settled.lost,
                "ack",
            );
        }
        for ((error, delay_ms), receipts) in nacks {
            let nack = Nack {
                receipts,
                delay_ms,
                error: Some(error),
            };
            let results = send(give_up_after, || client.nack_events(&queue, &nack)).await;
            count(
                &results,
                nack.receipts.len(),
                &mut settled.nacked,
                &mut settled.lost,
                "nack",
            );
        }
    }
    settled
}

/// One settle request, tried again on transient failures until the leases
/// are surely gone.
async fn send<F, Fut>(give_up_after: Duration, mut call: F) -> Option<Vec<SettleResult>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<SettleResult>, Error>>,
{
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut backoff = Backoff::new();
    loop {
        match call().await {
            Ok(results) => return Some(results),
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                let wait = backoff.fail(e.retry_after());
                tracing::debug!(error = %e, "settling failed; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "settling failed; the leases will expire and the events be delivered again");
                return None;
            }
        }
    }
}

fn count(
    results: &Option<Vec<SettleResult>>,
    sent: usize,
    done: &mut u64,
    lost: &mut u64,
    what: &str,
) {
    let Some(results) = results else {
        *lost += sent as u64;
        return;
    };
    for r in results {
        if r.status == SettleStatus::Ok {
            *done += 1;
        } else {
            *lost += 1;
            tracing::warn!(receipt = %r.receipt, status = ?r.status, "{what} came too late: the lease was gone, and the event is delivered again");
        }
    }
}
