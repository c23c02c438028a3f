//! The HTTP API of API.md: axum handlers that translate requests into broker
//! calls and broker errors into the error table ([`error`]). No queue rule
//! lives here.
//!
//! Bodies are decoded from the raw bytes with borrowed fields, so a payload
//! goes from the request to the log as the exact text the client sent.

mod admin;
mod auth;
mod body;
mod browse;
mod client_addr;
pub mod error;
mod events;
mod explain;
mod layers;
mod leases;
pub mod openapi;
mod ops;
mod path;
mod queues;
pub mod ratelimit;
mod settings;
mod subscriptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::BoxError;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::metrics::Metrics;
pub use client_addr::ClientAddrs;
pub use error::ApiError;
use event_broker_core::Broker;
pub use ops::recovering_router;

/// What every handler shares. Every request clones it, so it is one `Arc`
/// rather than a handful; changing it (tests set auth, CORS and limits
/// before serving) copies the parts if they are shared.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct AppParts {
    /// The broker.
    pub broker: Arc<Broker>,
    /// Cancelled when the server starts shutting down: long polls return early.
    pub shutdown: CancellationToken,
    /// When the process started, for `uptime_seconds`.
    pub started: Instant,
    /// The effective configuration shown by `/api/status` (no secrets).
    pub settings: Arc<Vec<(&'static str, String)>>,
    /// `BROKER_TOKEN`: when set, every route but health needs it (or the admin token).
    pub token: Option<Arc<str>>,
    /// `ADMIN_TOKEN`: when set, the admin routes need it; it opens every route.
    pub admin_token: Option<Arc<str>>,
    /// `ALLOWED_ORIGINS` for CORS; empty for none.
    pub origins: Arc<Vec<String>>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The per-client rate limit, when enabled.
    pub limiter: Option<Arc<ratelimit::Limiter>>,
}

/// The longest long poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// No request runs longer than this: the longest long poll and then some,
/// so only a stalled disk or a stuck handler ever meets it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The router of every route, without the outer layers (auth, limits,
/// logging) that `serve` adds; tests call it without a socket.
pub fn router(state: AppState) -> Router {
    let body_limit = state.broker.limits().max_request_bytes;
    let tokens = Arc::new(auth::Tokens {
        broker: state.token.clone(),
        admin: state.admin_token.clone(),
    });
    Router::new()
        .merge(events::router())
        .merge(leases::router())
        .merge(queues::router())
        .merge(browse::router())
        .merge(subscriptions::router())
        .merge(ops::router())
        .merge(admin_routes(&tokens))
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        // After every route: it applies to the routes already added.
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(method)
        })
        // One stack, outermost first, added with one `layer` call: each
        // `Router::layer` call boxes the routes again, and a request clones
        // every box on its way in (70 allocations per request with one call
        // per layer).
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(layers::REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(layers::REQUEST_ID))
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    layers::log_request,
                ))
                // Outside auth, so that browsers' preflight requests need no token.
                .option_layer(layers::cors(&state.origins))
                // Only the layers configured: each costs every request something.
                .option_layer(
                    state
                        .limiter
                        .clone()
                        .map(|limiter| middleware::from_fn_with_state(limiter, ratelimit::limit)),
                )
                .option_layer(
                    tokens.broker.is_some().then(|| {
                        middleware::from_fn_with_state(tokens.clone(), auth::require_token)
                    }),
                )
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::TimedOut(REQUEST_TIMEOUT)
                }))
                .timeout(REQUEST_TIMEOUT)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// The routes that change or drop what other clients rely on: checkpoints,
/// DLQ purge and redrive, cancelling an event, subscription changes, queue
/// settings and pausing (and queue deletion, when it comes, belongs here too). With
/// `ADMIN_TOKEN` set, only it opens them; the check runs on these routes
/// alone, not on every request.
fn admin_routes(tokens: &Arc<auth::Tokens>) -> Router<AppState> {
    let routes = Router::new()
        .merge(admin::router())
        .merge(queues::admin_router())
        .merge(browse::admin_router())
        .merge(settings::admin_router())
        .merge(subscriptions::admin_router());
    match tokens.admin {
        Some(_) => routes.route_layer(middleware::from_fn_with_state(
            tokens.clone(),
            auth::require_admin,
        )),
        None => routes,
    }
}
