//! The bodies of producing, browsing and leasing: events in and out,
//! receipts and their results.

#![allow(dead_code)] // The schema types are read by the derive, never built.

use serde_json::Value;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, Ref, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use super::{EventId, EventState, GroupName, Headers, QueueName};
use event_broker_core::Limits;

/// An event as browsing shows it, not leased by the browse.
#[derive(ToSchema)]
pub struct BrowsedEvent {
    id: EventId,
    state: EventState,
    /// Deliveries so far, the current lease included.
    attempt: u32,
    /// Higher is delivered first.
    #[schema(minimum = 0, maximum = 255)]
    priority: u8,
    /// Its ordering group; `null` when it has none.
    #[schema(required = true)]
    group: Option<GroupName>,
    #[schema(format = DateTime)]
    enqueued_at: String,
    /// When it is visible: its visible time when ready or delayed, the end
    /// of its lease in flight; `null` when dead.
    #[schema(format = DateTime, required = true)]
    visible_at: Option<String>,
    /// When it expires; `null` when it does not.
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    /// Why its last delivery failed, if it said.
    #[schema(required = true)]
    last_error: Option<String>,
    headers: Headers,
    /// The payload as it was sent; left out with `payload=false`.
    #[schema(required = false)]
    payload: Value,
}

/// A page of a browse.
#[derive(ToSchema)]
pub struct BrowsePage {
    events: Vec<BrowsedEvent>,
    /// The `after` of the next page; `null` when the listing is complete.
    #[schema(required = true)]
    next: Option<EventId>,
}

/// One event to enqueue.
#[derive(ToSchema)]
pub struct EventIn {
    /// Any JSON value, `null` included; stored and handed back byte for byte.
    /// At most MAX_PAYLOAD_BYTES of JSON text.
    payload: Value,
    /// Not delivered before now plus this many milliseconds; default 0.
    #[schema(minimum = 0, maximum = 2592000000u64)]
    delay_ms: Option<u64>,
    /// Within IDEMPOTENCY_WINDOW_MS another enqueue on the same queue with
    /// the same key stores nothing and answers the first event's id.
    #[schema(min_length = 1, max_length = 256)]
    idempotency_key: Option<String>,
    /// Handed back with the event.
    headers: Option<Headers>,
    /// Higher is delivered first; default 0.
    #[schema(minimum = 0, maximum = 255)]
    priority: Option<u8>,
    /// Expires this many milliseconds after it is enqueued; default the
    /// queue's `message_ttl_ms`, if it has one.
    #[schema(minimum = 1, maximum = 2592000000u64)]
    ttl_ms: Option<u64>,
    /// Its ordering group: the group's events are delivered one at a time
    /// (the queue's `group_concurrency`), in id order, and leases take
    /// turns across groups.
    group: Option<GroupName>,
}

/// The body of an enqueue: one event, or a batch of 1 to MAX_BATCH, stored
/// all or nothing.
pub struct EventsIn;

impl PartialSchema for EventsIn {
    fn schema() -> RefOr<Schema> {
        let batch = ArrayBuilder::new()
            .items(Ref::from_schema_name("EventIn"))
            .min_items(Some(1))
            .max_items(Some(Limits::default().max_batch))
            .description(Some("A batch: every event is stored, or none is"));
        OneOfBuilder::new()
            .item(Ref::from_schema_name("EventIn"))
            .item(batch)
            .into()
    }
}

impl ToSchema for EventsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("EventIn".into(), EventIn::schema()));
        EventIn::schemas(schemas);
    }
}

/// The answer to one enqueued event.
#[derive(ToSchema)]
pub struct Enqueued {
    id: EventId,
    /// True when the idempotency key named an earlier event: nothing was stored.
    duplicate: bool,
    /// When the event expires; only there when it does.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// The answer to a batch: the ids in the order of the events.
#[derive(ToSchema)]
pub struct EnqueuedBatch {
    ids: Vec<EventId>,
    #[schema(schema_with = expiries)]
    expires_at: Option<Vec<Option<String>>>,
}

/// The `expires_at` of a batch: a time or `null` per event, written by hand
/// so that the `date-time` format is on the items, where the times are.
fn expiries() -> ArrayBuilder {
    let time = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    ArrayBuilder::new().items(time).description(Some(
        "When each event expires, `null` for one that does not; only there when one of them does",
    ))
}

/// The answer to an enqueue: [`Enqueued`] for one event, [`EnqueuedBatch`] for a batch.
pub struct EnqueuedAny;

impl PartialSchema for EnqueuedAny {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("Enqueued"))
            .item(Ref::from_schema_name("EnqueuedBatch"))
            .into()
    }
}

