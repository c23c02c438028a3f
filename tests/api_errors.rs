//! The error answers of API.md: every refused body and query names the
//! place it refuses (`delay_ms`, `events[3].delay_ms`, `receipts[2]`, the
//! query parameter `limit`) and says what is allowed there, in the API's
//! words and never in those of the libraries under it; every answer that is
//! not 2xx carries the error body.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api::{assert_error, Api};
use common::broker::limits;
use serde_json::{json, Value};

/// Words of serde, axum and hyper that must never reach a client.
const FOREIGN: [&str; 18] = [
    "invalid type",
    "invalid value",
    "invalid length",
    "expected struct",
    "expected u64",
    "expected u32",
    "usize",
    "at line",
    "column",
    "Failed to",
    "deserialize",
    "EventIn",
    "LeaseIn",
    "sequence",
    "`",
    "serde",
    "axum",
    "hyper",
];

/// One refused request: where it goes, what it sends, and the answer's
/// status, code and the place its message must begin with.
struct Row {
    method: Method,
    uri: &'static str,
    body: Option<String>,
    status: StatusCode,
    code: &'static str,
    path: &'static str,
}

fn row(
    method: Method,
    uri: &'static str,
    body: Option<&str>,
    status: u16,
    code: &'static str,
    path: &'static str,
) -> Row {
    Row {
        method,
        uri,
        body: body.map(str::to_string),
        status: StatusCode::from_u16(status).unwrap(),
        code,
        path,
    }
}

/// A POST of `body` to `uri` refused with 400 `invalid_request` at `path`.
fn post(uri: &'static str, body: &str, path: &'static str) -> Row {
    row(Method::POST, uri, Some(body), 400, "invalid_request", path)
}

const EVENTS: &str = "/api/queues/q/events";
const LEASE: &str = "/api/queues/q/lease";
const ACK: &str = "/api/queues/q/ack";
const NACK: &str = "/api/queues/q/nack";
const EXTEND: &str = "/api/queues/q/extend";
const REDRIVE: &str = "/api/queues/q/dlq/redrive";
const PURGE: &str = "/api/queues/q/dlq/purge";
const SUBSCRIPTION: &str = "/api/queues/q/subscription";
const CHECKPOINT: &str = "/api/admin/checkpoint";
const QUEUE: &str = "/api/queues/q";

