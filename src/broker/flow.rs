//! Flow control of deliveries: a queue's `rate_limit_per_s` (with
//! `rate_limit_burst`) and `group_rate_limit_per_s`, as governor's GCRA
//! token buckets on the broker's clock. `max_in_flight` and
//! `group_concurrency` are counts the lease checks against the state.
//!
//! The buckets live in memory only, like leases: a restart, a deletion of
//! the queue or a change of its rates starts them full. A group's bucket is
//! kept by the group's name, so one that empties and fills again keeps it,
//! and the reaper drops the buckets that are full again, which are as good
//! as new.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::record::Flow;
use crate::clock::Clock;

/// The broker's clock, as governor reads it.
#[derive(Clone)]
pub(crate) struct LimiterClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        self.0.now()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Instant>>;
type Keyed =
    RateLimiter<Arc<str>, HashMapStateStore<Arc<str>>, LimiterClock, NoOpMiddleware<Instant>>;

/// A queue's rate limiters.
pub(crate) struct Limiters {
    /// The rates they were made for.
    rates: Rates,
    queue: Option<Direct>,
    groups: Option<Keyed>,
}

impl fmt::Debug for Limiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiters")
            .field("rates", &self.rates)
            .finish()
    }
}

/// The settings the buckets are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rates {
    per_s: Option<u32>,
    burst: Option<u32>,
    group_per_s: Option<u32>,
}

impl Rates {
    pub fn of(flow: &Flow) -> Option<Rates> {
        let rates = Rates {
            per_s: flow.rate_limit_per_s,
            burst: flow.rate_limit_burst,
            group_per_s: flow.group_rate_limit_per_s,
        };
        (rates.per_s.is_some() || rates.group_per_s.is_some()).then_some(rates)
    }
}

fn quota(per_s: u32, burst: Option<u32>) -> Quota {
    // The rules keep both above zero.
    let per_s = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = burst.and_then(NonZeroU32::new).unwrap_or(per_s);
    Quota::per_second(per_s).allow_burst(burst)
}

impl Limiters {
    pub fn new(rates: Rates, clock: &Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock.clone());
        Limiters {
            rates,
            queue: rates
                .per_s
                .map(|r| RateLimiter::direct_with_clock(quota(r, rates.burst), clock.clone())),
            groups: rates
                .group_per_s
                .map(|r| RateLimiter::hashmap_with_clock(quota(r, None), clock)),
        }
    }

    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// Takes a delivery from the queue's bucket; when it is empty, the
    /// moment it has one again.
    pub fn take(&self) -> Result<(), Instant> {
        match &self.queue {
            Some(bucket) => bucket.check().map_err(|no| no.earliest_possible()),
            None => Ok(()),
        }
    }

    /// [`Limiters::take`] from group `name`'s bucket.
    pub fn take_group(&self, name: &Arc<str>) -> Result<(), Instant> {
        match &self.groups {
            Some(buckets) => buckets.check_key(name).map_err(|no| no.earliest_possible()),
            None => Ok(()),
        }
    }

    /// Drops the group buckets that are full again.
    pub fn forget_full(&self) {
        if let Some(buckets) = &self.groups {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate_on_the_brokers_clock() {
        let clock = Arc::new(ManualClock::new(0));
        let flow = Flow {
            rate_limit_per_s: Some(10),
            rate_limit_burst: Some(3),
            ..Flow::default()
        };
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let limiters = Limiters::new(Rates::of(&flow).unwrap(), &dyn_clock);
        for _ in 0..3 {
            assert_eq!(limiters.take(), Ok(()));
        }
        let again = limiters.take().unwrap_err();
        assert_eq!(again, clock.now() + Duration::from_millis(100));
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiters.take(), Ok(()));
        assert!(limiters.take().is_err());
    }
}
