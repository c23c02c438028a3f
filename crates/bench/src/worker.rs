//! One load worker: a connection, the latency of its requests, and the rules
//! every workload shares for an answer: 2xx is timed, 429 is retried after a
//! short pause (until the run's deadline, or for its patience), anything else
//! is a counted failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::client::Conn;
use super::halt::Halt;
use super::tally::Tally;
use super::{BenchError, Setup};
use event_broker_clock::monotonic_now;

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

/// Waits for every task. A task that fails ends the run through `halt`, so
/// the others stop at their next step and the run still gets its summary
/// from what they measured.
pub async fn join_all<T: 'static>(
    mut tasks: JoinSet<Result<T, BenchError>>,
    halt: &Halt,
) -> Vec<T> {
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(task) = tasks.join_next().await {
        match task {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(e)) => halt.stop(e),
            Err(e) => halt.stop(BenchError::Task(e)),
        }
    }
    done
}

/// A connection with the latency of its successful requests.
pub struct Worker {
    conn: Conn,
    tally: Arc<Tally>,
    latency: Histogram<u64>,
    /// How long one request may keep being answered 429 before the run
    /// stops; zero when a full queue means the run cannot succeed.
    patience: Duration,
    /// When the run ends, for a run of a set duration: a request answered
    /// 429 is retried until then, however long that is.
    deadline: Option<Instant>,
    halt: Arc<Halt>,
}

impl Worker {
    /// Connects a worker that counts into `tally`.
    pub async fn connect(
        setup: &Setup,
        tally: Arc<Tally>,
        patience: Duration,
    ) -> Result<Worker, BenchError> {
        Ok(Worker {
            conn: Conn::open(&setup.target).await?,
            tally,
            latency: histogram(),
            patience,
            deadline: None,
            halt: setup.halt.clone(),
        })
    }

    /// Retries throttled requests until `deadline` rather than for the
    /// worker's patience, and gives them up then.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// Whether the run is ending early.
    pub fn halted(&self) -> bool {
        self.halt.is_stopped()
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
    /// few, printed) or was given up: at the deadline, past the patience
    /// (which ends the run), or when the run ends. Only the answered attempt
    /// is timed, from its own send.
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
            let pause = answer.retry_after.unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF);
            match self.deadline {
                Some(at) if monotonic_now() + pause >= at => return Ok(None),
                Some(_) => {}
                None if throttled >= self.patience => {
                    self.halt.stop(BenchError::Throttled {
                        what: format!("POST {path}"),
                        waited: throttled,
                        body: String::from_utf8_lossy(&answer.body).into_owned(),
                    });
                    return Ok(None);
                }
                None => {}
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.halt.stopped() => return Ok(None),
            }
            throttled += took + pause;
        }
    }
}
