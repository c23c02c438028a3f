//! The bodies of queues, their settings, dead letters and subscriptions.

#![allow(dead_code)] // The schema types are read by the derive, never built.

use serde_json::Value;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{EventId, GroupName, Headers, QueueName};

/// A queue: events in each state now, totals since the start, and its
/// settings in force.
#[derive(ToSchema)]
pub struct QueueOut {
    name: QueueName,
    ready: u64,
    delayed: u64,
    in_flight: u64,
    dead: u64,
    enqueued_total: u64,
    acked_total: u64,
    dead_lettered_total: u64,
    /// Whether its leases are held back; the same as `settings.paused`.
    paused: bool,
    settings: QueueSettings,
}

/// A queue's settings in force: its own, or the broker-wide setting of the
/// same name where it has none.
#[derive(ToSchema)]
pub struct QueueSettings {
    /// Lease length when the consumer names none.
    #[schema(minimum = 1, maximum = 43200000u64)]
    visibility_timeout_ms: u64,
    /// Failures after the first before an event is dead-lettered.
    #[schema(minimum = 0, maximum = 1000)]
    max_retries: u32,
    /// Retry delay after the first failure.
    #[schema(minimum = 0, maximum = 86400000u64)]
    base_backoff_ms: u64,
    /// Cap on any retry delay.
    #[schema(minimum = 0, maximum = 86400000u64)]
    max_backoff_ms: u64,
    /// Growth of the delay per failure.
    #[schema(minimum = 1, maximum = 100)]
    backoff_multiplier: f64,
    /// Events not acked and not dead that the queue holds at most.
    #[schema(minimum = 1, maximum = 100000000u64)]
    max_size: u64,
    /// The TTL of the queue's events enqueued without one; `null` for none.
    #[schema(required = true, minimum = 1, maximum = 2592000000u64)]
    message_ttl_ms: Option<u64>,
    /// Whether expired events go to the DLQ rather than away.
    dead_letter_expired: bool,
    /// Whether leases answer no events.
    paused: bool,
    /// Events of one group in flight at once.
    #[schema(minimum = 1, maximum = 10000)]
    group_concurrency: u32,
    /// Events of the queue leased or being pushed at once; `null`: no limit.
    #[schema(required = true, minimum = 1, maximum = 1000000)]
    max_in_flight: Option<u32>,
    /// Deliveries per second; `null`: no limit.
    #[schema(required = true, minimum = 1, maximum = 1000000)]
    rate_limit_per_s: Option<u32>,
    /// Deliveries at once after a quiet spell: the queue's own, else its
    /// rate; `null` without a rate.
    #[schema(required = true, minimum = 1, maximum = 1000000)]
    rate_limit_burst: Option<u32>,
    /// Deliveries per second of each group; `null`: no limit.
    #[schema(required = true, minimum = 1, maximum = 1000000)]
    group_rate_limit_per_s: Option<u32>,
}

/// A queue's own settings. In a `PUT`, a field left out (or `null`) takes
/// the broker-wide setting, or `false`, or no limit; in a `PATCH` it stays
/// as it is. `null` names no TTL for `message_ttl_ms`, no limit for the
/// flow limits, and one for `group_concurrency`, in both.
#[derive(ToSchema)]
pub struct SettingsIn {
    /// Lease length when the consumer names none, up to 12 hours; the
    /// broker-wide setting is VISIBILITY_TIMEOUT_MS.
    #[schema(minimum = 1, maximum = 43200000u64)]
    visibility_timeout_ms: Option<u64>,
    /// Failures after the first before an event is dead-lettered; broker-wide MAX_RETRIES.
    #[schema(minimum = 0, maximum = 1000)]
    max_retries: Option<u32>,
    /// Retry delay after the first failure, up to a day; broker-wide BASE_BACKOFF_MS.
    #[schema(minimum = 0, maximum = 86400000u64)]
    base_backoff_ms: Option<u64>,
    /// Cap on any retry delay, up to a day; broker-wide MAX_BACKOFF_MS.
    /// Below the base, every retry waits this long.
    #[schema(minimum = 0, maximum = 86400000u64)]
    max_backoff_ms: Option<u64>,
    /// Growth of the delay per failure; broker-wide BACKOFF_MULTIPLIER.
    #[schema(minimum = 1, maximum = 100)]
    backoff_multiplier: Option<f64>,
    /// Events not acked and not dead that the queue holds at most;
    /// broker-wide QUEUE_MAX_SIZE.
    #[schema(minimum = 1, maximum = 100000000u64)]
    max_size: Option<u64>,
    /// The TTL of the queue's events enqueued without one, 1 ms to 30
    /// days, fixed at their enqueue; `null` (the default) for none.
    #[schema(minimum = 1, maximum = 2592000000u64)]
    message_ttl_ms: Option<u64>,
    /// Whether expired events go to the DLQ rather than away; default false.
    dead_letter_expired: Option<bool>,
    /// Leases answer no events while true; default false.
    paused: Option<bool>,
    /// Events of one group in flight at once; default 1, which keeps each
    /// group in id order. Above 1 the order within a group is not promised.
    #[schema(minimum = 1, maximum = 10000)]
    group_concurrency: Option<u32>,
    /// Events of the queue leased or being pushed to a webhook at once.
    #[schema(minimum = 1, maximum = 1000000)]
    max_in_flight: Option<u32>,
    /// Deliveries (leases and webhook pushes) per second, as a token bucket.
    #[schema(minimum = 1, maximum = 1000000)]
    rate_limit_per_s: Option<u32>,
    /// The bucket's size: deliveries at once after a quiet spell; default
    /// the rate.
    #[schema(minimum = 1, maximum = 1000000)]
    rate_limit_burst: Option<u32>,
    /// Deliveries per second of each group, with a bucket of one second's worth.
    #[schema(minimum = 1, maximum = 1000000)]
    group_rate_limit_per_s: Option<u32>,
}

