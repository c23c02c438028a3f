//! Per-client rate limit (`ENABLE_RATE_LIMIT`): `RATE_LIMIT_MAX` requests per
//! `RATE_LIMIT_WINDOW_MS` for each client address, with governor's GCRA
//! (a burst of the whole allowance, refilled evenly over the window).
//!
//! The limiter keeps a state per client address it has seen. A client whose
//! allowance has refilled is no different from one never seen, so
//! [`forget_idle_clients`] drops those states every window (at least 1 s and
//! at most 60 s apart): memory holds the clients of the last two windows or
//! so, not every address that ever sent a request.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::RateLimitingMiddleware;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use super::client_addr::client_addr;
use super::ApiError;

/// Limits per client address.
pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;

/// A limiter allowing `max` requests per `window` to each client.
pub fn limiter(max: NonZeroU32, window: Duration) -> Limiter {
    RateLimiter::keyed(quota(max, window))
}

fn quota(max: NonZeroU32, window: Duration) -> Quota {
    let period = (window / max.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("a period of at least 1 ns")
        .allow_burst(max)
}

/// How often idle clients are forgotten for a limit over `window`: often
/// enough that memory follows the clients of about one window, seldom
/// enough that a sweep over every client is a small cost.
pub fn sweep_interval(window: Duration) -> Duration {
    window.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Drops the state of every client whose allowance has refilled, and the
/// room it took; how many clients are left.
pub fn forget_idle<K, S, C, MW>(limiter: &RateLimiter<K, S, C, MW>) -> usize
where
    K: Hash,
    S: ShrinkableKeyedStateStore<K>,
    C: Clock,
    MW: RateLimitingMiddleware<C::Instant>,
{
    limiter.retain_recent();
    // A map that once held many clients keeps their room unless asked.
    limiter.shrink_to_fit();
    limiter.len()
}

/// Forgets idle clients every `every` until `stop`.
pub async fn forget_idle_clients<K, S, C, MW>(
    limiter: Arc<RateLimiter<K, S, C, MW>>,
    every: Duration,
    stop: CancellationToken,
) where
    K: Hash,
    S: ShrinkableKeyedStateStore<K>,
    C: Clock,
    MW: RateLimitingMiddleware<C::Instant>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                forget_idle(&limiter);
            }
        }
    }
}

/// Answers 429 with `Retry-After` to a client past its allowance; health
/// checks are never limited.
pub async fn limit(
    State(limiter): State<Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.uri().path().starts_with("/api/health") {
        return Ok(next.run(req).await);
    }
    // Without a connection address every request is one client.
    let client = client_addr(&req).map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    match limiter.check_key(&client) {
        Ok(()) => Ok(next.run(req).await),
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(ApiError::RateLimited {
                retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;
    use governor::middleware::NoOpMiddleware;
    use governor::nanos::Nanos;
    use governor::state::keyed::DefaultKeyedStateStore;

    use super::*;

    type TestLimiter = RateLimiter<
        IpAddr,
        DefaultKeyedStateStore<IpAddr>,
        FakeRelativeClock,
        NoOpMiddleware<Nanos>,
    >;

    const WINDOW: Duration = Duration::from_secs(60);

    /// 10 requests a minute: one comes back every 6 s.
    fn on_fake_clock() -> (Arc<TestLimiter>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let max = NonZeroU32::new(10).unwrap();
        let state = DefaultKeyedStateStore::default();
        let limiter = RateLimiter::new(quota(max, WINDOW), state, clock.clone());
        (Arc::new(limiter), clock)
    }

    fn client(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn clients_whose_allowance_refilled_are_forgotten_and_limited_ones_kept() {
        let (limiter, clock) = on_fake_clock();
        for n in 0..10_000 {
            limiter.check_key(&client(n)).unwrap();
        }
        let busy = client(u32::MAX);
        while limiter.check_key(&busy).is_ok() {}
        assert_eq!(limiter.len(), 10_001);

        // One request's worth refills in 6 s: twice that, and the clients
        // of one request are as good as new; the busy one has 2 of its 10.
        clock.advance(Duration::from_secs(12) + Duration::from_millis(1));
        assert_eq!(forget_idle(&limiter), 1);
        assert!(limiter.check_key(&busy).is_ok());
        assert!(limiter.check_key(&busy).is_ok());
        assert!(
            limiter.check_key(&busy).is_err(),
            "forgetting forgives no one"
        );

        clock.advance(WINDOW + Duration::from_secs(12));
        assert_eq!(forget_idle(&limiter), 0);
        assert!(limiter.check_key(&busy).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_task_forgets_idle_clients_every_interval_until_stopped() {
        let (limiter, clock) = on_fake_clock();
        for n in 0..10_000 {
            limiter.check_key(&client(n)).unwrap();
        }
        let every = sweep_interval(WINDOW);
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(forget_idle_clients(limiter.clone(), every, stop.clone()));

        clock.advance(WINDOW);
        for n in 0..3 {
            limiter.check_key(&client(n)).unwrap();
        }
        assert_eq!(
            limiter.len(),
            10_000,
            "nothing is forgotten before the first sweep"
        );
        // Time is paused: the runtime moves it to the sweep, then to here.
        tokio::time::sleep(every + Duration::from_millis(1)).await;
        assert_eq!(limiter.len(), 3, "the clients of the last window only");

        stop.cancel();
        sweeper.await.unwrap();
    }
}
