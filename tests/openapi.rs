//! The OpenAPI document as clients read it: operationIds a generated client
//! reads well with, plain-word tags, the license, every `$ref` resolving,
//! the error table's codes, and the figures the server checks (the
//! broker's `MAX_BATCH`, the rules' patterns); the shapes generators make
//! good types of (shared values named once, named variants, no property
//! of its own schema's name, formatted times, no security requirement on
//! the open routes); and the OpenAPI 3.0 rendering. `.ci/schemathesis-check`
//! holds the live server to the document and `.ci/openapi-clients-check`
//! generates clients from it; this holds the document to the contract.

mod common;

use std::collections::BTreeSet;

use common::api::Api;
use common::broker::limits;
use event_broker_core::rules;
use serde_json::Value;

/// Every operation: method, path, operationId and tag.
const OPERATIONS: [(&str, &str, &str, &str); 28] = [
    (
        "post",
        "/api/queues/{queue}/events",
        "enqueueEvents",
        "events",
    ),
    ("post", "/api/queues/{queue}/lease", "leaseEvents", "leases"),
    ("post", "/api/queues/{queue}/ack", "ackEvents", "leases"),
    ("post", "/api/queues/{queue}/nack", "nackEvents", "leases"),
    (
        "post",
        "/api/queues/{queue}/extend",
        "extendLeases",
        "leases",
    ),
    ("get", "/api/queues", "listQueues", "queues"),
    ("get", "/api/queues/{queue}", "getQueue", "queues"),
    ("put", "/api/queues/{queue}", "putQueueSettings", "queues"),
    (
        "patch",
        "/api/queues/{queue}",
        "patchQueueSettings",
        "queues",
    ),
    ("post", "/api/queues/{queue}/pause", "pauseQueue", "queues"),
    (
        "post",
        "/api/queues/{queue}/resume",
        "resumeQueue",
        "queues",
    ),
    ("delete", "/api/queues/{queue}", "deleteQueue", "queues"),
    (
        "get",
        "/api/queues/{queue}/events",
        "browseEvents",
        "queues",
    ),
    (
        "get",
        "/api/queues/{queue}/events/{id}",
        "getEvent",
        "queues",
    ),
    (
        "delete",
        "/api/queues/{queue}/events/{id}",
        "cancelEvent",
        "queues",
    ),
    ("get", "/api/queues/{queue}/dlq", "listDeadLetters", "dlq"),
    (
        "post",
        "/api/queues/{queue}/dlq/redrive",
        "redriveDeadLetters",
        "dlq",
    ),
    (
        "post",
        "/api/queues/{queue}/dlq/purge",
        "purgeDeadLetters",
        "dlq",
    ),
    (
        "put",
        "/api/queues/{queue}/subscription",
        "putSubscription",
        "subscriptions",
    ),
    (
        "get",
        "/api/queues/{queue}/subscription",
        "getSubscription",
        "subscriptions",
    ),
    (
        "delete",
        "/api/queues/{queue}/subscription",
        "deleteSubscription",
        "subscriptions",
    ),
    ("get", "/api/health", "health", "operations"),
    ("get", "/api/health/ready", "ready", "operations"),
    ("get", "/api/status", "status", "operations"),
    ("get", "/api/metrics", "metrics", "operations"),
    ("get", "/api/openapi.json", "openapi", "operations"),
    ("get", "/api/openapi-3.0.json", "openapi30", "operations"),
    ("post", "/api/admin/checkpoint", "createCheckpoint", "admin"),
];

async fn document(api: &Api) -> Value {
    let (status, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    doc
}

/// Every operation of the document as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

#[tokio::test]
async fn operation_ids_and_tags_read_well_in_a_generated_client() {
    let doc = document(&Api::new()).await;
    let found: BTreeSet<(String, String, String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, op)| {
            let tags = op["tags"].as_array().unwrap();
            assert_eq!(tags.len(), 1, "{method} {path}: {tags:?}");
            let id = op["operationId"].as_str().unwrap().to_string();
            (method, path, id, tags[0].as_str().unwrap().to_string())
        })
        .collect();
    let wanted: BTreeSet<(String, String, String, String)> = OPERATIONS
        .iter()
        .map(|(m, p, id, tag)| {
            (
                m.to_string(),
                p.to_string(),
                id.to_string(),
                tag.to_string(),
            )
        })
        .collect();
    assert_eq!(found, wanted);
    let declared: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        declared,
        [
            "events",
            "leases",
            "queues",
            "dlq",
            "subscriptions",
            "operations",
            "admin"
        ]
    );
}

