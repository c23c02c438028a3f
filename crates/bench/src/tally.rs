//! Counters shared by the workers of one side of a run (producers or
//! consumers), read once a second for the progress line and at the end for
//! the summary.

use std::sync::atomic::{AtomicU64, Ordering};

/// Failed requests whose answer is printed; past these only the count grows,
/// so a broker refusing everything does not flood the terminal.
const SHOWN_ERRORS: u64 = 5;

/// What the workers of one side have done so far.
#[derive(Debug, Default)]
pub struct Tally {
    events: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    throttled: AtomicU64,
}

/// A reading of a [`Tally`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Events stored (producers) or acked (consumers).
    pub events: u64,
    /// Requests answered 2xx.
    pub requests: u64,
    /// Requests that failed: a non-2xx answer other than 429, a broken
    /// connection, or a 2xx answer that does not say what it should.
    pub errors: u64,
    /// 429 answers, each followed by a retry of the same request.
    pub throttled: u64,
}

impl Counts {
    /// These counts with the failures and throttles of `other` too: a run's
    /// failures are those of either side.
    pub fn with_failures_of(self, other: Counts) -> Counts {
        Counts {
            errors: self.errors + other.errors,
            throttled: self.throttled + other.throttled,
            ..self
        }
    }
}

impl Tally {
    /// Counts `n` events done.
    pub fn add_events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a request answered 2xx.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429 answer.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed request, printing `what` on stderr for the first few.
    pub fn error(&self, what: impl FnOnce() -> String) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < SHOWN_ERRORS {
            eprintln!("error: {}", what());
        }
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            events: self.events.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            events: self.events + other.events,
            requests: self.requests + other.requests,
            errors: self.errors + other.errors,
            throttled: self.throttled + other.throttled,
        }
    }
}