fn rows() -> Vec<Row> {
    let long_error = format!(
        r#"{{"receipts": ["1.1"], "error": "{}"}}"#,
        "x".repeat(4097)
    );
    let long_key = format!(
        r#"{{"payload": 1, "idempotency_key": "{}"}}"#,
        "k".repeat(257)
    );
    let put = |body: &str, path| {
        row(
            Method::PUT,
            SUBSCRIPTION,
            Some(body),
            400,
            "invalid_request",
            path,
        )
    };
    let get = |uri, path| row(Method::GET, uri, None, 400, "invalid_request", path);
    let settings = |method: Method, body: &str, path| {
        row(method, QUEUE, Some(body), 400, "invalid_request", path)
    };
    let put_settings = |body: &str, path| settings(Method::PUT, body, path);
    let patch_settings = |body: &str, path| settings(Method::PATCH, body, path);
    vec![
        // One event.
        post(EVENTS, r#"{"payload": 1, "delay_ms": "5"}"#, "delay_ms"),
        post(EVENTS, r#"{"payload": 1, "delay_ms": -1}"#, "delay_ms"),
        post(EVENTS, r#"{"payload": 1, "delay_ms": 1.5}"#, "delay_ms"),
        post(EVENTS, r#"{"payload": 1, "delay_ms": true}"#, "delay_ms"),
        post(
            EVENTS,
            r#"{"payload": 1, "delay_ms": 2592000001}"#,
            "delay_ms",
        ),
        post(
            EVENTS,
            r#"{"payload": 1, "delay_ms": 99999999999999999999}"#,
            "delay_ms",
        ),
        post(EVENTS, r#"{"delay_ms": 5}"#, "payload"),
        post(EVENTS, r#"{"payload": 1, "colour": "red"}"#, "colour"),
        post(EVENTS, r#"{"payload": 1, "payload": 2}"#, "payload"),
        post(
            EVENTS,
            r#"{"payload": 1, "idempotency_key": 5}"#,
            "idempotency_key",
        ),
        post(
            EVENTS,
            r#"{"payload": 1, "idempotency_key": ""}"#,
            "idempotency_key",
        ),
        post(EVENTS, &long_key, "idempotency_key"),
        post(
            EVENTS,
            r#"{"payload": 1, "headers": {"k": 1}}"#,
            "headers.k",
        ),
        post(EVENTS, r#"{"payload": 1, "headers": ["k"]}"#, "headers"),
        post(EVENTS, "5", "body"),
        post(EVENTS, r#""an event""#, "body"),
        post(EVENTS, "null", "body"),
        post(EVENTS, "  ", "body"),
        // A batch.
        post(EVENTS, "[1, 2]", "events[0]"),
        post(EVENTS, r#"[{"payload": 1}, [1, 2]]"#, "events[1]"),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"payload": 2, "delay_ms": "5"}]"#,
            "events[1].delay_ms",
        ),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"delay_ms": 1}]"#,
            "events[1].payload",
        ),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"payload": 1, "extra": true}]"#,
            "events[1].extra",
        ),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"payload": 1, "headers": {"a": "b", "c": null}}]"#,
            "events[1].headers.c",
        ),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"payload": 1, "idempotency_key": ""}]"#,
            "events[1].idempotency_key",
        ),
        post(
            EVENTS,
            r#"[{"payload": 1}, {"payload": 1, "delay_ms": 2592000001}]"#,
            "events[1].delay_ms",
        ),
        post(EVENTS, "[]", "events"),
        // Leases.
        post(LEASE, r#"{"max": -1}"#, "max"),
        post(LEASE, r#"{"max": "10"}"#, "max"),
        post(LEASE, r#"{"max": 1.5}"#, "max"),
        post(LEASE, r#"{"max": 0}"#, "max"),
        post(LEASE, r#"{"max": 1001}"#, "max"),
        post(LEASE, "[]", "body"),
        post(LEASE, "[10, 30000, 0]", "body"),
        post(
            LEASE,
            r#"{"visibility_timeout_ms": 0}"#,
            "visibility_timeout_ms",
        ),
        post(
            LEASE,
            r#"{"visibility_timeout_ms": "1s"}"#,
            "visibility_timeout_ms",
        ),
        post(LEASE, r#"{"wait_ms": 60001}"#, "wait_ms"),
        post(LEASE, r#"{"wait_ms": true}"#, "wait_ms"),
        post(LEASE, r#"{"maxx": 1}"#, "maxx"),
        // Receipts.
        post(ACK, "{}", "receipts"),
        post(ACK, "", "body"),
        post(ACK, "[]", "body"),
        post(ACK, r#"{"receipts": "17.1"}"#, "receipts"),
        post(ACK, r#"{"receipts": ["17.1", 5]}"#, "receipts[1]"),
        post(ACK, r#"{"receipts": ["a", "b", null]}"#, "receipts[2]"),
        post(ACK, r#"{"receipts": []}"#, "receipts"),
        post(NACK, r#"{"receipts": ["1.1"], "delay_ms": -5}"#, "delay_ms"),
        post(
            NACK,
            r#"{"receipts": ["1.1"], "delay_ms": 2592000001}"#,
            "delay_ms",
        ),
        post(NACK, r#"{"receipts": ["1.1"], "error": 42}"#, "error"),
        post(NACK, &long_error, "error"),
        post(NACK, r#"{"receipt": ["1.1"]}"#, "receipt"),
        post(NACK, r#"{"receipts": [{"id": 1}]}"#, "receipts[0]"),
        post(
            EXTEND,
            r#"{"receipts": ["1.1"], "visibility_timeout_ms": -1}"#,
            "visibility_timeout_ms",
        ),
        post(
            EXTEND,
            r#"{"receipts": ["1.1"], "visibility_timeout_ms": 43200001}"#,
            "visibility_timeout_ms",
        ),
        post(
            EXTEND,
            r#"{"receipts": "1.1", "visibility_timeout_ms": 1000}"#,
            "receipts",
        ),
        // The dead-letter queue.
        post(REDRIVE, "", "body"),
        post(PURGE, "", "body"),
        post(REDRIVE, r#"{"ids": "all"}"#, "ids"),
        post(PURGE, r#"{"ids": [1, -2]}"#, "ids[1]"),
        post(PURGE, r#"{"ids": [1, "2"]}"#, "ids[1]"),
        post(PURGE, r#"{"ids": null}"#, "ids"),
        post(REDRIVE, r#"{"all": "yes"}"#, "all"),
        post(PURGE, r#"{"all": false}"#, "all"),
        post(REDRIVE, r#"{"all": true, "ids": [1]}"#, "all"),
        post(PURGE, r#"{"everything": true}"#, "everything"),
        post(PURGE, "[1]", "body"),
        get("/api/queues/q/dlq?limit=abc", "limit"),
        get("/api/queues/q/dlq?limit=-1", "limit"),
        get("/api/queues/q/dlq?limit=0", "limit"),
        get("/api/queues/q/dlq?limit=1001", "limit"),
        get("/api/queues/q/dlq?limit=", "limit"),
        get("/api/queues/q/dlq?limit=1&limit=2", "limit"),
        get("/api/queues/q/dlq?after=x", "after"),
        get("/api/queues/q/dlq?after=-1", "after"),
        get("/api/queues/q/dlq?page=2", "page"),
        // Subscriptions.
        put("{}", "url"),
        put(r#"{"url": 5}"#, "url"),
        put(r#"{"url": "ftp://example.com/hook"}"#, "url"),
        put(
            r#"{"url": "http://example.com", "concurrency": 0}"#,
            "concurrency",
        ),
        put(
            r#"{"url": "http://example.com", "concurrency": -1}"#,
            "concurrency",
        ),
        put(
            r#"{"url": "http://example.com", "concurrency": 5000000000}"#,
            "concurrency",
        ),
        put(
            r#"{"url": "http://example.com", "timeout_ms": "10s"}"#,
            "timeout_ms",
        ),
        put(r#"{"url": "http://example.com", "secret": 123}"#, "secret"),
        put(
            r#"{"url": "http://example.com", "secret": "plain"}"#,
            "secret",
        ),
        put(r#"{"url": "http://example.com", "hook": 1}"#, "hook"),
        put(r#"["http://example.com"]"#, "body"),
        // A queue's settings.
        put_settings(r#"{"visibility_timeout_ms": 0}"#, "visibility_timeout_ms"),
        put_settings(
            r#"{"visibility_timeout_ms": 43200001}"#,
            "visibility_timeout_ms",
        ),
        put_settings(r#"{"max_retries": -1}"#, "max_retries"),
        put_settings(r#"{"max_retries": 1001}"#, "max_retries"),
        put_settings(r#"{"max_retries": "3"}"#, "max_retries"),
        put_settings(r#"{"base_backoff_ms": 1.5}"#, "base_backoff_ms"),
        put_settings(r#"{"base_backoff_ms": 86400001}"#, "base_backoff_ms"),
        put_settings(r#"{"max_backoff_ms": -1}"#, "max_backoff_ms"),
        put_settings(r#"{"backoff_multiplier": 0.5}"#, "backoff_multiplier"),
        put_settings(r#"{"backoff_multiplier": 101}"#, "backoff_multiplier"),
        put_settings(r#"{"backoff_multiplier": "2"}"#, "backoff_multiplier"),
        put_settings(r#"{"max_size": 0}"#, "max_size"),
        put_settings(r#"{"max_size": 100000001}"#, "max_size"),
        put_settings(r#"{"message_ttl_ms": 0}"#, "message_ttl_ms"),
        put_settings(r#"{"message_ttl_ms": 2592000001}"#, "message_ttl_ms"),
        put_settings(r#"{"message_ttl_ms": "1h"}"#, "message_ttl_ms"),
        put_settings(r#"{"dead_letter_expired": "yes"}"#, "dead_letter_expired"),
        put_settings(r#"{"paused": 1}"#, "paused"),
        put_settings(r#"{"pause": true}"#, "pause"),
        put_settings(r#"{"paused": true, "paused": false}"#, "paused"),
        put_settings("[]", "body"),
        put_settings("", "body"),
        patch_settings(r#"{"max_retries": 2.5}"#, "max_retries"),
        patch_settings(r#"{"max_size": null, "colour": 1}"#, "colour"),
        patch_settings("true", "body"),
        // Checkpoints.
        post(CHECKPOINT, r#"{"name": 5}"#, "name"),
        post(CHECKPOINT, r#"{"name": "../up"}"#, "name"),
        post(CHECKPOINT, r#"{"nme": "x"}"#, "nme"),
        post(CHECKPOINT, "[]", "body"),
        // Not JSON at all.
        row(
            Method::POST,
            EVENTS,
            Some(r#"{"payload": 1"#),
            400,
            "invalid_json",
            "body",
        ),
        row(
            Method::POST,
            LEASE,
            Some(r#"{"max": 1,}"#),
            400,
            "invalid_json",
            "body",
        ),
        row(
            Method::POST,
            ACK,
            Some(r#"{"receipts": ["1.1"]} x"#),
            400,
            "invalid_json",
            "body",
        ),
        row(
            Method::PUT,
            SUBSCRIPTION,
            Some("{url: 1}"),
            400,
            "invalid_json",
            "body",
        ),
    ]
}

/// Checks the answer of one row; `Err` says how it differs.
fn checked(row: &Row, status: StatusCode, body: &Value) -> Result<(), String> {
    let what = format!("{} {} {:?}", row.method, row.uri, row.body);
    if status != row.status || body["error"]["code"] != row.code {
        return Err(format!("{what}: {status} {body}"));
    }
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if !message.starts_with(&format!("{}: ", row.path)) {
        return Err(format!(
            "{what}: {message:?} does not begin with {:?}",
            row.path
        ));
    }
    if let Some(word) = FOREIGN.iter().find(|w| message.contains(*w)) {
        return Err(format!("{what}: {message:?} says {word:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn every_refused_body_and_query_names_its_place_in_the_apis_own_words() {
    let api = Api::new();
    let rows = rows();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let (status, body, _) = api
            .call(row.method.clone(), row.uri, row.body.as_deref())
            .await;
        if let Err(failure) = checked(row, status, &body) {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v, json!({"queues": []}), "nothing was stored");
}

#[tokio::test]
async fn a_message_says_what_is_allowed_and_what_came() {
    let api = Api::new();
    let message = |v: Value| v["error"]["message"].as_str().unwrap().to_string();
    let (_, v) = api.post(EVENTS, r#"{"payload": 1, "delay_ms": "5"}"#).await;
    assert_eq!(
        message(v),
        "delay_ms: expected a whole number of milliseconds from 0 to 2592000000, got a string"
    );
    let (_, v) = api.post(LEASE, r#"{"max": -1}"#).await;
    assert_eq!(
        message(v),
        "max: expected a whole number from 1 to 1000, got -1"
    );
    let (_, v) = api.post(LEASE, r#"{"max": 0}"#).await;
    assert_eq!(
        message(v),
        "max: expected a whole number from 1 to 1000, got 0",
        "the broker's range check speaks as the type check does"
    );
    let (_, v) = api.post(EVENTS, r#"[{"payload": 1}, [1, 2]]"#).await;
    assert_eq!(
        message(v),
        "events[1]: expected an object with the fields payload (required), delay_ms, \
         idempotency_key, headers, priority, ttl_ms, group, got an array"
    );
    let (_, v) = api.post(ACK, r#"{"receipts": ["a", "b", null]}"#).await;
    assert_eq!(
        message(v),
        "receipts[2]: expected a receipt string, as a lease answered it, got null"
    );
    let (_, v) = api.get("/api/queues/q/dlq?limit=abc").await;
    assert_eq!(
        message(v),
        "limit: expected a whole number from 1 to 1000, got \"abc\""
    );
    let (_, v) = api.post(EVENTS, r#"{"payload": 1, "colour": "red"}"#).await;
    assert_eq!(
        message(v),
        "colour: unknown field; the fields here are payload, delay_ms, idempotency_key, headers, \
         priority, ttl_ms, group"
    );
    let api = &api;
    let put = |body: &'static str| async move {
        let (_, v, _) = api.call(Method::PUT, QUEUE, Some(body)).await;
        message(v)
    };
    assert_eq!(
        put(r#"{"backoff_multiplier": 0.5}"#).await,
        "backoff_multiplier: expected a number from 1.0 to 100.0, got 0.5"
    );
    assert_eq!(
        put(r#"{"backoff_multiplier": true}"#).await,
        "backoff_multiplier: expected a number from 1.0 to 100.0, got true"
    );
    assert_eq!(
        put(r#"{"max_retries": 1001}"#).await,
        "max_retries: expected a whole number from 0 to 1000, got 1001"
    );
    assert_eq!(
        put(r#"{"message_ttl_ms": 2592000001}"#).await,
        "message_ttl_ms: expected a whole number of milliseconds from 1 to 2592000000, got 2592000001"
    );
    assert_eq!(
        put(r#"{"pause": true}"#).await,
        "pause: unknown field; the fields here are visibility_timeout_ms, max_retries, \
         base_backoff_ms, max_backoff_ms, backoff_multiplier, max_size, message_ttl_ms, \
         dead_letter_expired, paused, group_concurrency, max_in_flight, rate_limit_per_s, \
         rate_limit_burst, group_rate_limit_per_s"
    );
    assert_eq!(
        put(r#"{"group_concurrency": 0}"#).await,
        "group_concurrency: expected a whole number from 1 to 10000, got 0"
    );
    assert_eq!(
        put(r#"{"rate_limit_per_s": "fast"}"#).await,
        "rate_limit_per_s: expected a whole number from 1 to 1000000, got a string"
    );
}

#[tokio::test]
async fn null_is_an_absent_field_and_a_whole_float_a_whole_number_as_the_document_says() {
    let api = Api::new();
    let (s, v) = api
        .post(
            EVENTS,
            r#"{"payload": null, "delay_ms": null, "idempotency_key": null, "headers": null}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .post(
            EVENTS,
            r#"[{"payload": 2, "delay_ms": 0.0}, {"payload": 3, "delay_ms": 0e3}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .post(
            LEASE,
            r#"{"max": 2.0, "visibility_timeout_ms": null, "wait_ms": null}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "max 2.0 is max 2: {v}");
    assert_eq!(events[0]["payload"], Value::Null, "{v}");
    let receipt = events[0]["receipt"].as_str().unwrap();
    let body = format!(r#"{{"receipts": ["{receipt}"], "delay_ms": null, "error": null}}"#);
    let (s, v) = api.post("/api/queues/q/nack", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api.post(LEASE, r#"{"max": null}"#).await;
    assert_eq!(
        (s, v["events"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    // A queue of its own: no event of the ones above is pushed anywhere.
    let body = r#"{"url": "http://hooks.example.com:9/hook", "concurrency": 1.0, "timeout_ms": null, "secret": null}"#;
    let (s, v, _) = api
        .call(Method::PUT, "/api/queues/s/subscription", Some(body))
        .await;
    assert_eq!(
        (s, &v["concurrency"], &v["timeout_ms"]),
        (StatusCode::OK, &json!(1), &json!(10000)),
        "{v}"
    );
    // Where null would widen the request, it stays refused.
    let (s, v) = api.post(PURGE, r#"{"ids": null}"#).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "ids");
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_the_error_body_and_allow() {
    let api = Api::new();
    for (method, uri, allowed) in [
        (Method::DELETE, EVENTS, "POST"),
        (Method::GET, LEASE, "POST"),
        (Method::POST, "/api/queues", "GET"),
        (Method::PATCH, SUBSCRIPTION, "PUT"),
        (Method::POST, QUEUE, "PATCH"),
        (Method::GET, "/api/queues/q/pause", "POST"),
    ] {
        let (s, v, headers) = api.call(method.clone(), uri, None).await;
        assert_error(
            s,
            &v,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            method.as_str(),
        );
        let allow = headers[header::ALLOW].to_str().unwrap();
        assert!(allow.contains(allowed), "{method} {uri}: Allow: {allow}");
    }
}

#[tokio::test]
async fn unknown_routes_and_undecodable_paths_get_the_error_body() {
    let api = Api::new();
    for (method, uri) in [(Method::GET, "/nothing"), (Method::POST, "/api/nothing")] {
        let (s, v, _) = api.call(method, uri, None).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "route");
    }
    let (s, v) = api
        .post("/api/queues/%FF/events", r#"{"payload": 1}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "queue: ");
}

#[tokio::test]
async fn a_body_over_the_request_limit_gets_413_naming_the_limit() {
    let mut limits = limits();
    limits.max_request_bytes = 4096;
    let api = Api::with(limits);
    let big = format!(r#"{{"payload": "{}"}}"#, "x".repeat(5000));
    let (s, v) = api.post(EVENTS, &big).await;
    assert_error(
        s,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "4096 bytes",
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("MAX_REQUEST_BYTES"), "{message}");
    assert!(!message.contains("Failed to"), "{message}");
    let fits = format!(r#"{{"payload": "{}"}}"#, "x".repeat(4000));
    assert_eq!(api.post(EVENTS, &fits).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_batch_larger_than_a_queue_can_hold_gets_413_not_a_retry() {
    let api = Api::new();
    let six = serde_json::to_string(&vec![json!({"payload": 1}); 6]).unwrap();
    let (s, v, headers) = api.call(Method::POST, EVENTS, Some(&six)).await;
    assert_error(
        s,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "QUEUE_MAX_SIZE",
    );
    assert!(
        !headers.contains_key(header::RETRY_AFTER),
        "waiting cannot help"
    );
    // A batch that fits an empty queue but not this one may be retried.
    api.post(EVENTS, r#"{"payload": 1}"#).await;
    let five = serde_json::to_string(&vec![json!({"payload": 1}); 5]).unwrap();
    let (s, v, headers) = api.call(Method::POST, EVENTS, Some(&five)).await;
    assert_error(s, &v, StatusCode::TOO_MANY_REQUESTS, "queue_full", "q");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

/// A queue `q` with three dead events, ids 0 to 2 (no retries under `Api::new`).
async fn three_dead(api: &Api) {
    api.post(
        EVENTS,
        r#"[{"payload": 1}, {"payload": 2}, {"payload": 3}]"#,
    )
    .await;
    let (_, v) = api.post(LEASE, r#"{"max": 3}"#).await;
    let receipts: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["receipt"].as_str().unwrap())
        .collect();
    let (s, _) = api
        .post(NACK, &json!({ "receipts": receipts }).to_string())
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn redrive_and_purge_act_on_all_only_when_asked_to() {
    let api = Api::new();
    three_dead(&api).await;
    for uri in [REDRIVE, PURGE] {
        let (s, v, _) = api.call(Method::POST, uri, None).await;
        assert_error(
            s,
            &v,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            r#"{"all": true}"#,
        );
    }
    let (s, v) = api.post(PURGE, r#"{"all": false}"#).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "all: ");
    assert_eq!(
        api.get("/api/queues/q").await.1["dead"],
        3,
        "nothing was touched"
    );

    assert_eq!(
        api.post(PURGE, r#"{"ids": [0]}"#).await.1,
        json!({"purged": 1})
    );
    assert_eq!(
        api.post(REDRIVE, r#"{"ids": [1], "all": false}"#).await.1,
        json!({"redriven": 1})
    );
    assert_eq!(
        api.post(PURGE, r#"{"all": true}"#).await.1,
        json!({"purged": 1})
    );
    let (_, v) = api.get("/api/queues/q").await;
    assert_eq!(
        (v["dead"].clone(), v["ready"].clone()),
        (json!(0), json!(1))
    );

    let api = Api::new();
    three_dead(&api).await;
    assert_eq!(api.post(REDRIVE, "{}").await.1, json!({"redriven": 3}));
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let mut api = Api::new();
    api.state.token = Some(Arc::from("s3cret"));
    let with = |value: &str| {
        Request::get("/api/queues")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap()
    };
    for value in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
        assert_eq!(api.send(with(value)).await.0, StatusCode::OK, "{value}");
    }
    let (s, v, _) = api.send(with("Basic s3cret")).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "Bearer");
    let (s, v, _) = api.send(with("bearer wrong")).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "wrong");
}

#[tokio::test]
async fn a_preflight_allows_the_headers_the_api_reads_by_name() {
    let mut api = Api::new();
    api.state.origins = Arc::new(vec!["https://app.example".into()]);
    api.state.token = Some(Arc::from("s3cret"));
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri(EVENTS)
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let (s, _, headers) = api.send(req).await;
    assert!(s.is_success(), "{s}");
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    let names: Vec<&str> = allowed.split(',').map(str::trim).collect();
    for name in ["authorization", "content-type", "x-request-id"] {
        assert!(names.contains(&name), "{allowed}");
    }
    assert!(!names.contains(&"*"), "{allowed}");
}

#[tokio::test]
async fn a_taken_checkpoint_name_is_a_conflict() {
    let api = Api::new();
    let (s, v) = api.post(CHECKPOINT, r#"{"name": "nightly"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api.post(CHECKPOINT, r#"{"name": "nightly"}"#).await;
    assert_error(s, &v, StatusCode::CONFLICT, "conflict", "name: ");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nightly"),
        "{v}"
    );
}
