//! Per-client rate limit (`ENABLE_RATE_LIMIT`): `RATE_LIMIT_MAX` requests per
//! `RATE_LIMIT_WINDOW_MS` for each client address, with governor's GCRA
//! (a burst of the whole allowance, refilled evenly over the window).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::client_addr::client_addr;
use super::ApiError;

/// Limits per client address.
pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;

/// A limiter allowing `max` requests per `window` to each client.
pub fn limiter(max: NonZeroU32, window: Duration) -> Limiter {
    let period = (window / max.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .expect("a period of at least 1 ns")
        .allow_burst(max);
    RateLimiter::keyed(quota)
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