impl ToSchema for EnqueuedAny {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Enqueued".into(), Enqueued::schema()));
        schemas.push(("EnqueuedBatch".into(), EnqueuedBatch::schema()));
    }
}

/// A lease request; every field is optional, and the body too.
#[derive(ToSchema)]
pub struct LeaseIn {
    /// The most events to lease, 1 to MAX_BATCH; default 1.
    #[schema(minimum = 1, maximum = 1000)]
    max: Option<u32>,
    /// The lease length, up to 12 hours; default VISIBILITY_TIMEOUT_MS.
    #[schema(minimum = 1, maximum = 43200000u64)]
    visibility_timeout_ms: Option<u64>,
    /// A long poll: wait up to this long for an event; default 0.
    #[schema(minimum = 0, maximum = 60000u64)]
    wait_ms: Option<u64>,
}

/// A leased event.
#[derive(ToSchema)]
pub struct LeasedEvent {
    id: EventId,
    queue: QueueName,
    /// The payload as it was sent.
    payload: Value,
    headers: Headers,
    /// Deliveries so far, this one included.
    #[schema(minimum = 1)]
    attempt: u32,
    /// Higher is delivered first.
    #[schema(minimum = 0, maximum = 255)]
    priority: u8,
    /// Its ordering group; `null` when it has none.
    #[schema(required = true)]
    group: Option<GroupName>,
    #[schema(format = DateTime)]
    enqueued_at: String,
    /// When it expires; `null` when it does not. A lease may outlast it.
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    /// Names this lease for ack, nack and extend.
    receipt: String,
    #[schema(format = DateTime)]
    lease_expires_at: String,
}

/// The answer to a lease.
#[derive(ToSchema)]
pub struct Leased {
    events: Vec<LeasedEvent>,
}

/// The receipts of an ack.
#[derive(ToSchema)]
pub struct ReceiptsIn {
    /// 1 to MAX_BATCH receipts, as leases answered them.
    #[schema(min_items = 1, max_items = 1000)]
    receipts: Vec<String>,
}

/// The receipts of a nack, and what happens next.
#[derive(ToSchema)]
pub struct NackIn {
    /// 1 to MAX_BATCH receipts, as leases answered them.
    #[schema(min_items = 1, max_items = 1000)]
    receipts: Vec<String>,
    /// Retry after this many milliseconds instead of the backoff.
    #[schema(minimum = 0, maximum = 2592000000u64)]
    delay_ms: Option<u64>,
    /// Kept as the event's last error.
    #[schema(max_length = 4096)]
    error: Option<String>,
}

/// The receipts of an extend, and the new lease length.
#[derive(ToSchema)]
pub struct ExtendIn {
    /// 1 to MAX_BATCH receipts, as leases answered them.
    #[schema(min_items = 1, max_items = 1000)]
    receipts: Vec<String>,
    /// The lease ends this long from now, up to 12 hours; default VISIBILITY_TIMEOUT_MS.
    #[schema(minimum = 1, maximum = 43200000u64)]
    visibility_timeout_ms: Option<u64>,
}

/// One receipt's outcome.
#[derive(ToSchema)]
pub struct ReceiptResult {
    receipt: String,
    status: ReceiptStatus,
}

/// What became of one receipt.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Done.
    Ok,
    /// The lease expired, was finished, or was replaced by a newer one.
    LeaseLost,
    /// No such event.
    NotFound,
}

/// The answer to an ack, nack or extend: one result per receipt, in the
/// order of the request.
// Not `Results`: see `QueueList`.
#[derive(ToSchema)]
pub struct SettleResults {
    results: Vec<ReceiptResult>,
}
