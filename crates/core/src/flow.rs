//! Flow control of deliveries: a queue's `rate_limit_per_s` (with
//! `rate_limit_burst`) and `group_rate_limit_per_s`, as governor's GCRA
//! token buckets on the broker's clock. `max_in_flight` and
//! `group_concurrency` are counts the lease checks against the state.
//!
//! The buckets live in memory only, like leases: a restart, a deletion of
//! the queue or a change of its rates starts them full.
//!
//! A group's bucket is kept by the group's name, not with the group, so a
//! group that empties between its events keeps its bucket rather than
//! finding a full one each time. The buckets are a B-tree, which grows node
//! by node as every map of the state does, where governor's hash map would
//! rebuild itself whole with the state locked. The reaper drops those that
//! are full again, which are as good as new, at most once a second: a
//! sweep looks at every bucket, and one of a second's worth is full a
//! second after its last delivery.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Mutex;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use super::record::Flow;
use event_broker_clock::Clock;

/// The broker's clock, as governor reads it.
#[derive(Clone)]
pub(crate) struct LimiterClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        self.0.now()
    }
}

/// How often the group buckets are swept at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type Direct = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Instant>>;
type Keyed = RateLimiter<Arc<str>, GroupBuckets, LimiterClock, NoOpMiddleware<Instant>>;

/// The buckets of a queue's groups, by group name.
#[derive(Default)]
pub(crate) struct GroupBuckets(Mutex<BTreeMap<Arc<str>, InMemoryState>>);

impl StateStore for GroupBuckets {
    type Key = Arc<str>;

    fn measure_and_replace<T, F, E>(&self, key: &Arc<str>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut buckets = self.0.lock().expect("bucket lock");
        if let Some(bucket) = buckets.get(key) {
            return bucket.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let bucket = buckets.entry(key.clone()).or_default();
        bucket.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<Arc<str>> for GroupBuckets {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut buckets = self.0.lock().expect("bucket lock");
        // A bucket's state is when it is next empty; read by writing it
        // back as it is, the one way governor gives to read it.
        buckets.retain(|_, bucket| {
            let next = bucket
                .measure_and_replace(&NotKeyed::NonKey, |next| next.map(|n| (n, n)).ok_or(()));
            next.is_ok_and(|n| n > drop_below)
        });
    }

    fn len(&self) -> usize {
        self.0.lock().expect("bucket lock").len()
    }

    fn is_empty(&self) -> bool {
        self.0.lock().expect("bucket lock").is_empty()
    }
}

/// A queue's rate limiters.
pub(crate) struct Limiters {
    /// The rates they were made for.
    rates: Rates,
    queue: Option<Direct>,
    groups: Option<Keyed>,
    /// When the group buckets were last swept.
    swept: Option<Instant>,
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
                .map(|r| RateLimiter::new(quota(r, None), GroupBuckets::default(), clock)),
            swept: None,
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

    /// Drops the group buckets that are full again, unless they were
    /// swept less than a second before `now`.
    pub fn forget_full(&mut self, now: Instant) {
        let Some(buckets) = &self.groups else {
            return;
        };
        if self.swept.is_some_and(|at| now < at + SWEEP_EVERY) {
            return;
        }
        self.swept = Some(now);
        buckets.retain_recent();
    }

    /// Group buckets kept.
    #[cfg(test)]
    fn group_buckets(&self) -> usize {
        self.groups.as_ref().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_broker_clock::ManualClock;

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

    #[test]
    fn a_group_keeps_its_bucket_until_it_is_full_again() {
        let clock = Arc::new(ManualClock::new(0));
        let flow = Flow {
            group_rate_limit_per_s: Some(2),
            ..Flow::default()
        };
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let mut limiters = Limiters::new(Rates::of(&flow).unwrap(), &dyn_clock);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(limiters.take_group(&a).is_ok() && limiters.take_group(&a).is_ok());
        assert!(
            limiters.take_group(&a).is_err(),
            "a's burst of two is spent"
        );
        assert!(limiters.take_group(&b).is_ok(), "b has a bucket of its own");
        limiters.forget_full(clock.now());
        assert_eq!(limiters.group_buckets(), 2, "neither is full yet");
        clock.advance(Duration::from_millis(500));
        assert!(limiters.take_group(&a).is_ok(), "half a second: one more");
        assert!(limiters.take_group(&a).is_err());
        clock.advance(Duration::from_secs(2));
        limiters.forget_full(clock.now());
        assert_eq!(limiters.group_buckets(), 0, "both full again: gone");
        assert!(limiters.take_group(&a).is_ok() && limiters.take_group(&a).is_ok());
        assert!(
            limiters.take_group(&a).is_err(),
            "a fresh bucket, as good as the old"
        );
    }
}
