//! The parameters of the routes: the path's queue and id, and the queries
//! of a browse and a dead-letter listing. A queue's name, an event's id and
//! an event's state are references to the shared schemas of [`super::names`],
//! so that a generated client has one type of each.

#![allow(dead_code)] // The parameter types are read by the derive, never built.

use utoipa::IntoParams;

use super::{EventId, EventState, QueueName};

/// The `{queue}` of a route's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// The queue's name.
    queue: QueueName,
}

/// The query of a dead-letter listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// Events per page; default 100.
    #[param(minimum = 1, maximum = 1000, required = false)]
    limit: u32,
    /// Only ids above this one: the `next` of the previous page.
    #[param(required = false)]
    after: EventId,
}

/// The `{id}` of an event's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventIdPath {
    /// The event's id.
    id: EventId,
}

/// The query of a browse.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseQuery {
    /// Only events in this state; every state when left out.
    #[param(required = false)]
    state: EventState,
    /// Events per page; default 100.
    #[param(minimum = 1, maximum = 1000, required = false)]
    limit: u32,
    /// Only ids above this one: the `next` of the previous page.
    #[param(required = false)]
    after: EventId,
    /// Whether each event carries its payload; default true.
    #[param(required = false)]
    payload: bool,
}