#[tokio::test]
async fn the_license_is_the_repositorys() {
    let doc = document(&Api::new()).await;
    assert_eq!(doc["info"]["license"]["name"], "MIT");
    assert_eq!(doc["info"]["license"]["identifier"], "MIT");
    let license = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/LICENSE")).unwrap();
    assert!(license.starts_with("MIT License"), "{}", &license[..40]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// Every `"$ref"` under `value`, with where it is.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push((at.to_string(), v.as_str().unwrap().to_string()));
                } else {
                    refs(v, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_ref_resolves() {
    let doc = document(&Api::new()).await;
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(found.len() > 50, "{} refs", found.len());
    for (at, target) in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {target}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {target} does not resolve"
        );
    }
    // Links name operations that exist, in OpenAPI's field names.
    let ids: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string())
        .collect();
    let mut links = 0;
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.contains(target),
                    "{method} {path} {status} {name}: {link}"
                );
                assert!(link.get("operation_id").is_none(), "{link}");
                links += 1;
            }
        }
    }
    assert_eq!(links, 10);
    // The enqueue answers either form, both defined.
    let answer = &doc["paths"]["/api/queues/{queue}/events"]["post"]["responses"]["201"];
    let schema = &answer["content"]["application/json"]["schema"];
    let target = schema["$ref"].as_str().unwrap().trim_start_matches('#');
    let one_of = &doc.pointer(target).unwrap()["oneOf"];
    assert_eq!(one_of[0]["$ref"], "#/components/schemas/Enqueued");
    assert_eq!(one_of[1]["$ref"], "#/components/schemas/EnqueuedBatch");
}