/// Every queue.
// Not `Queues`: for a schema holding a property of its own name,
// openapi-python-client writes code that gives one variable both types,
// which `mypy --strict` refuses. The same holds for the answers below.
#[derive(ToSchema)]
pub struct QueueList {
    queues: Vec<QueueOut>,
}

/// A dead event.
#[derive(ToSchema)]
pub struct DeadEvent {
    id: EventId,
    /// The payload as it was sent.
    payload: Value,
    headers: Headers,
    /// Failed deliveries.
    attempts: u32,
    /// Higher is delivered first, once redriven.
    #[schema(minimum = 0, maximum = 255)]
    priority: u8,
    /// Its ordering group; `null` when it has none.
    #[schema(required = true)]
    group: Option<GroupName>,
    last_error: Option<String>,
    #[schema(format = DateTime)]
    dead_at: String,
}

/// A page of a dead-letter queue.
#[derive(ToSchema)]
pub struct DlqPage {
    events: Vec<DeadEvent>,
    /// The `after` of the next page; `null` when the listing is complete.
    #[schema(required = true)]
    next: Option<EventId>,
}

/// Which dead events a redrive or purge takes: [`IdsSome`] or [`IdsAll`].
/// A missing body, `{"all": false}` without ids, and ids with
/// `"all": true` are refused, and are neither.
pub struct IdsIn;

impl PartialSchema for IdsIn {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "Which dead events: `{\"ids\": [...]}` for those, `{}` or `{\"all\": true}` for every one",
            ))
            .item(Ref::from_schema_name("IdsSome"))
            .item(Ref::from_schema_name("IdsAll"))
            .into()
    }
}

impl ToSchema for IdsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("IdsSome".into(), IdsSome::schema()));
        schemas.push(("IdsAll".into(), IdsAll::schema()));
    }
}

/// The flag `all` with the one value a variant of [`IdsIn`] allows: an
/// `enum` of one value, not a `const`, which OpenAPI 3.0 does not have and
/// from which openapi-python-client 0.29 (given no type beside it) writes
/// Python that does not parse for `false`. It reads a boolean `enum` as any
/// boolean, so both variants' classes take either value; the server
/// refuses the wrong one.
fn all_flag(value: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([value]))
}

/// `{"ids": [...]}`: those dead events. Named, as are [`IdsAll`], so that
/// generated clients do not number them (`IdsInType0`, `IdsInType1`).
pub struct IdsSome;

impl PartialSchema for IdsSome {
    fn schema() -> RefOr<Schema> {
        let ids = ArrayBuilder::new()
            .items(Ref::from_schema_name("EventId"))
            .description(Some(
                "The dead events, by id; an id not dead in the queue is passed over",
            ));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Those dead events"))
            .property("ids", ids)
            .required("ids")
            .property(
                "all",
                all_flag(false).description(Some("May be sent as false")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for IdsSome {}

/// `{}` or `{"all": true}`: every dead event of the queue.
pub struct IdsAll;

impl PartialSchema for IdsAll {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every dead event of the queue: `{}` or `{\"all\": true}`",
            ))
            .property("all", all_flag(true))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for IdsAll {}

/// The answer to a redrive.
// Not `Redriven`, nor `PurgeOut` `Purged`: see `QueueList`.
#[derive(ToSchema)]
pub struct RedriveOut {
    /// Dead events put back to ready.
    redriven: u64,
}

/// The answer to a purge.
#[derive(ToSchema)]
pub struct PurgeOut {
    /// Dead events deleted.
    purged: u64,
}

/// A webhook subscription.
#[derive(ToSchema)]
pub struct SubscriptionIn {
    /// Where each event is POSTed: `http://` or `https://`, a host name or
    /// an IPv4 address, an optional port, path and query; no user name or
    /// password. The pattern is `WEBHOOK_URL_PATTERN` of the broker. Unless
    /// the broker runs with `WEBHOOK_ALLOW_PRIVATE=true`, an address must be
    /// public (not loopback, private, link-local, multicast and the like),
    /// and a host name's addresses are checked when a delivery connects.
    #[schema(
        format = "uri",
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|(?:[A-Za-z0-9](?:-?[A-Za-z0-9])*\.)*[A-Za-z](?:-?[A-Za-z0-9])*)(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    url: String,
    /// Calls at once, 1 to 1024; default WORKER_COUNT.
    #[schema(minimum = 1, maximum = 1024)]
    concurrency: Option<u32>,
    /// How long one call may take; default 10000.
    #[schema(minimum = 1, maximum = 300000u64)]
    timeout_ms: Option<u64>,
    /// Standard Webhooks secret: `whsec_` and the canonical base64 of 24 to
    /// 64 random bytes (`WEBHOOK_SECRET_PATTERN` of the broker).
    #[schema(
        pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?)$"
    )]
    secret: Option<String>,
}

/// A webhook subscription as shown; the secret is never shown.
#[derive(ToSchema)]
pub struct SubscriptionOut {
    queue: QueueName,
    url: String,
    concurrency: u32,
    timeout_ms: u64,
    /// Whether requests carry Standard Webhooks signatures.
    signed: bool,
}
