//! Retry delays: exponential, capped, with jitter so that events that failed
//! together do not all come back in the same millisecond.

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure (`BASE_BACKOFF_MS`).
    pub base_ms: u64,
    /// Cap on any delay (`MAX_BACKOFF_MS`).
    pub max_ms: u64,
    /// Growth per failure (`BACKOFF_MULTIPLIER`).
    pub multiplier: f64,
    /// Seed of the jitter; fixed in tests, random per process otherwise.
    pub seed: u64,
}

/// Share of a delay that jitter may take away: delays fall in
/// `[(1 - JITTER) * d, d]`, so the cap is never exceeded.
pub const JITTER: f64 = 0.2;

impl Backoff {
    /// The delay before failure number `failures` (1 = the first) is retried,
    /// without jitter: `min(max, base * multiplier^(failures - 1))`.
    pub fn nominal_ms(&self, failures: u32) -> u64 {
        let exponent = failures.saturating_sub(1).min(1024) as i32;
        let delay = self.base_ms as f64 * self.multiplier.powi(exponent);
        if delay.is_finite() && delay < self.max_ms as f64 {
            delay as u64
        } else {
            self.max_ms
        }
    }

    /// The delay with jitter; the same event and failure always get the same one.
    pub fn delay_ms(&self, id: u64, failures: u32) -> u64 {
        let nominal = self.nominal_ms(failures);
        let unit = (mix(self.seed ^ id.rotate_left(17) ^ u64::from(failures)) >> 11) as f64
            / (1u64 << 53) as f64;
        nominal - (nominal as f64 * JITTER * unit) as u64
    }
}

/// splitmix64's finaliser: spreads any input over all 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Backoff {
        Backoff {
            base_ms: 1_000,
            max_ms: 60_000,
            multiplier: 2.0,
            seed: 42,
        }
    }

    #[test]
    fn nominal_schedule_doubles_from_base_up_to_the_cap() {
        let b = defaults();
        let schedule: Vec<u64> = (1..=9).map(|n| b.nominal_ms(n)).collect();
        assert_eq!(
            schedule,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(b.nominal_ms(u32::MAX), 60_000);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let b = defaults();
        for failures in 1..=12 {
            let nominal = b.nominal_ms(failures);
            let low = nominal - (nominal as f64 * JITTER) as u64;
            let delays: Vec<u64> = (0..1_000).map(|id| b.delay_ms(id, failures)).collect();
            assert!(delays.iter().all(|&d| (low..=nominal).contains(&d)));
            let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
            assert!(
                distinct.len() > 100,
                "jitter barely varies: {}",
                distinct.len()
            );
        }
    }

    #[test]
    fn jitter_is_deterministic_per_event_and_failure() {
        let b = defaults();
        assert_eq!(b.delay_ms(9, 3), b.delay_ms(9, 3));
        let other = Backoff { seed: 43, ..b };
        let differs = (0..100).any(|id| b.delay_ms(id, 3) != other.delay_ms(id, 3));
        assert!(differs);
    }

    #[test]
    fn fractional_multiplier_and_zero_base_work() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
            multiplier: 1.5,
            seed: 0,
        };
        assert_eq!(b.nominal_ms(3), 225);
        let zero = Backoff { base_ms: 0, ..b };
        assert_eq!(zero.delay_ms(1, 5), 0);
    }
}
