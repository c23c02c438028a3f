//! One load worker: a connection, the latency of its requests, and the rules
//! every workload shares for an answer: 2xx is timed, 429 is retried after a
//! short pause, anything else is a counted failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::client::{Conn, Target};
use super::tally::Tally;
use super::BenchError;
use crate::clock::monotonic_now;

/// Longest pause after a 429, whatever `Retry-After` says: the broker's
/// seconds are far coarser than a bench run, and a queue that is full for
/// a moment drains in milliseconds when consumers run.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Highest latency a histogram records, in microseconds (an hour); longer
/// ones count as this.
const MAX_MICROS: u64 = 3_600_000_000;

/// An empty latency histogram: microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .expect("1 µs to 1 h with 3 digits is a valid range")
}

/// Adds `d` to `h` in microseconds.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// The histograms of several workers as one.
pub fn merged(parts: impl IntoIterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut all = histogram();
    for part in parts {
        all.add(part)
            .expect("histograms made by histogram() share their bounds");
    }
    all
}

/// Waits for every task; the first failure ends the wait and, by dropping
/// the set, aborts the others, so a run stops as soon as one worker cannot go on.
pub async fn join_all<T: 'static>(
    mut tasks: JoinSet<Result<T, BenchError>>,
) -> Result<Vec<T>, BenchError> {
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(task) = tasks.join_next().await {
        done.push(task??);
    }
    Ok(done)
}

/// A connection with the latency of its successful requests.
pub struct Worker {
    conn: Conn,
    tally: Arc<Tally>,
    latency: Histogram<u64>,
    /// How long one request may keep being answered 429 before the run
    /// stops; zero when a full queue means the run cannot succeed.
    patience: Duration,
}

impl Worker {
    /// Connects a worker that counts into `tally`.
    pub async fn connect(
        target: &Target,
        tally: Arc<Tally>,
        patience: Duration,
    ) -> Result<Worker, BenchError> {
        Ok(Worker {
            conn: Conn::open(target).await?,
            tally,
            latency: histogram(),
            patience,
        })
    }

    /// The tally this worker counts into.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The latency of every request answered 2xx so far.
    pub fn into_latency(self) -> Histogram<u64> {
        self.latency
    }

    /// POSTs `body` to `path`, again after each 429. The body of a 2xx
    /// answer, or `None` when the request failed (counted and, for the first
    /// few, printed). Only the answered attempt is timed, from its own send.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Option<Bytes>, BenchError> {
        let mut throttled = Duration::ZERO;
        loop {
            let sent = monotonic_now();
            let answer = match self.conn.post(path, body.clone()).await {
                Ok(answer) => answer,
                Err(BenchError::Http(e)) => {
                    self.tally.error(|| format!("POST {path}: {e}"));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let took = monotonic_now() - sent;
            if answer.status.is_success() {
                record(&mut self.latency, took);
                self.tally.request();
                return Ok(Some(answer.body));
            }
            if answer.status.as_u16() != 429 {
                self.tally.error(|| {
                    format!(
                        "POST {path}: {} {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    )
                });
                return Ok(None);
            }
            self.tally.throttled();
            if throttled >= self.patience {
                return Err(BenchError::Throttled {
                    what: format!("POST {path}"),
                    waited: throttled,
                    body: String::from_utf8_lossy(&answer.body).into_owned(),
                });
            }
            let pause = answer.retry_after.unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF);
            tokio::time::sleep(pause).await;
            throttled += took + pause;
        }
    }
}
