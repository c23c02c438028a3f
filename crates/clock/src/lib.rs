//! The one place the program reads the time. The broker takes a [`Clock`] so
//! tests drive time by hand; monotonic time serves leases and deadlines, wall
//! time only timestamps that are stored or shown.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64;
}

/// Monotonic time now, for code below the broker that measures durations.
pub fn monotonic_now() -> Instant {
    Instant::now()
}

/// Wall-clock time in nanoseconds since the Unix epoch, for timestamps that
/// another process on the same machine compares with its own reading.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The operating system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_unix_ms: u64,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at `unix_ms` wall time.
    pub fn new(unix_ms: u64) -> Self {
        ManualClock {
            start: Instant::now(),
            start_unix_ms: unix_ms,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().expect("clock lock")
    }
    fn unix_ms(&self) -> u64 {
        self.start_unix_ms + self.elapsed.lock().expect("clock lock").as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(1_000);
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now() - t0, Duration::from_millis(250));
        assert_eq!(clock.unix_ms(), 1_250);
    }
}