/// The codes of the error table of API.md.
fn error_table_codes() -> BTreeSet<String> {
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap();
    api.lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
        .map(|l| {
            l.split('|')
                .nth(2)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_error_answer_is_documented_with_the_error_body_and_the_tables_codes() {
    let doc = document(&Api::new()).await;
    let codes: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, error_table_codes());
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let open = path.starts_with("/api/health");
        let mut wanted: Vec<&str> = if open {
            vec![]
        } else {
            vec!["401", "429", "503"]
        };
        if path.contains("{queue}") {
            wanted.extend(["400", "404"]);
        }
        if op.get("requestBody").is_some() {
            wanted.extend(["400", "413", "415"]);
        }
        for status in wanted {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        for (status, response) in responses {
            let response = match response["$ref"].as_str() {
                Some(target) => doc.pointer(target.trim_start_matches('#')).unwrap(),
                None => response,
            };
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            if status.starts_with('4') || (status.starts_with('5') && path != "/api/health/ready") {
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        serde_json::json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
}

/// The schema of `field` of the component schema `name`.
fn field<'a>(doc: &'a Value, name: &str, field: &str) -> &'a Value {
    &doc["components"]["schemas"][name]["properties"][field]
}

/// Whether `schema` takes `null`: by a type list, or by a `oneOf` branch
/// (the form of a nullable reference).
fn nullable(schema: &Value) -> bool {
    let null_type = |s: &Value| {
        s["type"] == "null"
            || s["type"]
                .as_array()
                .is_some_and(|t| t.contains(&"null".into()))
    };
    null_type(schema)
        || schema["oneOf"]
            .as_array()
            .is_some_and(|branches| branches.iter().any(null_type))
}

#[tokio::test]
async fn optional_fields_are_nullable_where_null_means_absent_and_only_there() {
    let doc = document(&Api::new()).await;
    for (schema, name) in [
        ("EventIn", "delay_ms"),
        ("EventIn", "idempotency_key"),
        ("EventIn", "headers"),
        ("LeaseIn", "max"),
        ("LeaseIn", "visibility_timeout_ms"),
        ("LeaseIn", "wait_ms"),
        ("NackIn", "delay_ms"),
        ("NackIn", "error"),
        ("ExtendIn", "visibility_timeout_ms"),
        ("SubscriptionIn", "concurrency"),
        ("SubscriptionIn", "timeout_ms"),
        ("SubscriptionIn", "secret"),
        ("SettingsIn", "visibility_timeout_ms"),
        ("SettingsIn", "max_retries"),
        ("SettingsIn", "base_backoff_ms"),
        ("SettingsIn", "max_backoff_ms"),
        ("SettingsIn", "backoff_multiplier"),
        ("SettingsIn", "max_size"),
        ("SettingsIn", "message_ttl_ms"),
        ("SettingsIn", "dead_letter_expired"),
        ("SettingsIn", "paused"),
        ("CheckpointIn", "name"),
        ("QueueSettings", "message_ttl_ms"),
    ] {
        assert!(nullable(field(&doc, schema, name)), "{schema}.{name}");
    }
    for (schema, name) in [("ReceiptsIn", "receipts"), ("SubscriptionIn", "url")] {
        assert!(!nullable(field(&doc, schema, name)), "{schema}.{name}");
    }
    // The dead-letter selection: null never stands for every dead event.
    for (variant, name) in [("IdsSome", "ids"), ("IdsSome", "all"), ("IdsAll", "all")] {
        assert!(!nullable(field(&doc, variant, name)), "{variant}.{name}");
    }
    // Any JSON value: no type at all.
    assert!(field(&doc, "EventIn", "payload").get("type").is_none());
    for name in [
        "EventIn",
        "LeaseIn",
        "ReceiptsIn",
        "NackIn",
        "ExtendIn",
        "SubscriptionIn",
        "SettingsIn",
        "CheckpointIn",
    ] {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
    // Optional bodies are absent, not null.
    for path in ["/api/queues/{queue}/lease", "/api/admin/checkpoint"] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert!(body.get("required").is_none(), "{path}: {body}");
        let schema = &body["content"]["application/json"]["schema"];
        assert!(schema["$ref"].is_string(), "{path}: {schema}");
    }
}

#[tokio::test]
async fn bounds_and_patterns_are_the_ones_the_server_checks() {
    let mut small = limits();
    small.max_batch = 50;
    let doc = document(&Api::with(small)).await;
    let events = &doc["components"]["schemas"]["EventsIn"]["oneOf"][1];
    assert_eq!(
        (&events["minItems"], &events["maxItems"]),
        (&1.into(), &50.into())
    );
    for name in ["ReceiptsIn", "NackIn", "ExtendIn"] {
        let receipts = field(&doc, name, "receipts");
        assert_eq!(
            (&receipts["minItems"], &receipts["maxItems"]),
            (&1.into(), &50.into()),
            "{name}"
        );
    }
    let whole = |schema: &Value, rule: rules::Whole, what: &str| {
        assert_eq!(
            (schema["minimum"].as_u64(), schema["maximum"].as_u64()),
            (Some(rule.min), Some(rule.max)),
            "{what}: {schema}"
        );
    };
    whole(
        field(&doc, "LeaseIn", "max"),
        rules::Whole::count(1, 50),
        "max",
    );
    whole(
        field(&doc, "EventIn", "delay_ms"),
        rules::DELAY_MS,
        "delay_ms",
    );
    whole(
        field(&doc, "NackIn", "delay_ms"),
        rules::DELAY_MS,
        "nack delay_ms",
    );
    for name in ["LeaseIn", "ExtendIn"] {
        let timeout = field(&doc, name, "visibility_timeout_ms");
        whole(timeout, rules::VISIBILITY_TIMEOUT_MS, name);
    }
    let wait_ms = event_broker::api::MAX_WAIT.as_millis() as u64;
    whole(
        field(&doc, "LeaseIn", "wait_ms"),
        rules::Whole::millis(0, wait_ms),
        "wait_ms",
    );
    whole(
        field(&doc, "SubscriptionIn", "concurrency"),
        rules::CONCURRENCY,
        "concurrency",
    );
    whole(
        field(&doc, "SubscriptionIn", "timeout_ms"),
        rules::WEBHOOK_TIMEOUT_MS,
        "timeout_ms",
    );
    for name in ["SettingsIn", "QueueSettings"] {
        for (setting, rule) in [
            ("visibility_timeout_ms", rules::VISIBILITY_TIMEOUT_MS),
            ("max_retries", rules::MAX_RETRIES),
            ("base_backoff_ms", rules::BACKOFF_MS),
            ("max_backoff_ms", rules::BACKOFF_MS),
            ("max_size", rules::QUEUE_MAX_SIZE),
            ("message_ttl_ms", rules::MESSAGE_TTL_MS),
        ] {
            whole(field(&doc, name, setting), rule, setting);
        }
        let multiplier = field(&doc, name, "backoff_multiplier");
        let number = multiplier["type"] == "number" || multiplier["type"][0] == "number";
        assert!(number, "{name}: {multiplier}");
        assert_eq!(
            (
                multiplier["minimum"].as_f64(),
                multiplier["maximum"].as_f64()
            ),
            (
                Some(rules::BACKOFF_MULTIPLIER.min),
                Some(rules::BACKOFF_MULTIPLIER.max)
            ),
            "{name}: {multiplier}"
        );
    }
    let key = field(&doc, "EventIn", "idempotency_key");
    assert_eq!(
        (key["minLength"].as_u64(), key["maxLength"].as_u64()),
        (
            Some(rules::IDEMPOTENCY_KEY.min as u64),
            Some(rules::IDEMPOTENCY_KEY.max as u64)
        )
    );
    let error = field(&doc, "NackIn", "error");
    assert_eq!(
        error["maxLength"].as_u64(),
        Some(rules::NACK_ERROR.max as u64)
    );
    let url = field(&doc, "SubscriptionIn", "url");
    assert_eq!(url["pattern"], rules::WEBHOOK_URL_PATTERN);
    let secret = field(&doc, "SubscriptionIn", "secret");
    assert_eq!(secret["pattern"], rules::WEBHOOK_SECRET_PATTERN);
    let dlq = &doc["paths"]["/api/queues/{queue}/dlq"]["get"]["parameters"];
    let limit = dlq
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    whole(&limit["schema"], rules::DLQ_LIMIT, "limit");
    let queue = &doc["components"]["schemas"]["QueueName"];
    assert_eq!(queue["pattern"], r"^[A-Za-z0-9_.-]{1,128}$");
    assert_eq!(
        (&queue["minLength"], &queue["maxLength"]),
        (&1.into(), &128.into())
    );
    let group = &doc["components"]["schemas"]["GroupName"];
    assert_eq!(
        (group["minLength"].as_u64(), group["maxLength"].as_u64()),
        (Some(rules::GROUP.min as u64), Some(rules::GROUP.max as u64))
    );
}

/// `leaseEvents` as `lease_events`: the name of an operation's method in
/// both clients.
fn snake_case(operation_id: &str) -> String {
    let mut out = String::new();
    for c in operation_id.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn source(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every operation of the served document has its method in the Rust
/// client and in both Python clients, and the CLI's commands cover the
/// operations a shell user needs: a route added to the server without its
/// client methods fails here.
#[tokio::test]
async fn every_operation_is_reachable_from_both_clients_and_the_cli() {
    let doc = document(&Api::new()).await;
    let rust = source("crates/client/src/ops.rs");
    let python = source("clients/python/src/event_broker/client.py");
    let mut missing = Vec::new();
    for (method, path, op) in operations(&doc) {
        let name = snake_case(op["operationId"].as_str().unwrap());
        if !rust.contains(&format!("pub async fn {name}(")) {
            missing.push(format!("Rust client: {name} ({method} {path})"));
        }
        let in_python = python.matches(&format!("def {name}(")).count();
        // Overloads (`@overload`) may add more than the one in each class.
        if in_python < 2 {
            missing.push(format!(
                "Python Client and AsyncClient: {name} ({method} {path}), found {in_python}"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a client method:\n{}",
        missing.join("\n")
    );

    let cli: String = ["mod.rs", "produce.rs", "consume.rs", "queues.rs", "dlq.rs"]
        .iter()
        .map(|f| source(&format!("src/cli/{f}")))
        .collect();
    for call in [
        "enqueue",
        "enqueue_events",
        "lease_events",
        "ack_events",
        "list_queues",
        "get_queue",
        "list_dead_letters",
        "redrive_dead_letters",
        "purge_dead_letters",
    ] {
        assert!(
            cli.contains(&format!(".{call}(")),
            "the CLI does not call {call}"
        );
    }
}

/// Every schema of the document with where it is: the named ones, those of
/// parameters, bodies, answers and headers, and every schema within those.
fn all_schemas(doc: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        schemas_within(schema, name.clone(), &mut found);
    }
    schemas_under(&doc["paths"], "paths", &mut found);
    schemas_under(&doc["components"]["responses"], "responses", &mut found);
    found
}

/// The schemas of the `schema` fields under `value`, and those within them.
fn schemas_under<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let at = format!("{at}/{key}");
                if key == "schema" {
                    schemas_within(child, at, found);
                } else {
                    schemas_under(child, &at, found);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                schemas_under(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// `schema` and the schemas within it; a property's place ends in
/// `.name`, so that a field can be found by its name.
fn schemas_within<'a>(schema: &'a Value, at: String, found: &mut Vec<(String, &'a Value)>) {
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        schemas_within(property, format!("{at}.{name}"), found);
    }
    for key in ["items", "additionalProperties", "not"] {
        if schema[key].is_object() {
            schemas_within(&schema[key], format!("{at}/{key}"), found);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, branch) in schema[key].as_array().into_iter().flatten().enumerate() {
            schemas_within(branch, format!("{at}/{key}/{i}"), found);
        }
    }
    found.push((at, schema));
}

/// Whether `schema` is a reference to the named schema `name`, or a
/// nullable one (`oneOf` the reference and null).
fn refers_to(schema: &Value, name: &str) -> bool {
    let target = format!("#/components/schemas/{name}");
    let is_target = |s: &Value| s["$ref"] == target.as_str();
    is_target(schema)
        || schema["oneOf"].as_array().is_some_and(|branches| {
            branches.iter().any(is_target)
                && branches.iter().all(|s| is_target(s) || s["type"] == "null")
        })
}

/// Every parameter of the document as (method, path, name, schema).
fn parameters(doc: &Value) -> Vec<(String, String, String, Value)> {
    let mut found = Vec::new();
    for (method, path, op) in operations(doc) {
        for param in op["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap().to_string();
            found.push((method.clone(), path.clone(), name, param["schema"].clone()));
        }
    }
    found
}

/// The property of a shared value's name must refer to its schema.
const SHARED_FIELDS: [(&str, &str); 6] = [
    ("queue", "QueueName"),
    ("group", "GroupName"),
    ("headers", "Headers"),
    ("state", "EventState"),
    ("id", "EventId"),
    ("next", "EventId"),
];

/// The parameter of a shared value's name must refer to its schema.
const SHARED_PARAMETERS: [(&str, &str); 4] = [
    ("queue", "QueueName"),
    ("state", "EventState"),
    ("id", "EventId"),
    ("after", "EventId"),
];

#[tokio::test]
async fn shared_values_are_named_schemas_referred_to_wherever_they_appear() {
    let doc = document(&Api::new()).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["EventState"]["enum"],
        serde_json::json!(["ready", "delayed", "in_flight", "dead"])
    );
    assert_eq!(schemas["Headers"]["type"], "object");
    assert_eq!(
        schemas["Headers"]["additionalProperties"],
        serde_json::json!({"type": "string"})
    );
    let mut referred = 0;
    for (at, schema) in all_schemas(&doc) {
        let Some((_, field)) = at.rsplit_once('.') else {
            continue;
        };
        for (name, target) in SHARED_FIELDS {
            if field == name {
                assert!(refers_to(schema, target), "{at}: {schema}");
                referred += 1;
            }
        }
    }
    assert_eq!(referred, 17, "properties of a shared value's name");
    for (owner, field, target) in [
        ("QueueOut", "name", "QueueName"),
        ("EnqueuedBatch", "ids", "EventId"),
        ("IdsSome", "ids", "EventId"),
    ] {
        let schema = field_of(&doc, owner, field);
        assert!(
            refers_to(schema, target) || refers_to(&schema["items"], target),
            "{owner}.{field}"
        );
    }
    let mut queues = 0;
    for (method, path, name, schema) in parameters(&doc) {
        for (shared, target) in SHARED_PARAMETERS {
            if name == shared {
                assert!(
                    refers_to(&schema, target),
                    "{method} {path} {name}: {schema}"
                );
                queues += usize::from(shared == "queue");
            }
        }
    }
    let with_queue = operations(&doc)
        .iter()
        .filter(|(_, path, _)| path.contains("{queue}"))
        .count();
    assert_eq!((queues, with_queue), (20, 20));
    // No copy of a shared schema inline, where a generator would make a
    // type of it again.
    for (at, schema) in all_schemas(&doc) {
        // A checkpoint's name takes the same characters, but is no queue's.
        if at != "QueueName" && at != "CheckpointIn.name" {
            assert_ne!(schema["pattern"], schemas["QueueName"]["pattern"], "{at}");
        }
        if at != "EventState" {
            assert_ne!(schema["enum"], schemas["EventState"]["enum"], "{at}");
        }
    }
}

/// The schema of `field` of the component schema `name`, which must exist.
fn field_of<'a>(doc: &'a Value, name: &str, field: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name]["properties"][field];
    assert!(schema.is_object(), "{name}.{field}");
    schema
}

#[tokio::test]
async fn event_ids_are_one_schema_int64_for_generators_with_the_servers_bounds() {
    let doc = document(&Api::new()).await;
    let id = &doc["components"]["schemas"]["EventId"];
    assert_eq!(
        (&id["type"], &id["format"]),
        (&"integer".into(), &"int64".into())
    );
    // The server reads every unsigned 64-bit id, as API.md promises.
    assert_eq!(
        (id["minimum"].as_u64(), id["maximum"].as_u64()),
        (Some(0), Some(u64::MAX))
    );
    for (at, schema) in all_schemas(&doc) {
        assert_ne!(schema["format"], "uint64", "{at}");
    }
    for owner in ["Enqueued", "LeasedEvent", "BrowsedEvent", "DeadEvent"] {
        assert!(
            refers_to(field_of(&doc, owner, "id"), "EventId"),
            "{owner}.id"
        );
    }
}

#[tokio::test]
async fn the_open_routes_need_no_security_rather_than_an_empty_requirement() {
    let doc = document(&Api::new()).await;
    for path in ["/api/health", "/api/health/ready"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            serde_json::json!([]),
            "{path}"
        );
    }
    for (method, path, op) in operations(&doc) {
        for requirement in op["security"].as_array().into_iter().flatten() {
            assert_ne!(requirement, &serde_json::json!({}), "{method} {path}");
        }
    }
}

/// Whether `body` is valid by the dead-letter variant `variant`, read the
/// way a validator reads it: required fields, no others, each of its
/// schema.
fn valid_variant(variant: &Value, body: &Value) -> bool {
    let properties = variant["properties"].as_object().unwrap();
    let required = variant["required"].as_array().into_iter().flatten();
    let body = body.as_object().unwrap();
    required
        .into_iter()
        .all(|r| body.contains_key(r.as_str().unwrap()))
        && body.iter().all(|(key, value)| match key.as_str() {
            "ids" if properties.contains_key("ids") => value
                .as_array()
                .is_some_and(|ids| ids.iter().all(|id| id.as_u64().is_some())),
            "all" => properties["all"]["enum"]
                .as_array()
                .unwrap()
                .contains(value),
            _ => false,
        })
}

#[tokio::test]
async fn the_dead_letter_selections_variants_are_named_distinct_and_take_what_the_server_takes() {
    let api = Api::new();
    let doc = document(&api).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["IdsIn"]["oneOf"],
        serde_json::json!([
            {"$ref": "#/components/schemas/IdsSome"},
            {"$ref": "#/components/schemas/IdsAll"},
        ])
    );
    for name in ["IdsSome", "IdsAll"] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        assert!(
            schemas[name]["properties"]["all"].get("const").is_none(),
            "{name}"
        );
    }
    assert_eq!(schemas["IdsSome"]["required"], serde_json::json!(["ids"]));
    for path in [
        "/api/queues/{queue}/dlq/redrive",
        "/api/queues/{queue}/dlq/purge",
    ] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/IdsIn"
        );
    }
    // Exactly one variant takes each body the server takes; none takes a
    // body it refuses.
    api.enqueue_q(serde_json::json!({"payload": 1})).await;
    let bodies = [
        (r#"{}"#, true),
        (r#"{"all": true}"#, true),
        (r#"{"ids": [1, 2]}"#, true),
        (r#"{"ids": [], "all": false}"#, true),
        (r#"{"all": false}"#, false),
        (r#"{"ids": [1], "all": true}"#, false),
        (r#"{"ids": null}"#, false),
        (r#"{"all": null}"#, false),
        (r#"{"ids": [1], "more": 1}"#, false),
    ];
    for (body, valid) in bodies {
        let json: Value = serde_json::from_str(body).unwrap();
        let taking: Vec<&str> = ["IdsSome", "IdsAll"]
            .into_iter()
            .filter(|name| valid_variant(&schemas[*name], &json))
            .collect();
        assert_eq!(taking.len(), usize::from(valid), "{body}: {taking:?}");
        for action in ["redrive", "purge"] {
            let (status, answer) = api.post(&format!("/api/queues/q/dlq/{action}"), body).await;
            let wanted = if valid { 200 } else { 400 };
            assert_eq!(status.as_u16(), wanted, "{action} {body}: {answer}");
        }
    }
}

#[tokio::test]
async fn no_schema_holds_a_property_of_its_own_name() {
    let doc = document(&Api::new()).await;
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let own = snake_case(name);
        let own = own.trim_start_matches('_');
        for property in schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(p, _)| p)
        {
            assert_ne!(property, own, "{name}.{property}");
        }
    }
}

#[tokio::test]
async fn every_time_is_a_date_time_in_lists_too() {
    let doc = document(&Api::new()).await;
    let mut times = 0;
    for (at, schema) in all_schemas(&doc) {
        if at
            .rsplit_once('.')
            .is_some_and(|(_, field)| field.ends_with("_at"))
        {
            let format = match schema["type"] == "array" {
                true => &schema["items"]["format"],
                false => &schema["format"],
            };
            assert_eq!(format, "date-time", "{at}: {schema}");
            times += 1;
        }
    }
    assert_eq!(times, 9, "fields of times");
}

/// Every object under `value` with where it is.
fn objects<'a>(
    value: &'a Value,
    at: &str,
    found: &mut Vec<(String, &'a serde_json::Map<String, Value>)>,
) {
    match value {
        Value::Object(map) => {
            found.push((at.to_string(), map));
            for (key, child) in map {
                objects(child, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                objects(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_3_0_rendering_is_the_same_api_in_3_0_3_terms() {
    let api = Api::new();
    let doc = document(&api).await;
    let (status, doc30) = api.get("/api/openapi-3.0.json").await;
    assert_eq!(status, 200, "{doc30}");
    assert_eq!(doc30["openapi"], "3.0.3");
    assert_eq!(doc30["info"]["license"], serde_json::json!({"name": "MIT"}));
    let mut found = Vec::new();
    objects(&doc30, "", &mut found);
    for (at, object) in found {
        assert!(!object.contains_key("const"), "{at}");
        assert!(!object.contains_key("propertyNames"), "{at}");
        if let Some(kind) = object.get("type") {
            assert!(kind.is_string() && kind != "null", "{at}: {kind}");
        }
        // 3.0 reads nothing beside a `$ref`.
        if object.contains_key("$ref") && !at.ends_with("/links") {
            assert_eq!(object.len(), 1, "{at}: {object:?}");
        }
    }
    let mut found = Vec::new();
    refs(&doc30, "", &mut found);
    for (at, target) in found {
        let pointer = target.strip_prefix('#').unwrap();
        assert!(
            doc30.pointer(pointer).is_some(),
            "{at}: {target} does not resolve"
        );
    }
    // The same operations and named schemas as the 3.1 document.
    let ids = |doc: &Value| -> BTreeSet<(String, String, String)> {
        operations(doc)
            .into_iter()
            .map(|(m, p, op)| (m, p, op["operationId"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(ids(&doc30), ids(&doc));
    let names = |doc: &Value| -> Vec<String> {
        doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(names(&doc30), names(&doc));
    // Null where 3.1 takes it, as 3.0 says it.
    let delay = field_of(&doc30, "EventIn", "delay_ms");
    assert_eq!(
        (&delay["type"], &delay["nullable"]),
        (&"integer".into(), &true.into())
    );
    let group = field_of(&doc30, "LeasedEvent", "group");
    assert_eq!(group["nullable"], true, "{group}");
    assert_eq!(
        group["allOf"],
        serde_json::json!([{"$ref": "#/components/schemas/GroupName"}])
    );
    let expiries = &field_of(&doc30, "EnqueuedBatch", "expires_at")["items"];
    assert_eq!(
        (
            &expiries["type"],
            &expiries["format"],
            &expiries["nullable"]
        ),
        (&"string".into(), &"date-time".into(), &true.into())
    );
    assert!(field_of(&doc30, "SettingsIn", "message_ttl_ms")["nullable"] == true);
    assert!(field_of(&doc30, "QueueSettings", "message_ttl_ms")["nullable"] == true);
    assert!(field_of(&doc30, "IdsSome", "ids").get("nullable").is_none());
}
