//! Holding back log lines that repeat: a failing webhook or a queue whose
//! events all die would otherwise write a line per event, thousands a
//! second. At most one line a second gets through per throttle (one per
//! queue, as its users keep them); the next line that does says how many
//! were held back. Time comes from the caller's clock, so tests drive it.
//! The metrics count every event, held back or not.

use std::time::{Duration, Instant};

/// The least time between two lines let through.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// When the last line got through, and how many were held back since.
#[derive(Debug, Default, Clone, Copy)]
pub struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(n)` when a line may be written at `now`, `n` being the lines
    /// held back since the last one; `None` when this one is held back.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < INTERVAL)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_gets_through_and_says_how_many_were_held_back() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = Throttle::default();
        assert_eq!(throttle.admit(at(0)), Some(0));
        assert_eq!(throttle.admit(at(1)), None);
        assert_eq!(throttle.admit(at(999)), None);
        assert_eq!(throttle.admit(at(1_000)), Some(2));
        assert_eq!(throttle.admit(at(1_500)), None);
        assert_eq!(throttle.admit(at(60_000)), Some(1));
        assert_eq!(throttle.admit(at(61_000)), Some(0));
    }
}
