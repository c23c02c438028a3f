//! The schemas that many operations share, each a component of its own and
//! referenced wherever it appears (paths, queries, bodies, answers): a
//! generator makes one type of each, where an inline copy per use gave a
//! client twenty queue-name types, one per operation.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use event_broker_core::rules;

/// A queue's name: 1 to 128 of `A-Z`, `a-z`, `0-9`, `_`, `.` and `-`, as
/// `check_queue_name` takes it.
pub struct QueueName;

impl PartialSchema for QueueName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A queue's name"))
            .pattern(Some(r"^[A-Za-z0-9_.-]{1,128}$"))
            .min_length(Some(1))
            .max_length(Some(128))
            .into()
    }
}

impl ToSchema for QueueName {}

/// An event's id, unique across the broker and increasing in the order the
/// events were stored.
///
/// `format: int64` is the format every generator knows: the OpenAPI
/// specification's own, which each maps to its 64-bit integer (`i64`,
/// `int64`, `long`, `int`). `uint64` came later, in the format registry,
/// and a generator that does not know it falls back to its default integer
/// type, 32 bits wide in some. The bounds are the server's: API.md promises
/// unsigned 64-bit ids, and the server reads `{id}` and `after` up to
/// 2^64 - 1, so a schema stopping at int64's maximum would call requests
/// invalid that the server takes (schemathesis sends `after=2^63` and gets
/// 200). A generator that reads the bounds as well picks an unsigned type
/// (progenitor: `u64`); one that reads the format alone, a signed one, which
/// holds every id there will be: ids count up by one per event from 0, and
/// 2^63 of them take 292,000 years at a million a second.
pub struct EventId;

impl PartialSchema for EventId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(u64::MAX as usize))
            .description(Some(
                "An event's id: unique across the broker, increasing in the order events were stored",
            ))
            .into()
    }
}

impl ToSchema for EventId {}

/// The state of an event, as browsing shows it and filters by.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EventState {
    /// Visible, waiting for a lease or a webhook task.
    Ready,
    /// Not visible yet: delayed at its enqueue, or waiting out a backoff.
    Delayed,
    /// Leased, or being pushed to a webhook.
    InFlight,
    /// In the dead-letter queue.
    Dead,
}

/// An event's ordering group.
pub struct GroupName;

impl PartialSchema for GroupName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An ordering group: its events are delivered in id order, the queue's group_concurrency at a time",
            ))
            .min_length(Some(rules::GROUP.min))
            .max_length(Some(rules::GROUP.max))
            .into()
    }
}

impl ToSchema for GroupName {}

/// An event's headers: string values by name, handed back with the event.
/// Written by hand rather than derived from a map, whose schema also says
/// `propertyNames: {type: string}`, which every JSON object's keys are
/// anyway and which OpenAPI 3.0 does not have.
pub struct Headers;

impl PartialSchema for Headers {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("String values by name, handed back with the event"))
            .additional_properties(Some(AdditionalProperties::RefOr(text.into())))
            .into()
    }
}

impl ToSchema for Headers {}
