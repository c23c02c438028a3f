//! What every operation of the document shares, added by [`Contract`]
//! after utoipa has read the handlers' attributes: the security schemes,
//! closed request bodies, the admin routes' scheme, and the answers of the
//! layers and extractors in front of the handlers.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder};
use utoipa::Modify;

/// The request bodies, which the server reads strictly: an unknown field is
/// refused, so the schemas allow none.
const REQUEST_BODIES: [&str; 8] = [
    "EventIn",
    "LeaseIn",
    "ReceiptsIn",
    "NackIn",
    "ExtendIn",
    "SubscriptionIn",
    "SettingsIn",
    "CheckpointIn",
];

/// What every route shares: the bearer scheme, closed request bodies, and
/// the answers of the layers and extractors in front of the handlers.
pub(super) struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let admin = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "ADMIN_TOKEN when the broker has it set (BROKER_TOKEN is answered 403), else BROKER_TOKEN",
            ))
            .build();
        components.add_security_scheme("admin", SecurityScheme::Http(admin));
        for (name, response) in shared_responses() {
            let response = response.build();
            components
                .responses
                .insert(name.to_string(), response.into());
        }
        for name in REQUEST_BODIES {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.patch,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if ADMIN_OPERATIONS.contains(&operation.operation_id.as_deref().unwrap_or("")) {
                    operation.security = Some(vec![SecurityRequirement::new("admin", [""; 0])]);
                    let forbidden = Ref::new("#/components/responses/Forbidden");
                    operation
                        .responses
                        .responses
                        .insert("403".into(), forbidden.into());
                }
                no_requirement_when_open(operation);
                not_null_when_optional(operation);
                add_shared_answers(operation);
            }
        }
    }
}

/// The operations of the routes that `api::router` puts behind `ADMIN_TOKEN`.
const ADMIN_OPERATIONS: [&str; 11] = [
    "cancelEvent",
    "deleteQueue",
    "createCheckpoint",
    "redriveDeadLetters",
    "purgeDeadLetters",
    "putSubscription",
    "deleteSubscription",
    "putQueueSettings",
    "patchQueueSettings",
    "pauseQueue",
    "resumeQueue",
];

/// utoipa writes `security(())` as `[{}]`: one requirement naming no
/// scheme, which generators read as a requirement all the same and give
/// the operation a token. `[]` is OpenAPI's way of saying that an
/// operation needs nothing, overriding the document's `bearer`.
fn no_requirement_when_open(operation: &mut Operation) {
    let Some(security) = operation.security.as_mut() else {
        return;
    };
    if security
        .iter()
        .all(|r| r == &SecurityRequirement::default())
    {
        security.clear();
    }
}

/// utoipa writes the body of an `Option<T>` as `oneOf: [null, T]`; the
/// server takes an absent body for the defaults, not a JSON `null`, so an
/// optional body is `T`, not required.
fn not_null_when_optional(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::new(Type::Null));
        let mut others = one_of.items.iter().filter(|s| !is_null(s));
        if let (Some(only), None) = (others.next(), others.next()) {
            content.schema = Some(only.clone());
        }
    }
}

/// Adds to `operation` the answers it can get before or around its
/// handler, where the handler's own attribute does not list them already.
fn add_shared_answers(operation: &mut Operation) {
    let open = operation
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let has_queue = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.name == "queue" && p.parameter_in == ParameterIn::Path);
    let has_body = operation.request_body.is_some();
    let mut answers: Vec<(&str, &str)> = Vec::new();
    if has_queue || has_body {
        answers.push(("400", "BadRequest"));
    }
    if has_queue {
        // An empty queue name leaves the path without its segment: no route.
        answers.push(("404", "NotFound"));
    }
    if has_body {
        answers.extend([("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]);
    }
    if !open {
        // The health routes are open and never limited; readiness answers 503 itself.
        answers.extend([
            ("401", "Unauthorized"),
            ("429", "TooManyRequests"),
            ("503", "Unavailable"),
        ]);
    }
    let responses = &mut operation.responses.responses;
    for (status, name) in answers {
        responses
            .entry(status.to_string())
            .or_insert_with(|| Ref::new(format!("#/components/responses/{name}")).into());
    }
}

/// The error answers shared by many routes, by name.
fn shared_responses() -> Vec<(&'static str, ResponseBuilder)> {
    let error = |description: &str| {
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
    };
    let seconds = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    vec![
        (
            "BadRequest",
            error("invalid_json: the body is not JSON; invalid_request: a field, a query parameter or the queue name is not what the route allows (the message names it)"),
        ),
        ("Unauthorized", error("unauthorized: the bearer token is missing or wrong (BROKER_TOKEN, or ADMIN_TOKEN on an admin route)").header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"])))
                .build(),
        )),
        ("Forbidden", error("forbidden: ADMIN_TOKEN is set and the request carries BROKER_TOKEN, which does not open this admin route")),
        ("NotFound", error("not_found: no such queue, event, subscription or route")),
        ("PayloadTooLarge", error("payload_too_large: a payload over MAX_PAYLOAD_BYTES, a body over MAX_REQUEST_BYTES, or a batch larger than the queue can ever hold")),
        ("UnsupportedMediaType", error("unsupported_media_type: a body sent without a JSON content type")),
        ("TooManyRequests", error("rate_limited: past the per-client rate limit; queue_full (enqueue only): the queue is at QUEUE_MAX_SIZE").header(
            "Retry-After",
            HeaderBuilder::new().schema(seconds()).description(Some("Seconds to wait before retrying")).build(),
        )),
        ("Unavailable", error("unavailable: the broker is recovering its log or shutting down, the log refuses writes until a restart, or the request timed out")),
    ]
}
