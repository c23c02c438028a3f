//! The parameters of the routes: the path's queue and id, and the queries
//! of a browse and a dead-letter listing.

#![allow(dead_code)] // The parameter types are read by the derive, never built.

use utoipa::{IntoParams, ToSchema};

/// The `{queue}` of a route's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// The queue's name.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,128}$", min_length = 1, max_length = 128)]
    queue: String,
}

/// The query of a dead-letter listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// Events per page; default 100.
    #[param(minimum = 1, maximum = 1000, required = false)]
    limit: u32,
    /// Only ids above this one: the `next` of the previous page.
    #[param(
        format = "uint64",
        minimum = 0,
        maximum = 18446744073709551615usize,
        required = false
    )]
    after: u64,
}

/// The `{id}` of an event's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventIdPath {
    /// The event's id.
    #[param(format = "uint64", minimum = 0, maximum = 18446744073709551615usize)]
    id: u64,
}

/// The state of an event, as browsing shows it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EventStateName {
    Ready,
    Delayed,
    InFlight,
    Dead,
}

/// The query of a browse.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseQuery {
    /// Only events in this state; every state when left out.
    #[param(required = false, inline)]
    state: EventStateName,
    /// Events per page; default 100.
    #[param(minimum = 1, maximum = 1000, required = false)]
    limit: u32,
    /// Only ids above this one: the `next` of the previous page.
    #[param(
        format = "uint64",
        minimum = 0,
        maximum = 18446744073709551615usize,
        required = false
    )]
    after: u64,
    /// Whether each event carries its payload; default true.
    #[param(required = false)]
    payload: bool,
}
