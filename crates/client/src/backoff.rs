//! Waits between tries when the broker is down or busy: doubling from
//! 100 ms to 5 s, each drawn from its upper half so that many consumers
//! restarted together do not come back in step, and never shorter than a
//! `Retry-After` the broker gave.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);

/// The wait before the next try.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new() -> Self {
        // Any per-process value will do to keep consumers apart.
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        Backoff {
            next: FIRST,
            seed: seed | 1,
        }
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The wait after a failure; at least `at_least`, at most `LONGEST`
    /// unless `at_least` is longer.
    pub fn fail(&mut self, at_least: Option<Duration>) -> Duration {
        // xorshift: jitter needs spread, not quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.next / 2;
        let jitter = half.mul_f64((self.seed % 1000) as f64 / 1000.0);
        let wait = half + jitter;
        self.next = (self.next * 2).min(LONGEST);
        wait.max(at_least.unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_seconds_and_keep_a_retry_after() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| b.fail(None)).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= FIRST);
        assert!(waits.iter().all(|w| *w <= LONGEST));
        assert!(waits[9] >= LONGEST / 2);
        assert_eq!(b.fail(Some(Duration::from_secs(7))), Duration::from_secs(7));
        b.reset();
        assert!(b.fail(None) <= FIRST);
    }
}
