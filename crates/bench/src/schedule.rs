//! An absolute timetable for open-loop load: event `n` is due at
//! `start + n / rate`, whatever happened to the events before it. A producer
//! that falls behind (a slow answer) sends what fell due at once instead of
//! stretching the schedule, so a stall shows as latency of the events that
//! waited, not as events never sent: no coordinated omission. This is what
//! `tokio::time::interval` with `MissedTickBehavior::Burst` does, with the
//! missed ticks counted rather than replayed one by one.

use std::time::{Duration, Instant};

use event_broker_clock::{monotonic_now, unix_nanos};

/// `rate` events per second from the moment of [`Schedule::new`].
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    start_unix_nanos: u64,
    rate: f64,
}

impl Schedule {
    /// A timetable starting now; `rate` must be positive.
    pub fn new(rate: f64) -> Schedule {
        Schedule {
            start: monotonic_now(),
            start_unix_nanos: unix_nanos(),
            rate,
        }
    }

    fn offset(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// When event `n` (from 0) is due.
    pub fn due_at(&self, n: u64) -> Instant {
        self.start + self.offset(n)
    }

    /// When event `n` is due, as wall-clock nanoseconds since the Unix epoch.
    pub fn due_unix_nanos(&self, n: u64) -> u64 {
        self.start_unix_nanos + self.offset(n).as_nanos() as u64
    }

    /// How many events are due by `now`: event 0 is due at the start.
    pub fn due_by(&self, now: Instant) -> u64 {
        ((now - self.start).as_secs_f64() * self.rate).floor() as u64 + 1
    }

    /// Sleeps until event `n` is due (at once if it already is).
    pub async fn wait_for(&self, n: u64) {
        tokio::time::sleep_until(self.due_at(n).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fall_due_at_fixed_times_from_the_start() {
        let s = Schedule::new(2000.0);
        assert_eq!(s.due_at(0), s.start);
        assert_eq!(s.due_at(2000) - s.start, Duration::from_secs(1));
        assert_eq!(s.due_unix_nanos(1) - s.start_unix_nanos, 500_000);
        assert_eq!(s.due_by(s.start), 1);
        assert_eq!(s.due_by(s.start + Duration::from_micros(1499)), 3);
        assert_eq!(s.due_by(s.start + Duration::from_millis(10)), 21);
    }
}
