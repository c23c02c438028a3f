//! The queue settings and pausing of API.md's "Queues" section, over
//! loopback: `PUT` and `PATCH /api/queues/{queue}`, `POST .../pause` and
//! `.../resume`, the settings and `paused` that `GET` shows, the 404 of an
//! unknown queue, and the paused gauge. The refusals of bad fields are rows
//! of `tests/api_errors.rs`.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api::{assert_error, Api};
use event_broker::api::router;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The settings a queue of `Api::new` has of the broker: the test limits
/// (5 events a queue, no retries) and the defaults.
fn defaults() -> Value {
    json!({
        "visibility_timeout_ms": 30000,
        "max_retries": 0,
        "base_backoff_ms": 1000,
        "max_backoff_ms": 60000,
        "backoff_multiplier": 2.0,
        "max_size": 5,
        "message_ttl_ms": null,
        "dead_letter_expired": false,
        "paused": false,
        "group_concurrency": 1,
        "max_in_flight": null,
        "rate_limit_per_s": null,
        "rate_limit_burst": null,
        "group_rate_limit_per_s": null,
    })
}

/// `defaults()` with the fields of `changes` replaced.
fn with(changes: Value) -> Value {
    let mut settings = defaults();
    for (k, v) in changes.as_object().unwrap() {
        settings[k] = v.clone();
    }
    settings
}

/// The payloads of a lease's answer, in order.
fn payloads(lease: &Value) -> Vec<Value> {
    let events = lease["events"].as_array().expect("a lease answer");
    events.iter().map(|e| e["payload"].clone()).collect()
}

/// `PUT` of `body` as the settings of queue `q`.
async fn put_q(api: &Api, body: &str) -> (StatusCode, Value) {
    send(api, Method::PUT, "/api/queues/q", Some(body)).await
}

async fn send(api: &Api, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let (s, v, _) = api.call(method, uri, body).await;
    (s, v)
}

#[tokio::test]
async fn put_makes_the_queue_and_get_shows_its_settings_beside_its_counts() {
    let api = Api::new();
    let body =
        r#"{"max_retries": 3, "backoff_multiplier": 1.5, "message_ttl_ms": 60000, "paused": true}"#;
    let (s, v) = put_q(&api, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let settings = with(json!({
        "max_retries": 3,
        "backoff_multiplier": 1.5,
        "message_ttl_ms": 60000,
        "paused": true,
    }));
    let queue = json!({
        "name": "q",
        "ready": 0,
        "delayed": 0,
        "in_flight": 0,
        "dead": 0,
        "enqueued_total": 0,
        "acked_total": 0,
        "dead_lettered_total": 0,
        "paused": true,
        "settings": settings,
    });
    assert_eq!(v, queue);
    assert_eq!(
        api.get("/api/queues/q").await,
        (StatusCode::OK, queue.clone())
    );
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v, json!({"queues": [queue]}));
    let (_, v) = api.get("/api/status").await;
    assert_eq!(v["queues"][0]["settings"], settings);

    // A queue without settings of its own shows the broker's.
    api.post("/api/queues/plain/events", r#"{"payload": 1}"#)
        .await;
    let (_, v) = api.get("/api/queues/plain").await;
    assert_eq!((&v["paused"], &v["settings"]), (&json!(false), &defaults()));
}

#[tokio::test]
async fn put_replaces_every_setting_and_patch_changes_only_those_it_names() {
    let api = Api::new();
    let put = |body: &'static str| put_q(&api, body);
    let patch = |body: &'static str| send(&api, Method::PATCH, "/api/queues/q", Some(body));
    let (s, v) = put(r#"{"max_retries": 4, "max_size": 3, "message_ttl_ms": 1000}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch(r#"{"visibility_timeout_ms": 500, "max_retries": null}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["settings"],
        with(
            json!({"max_retries": 4, "max_size": 3, "message_ttl_ms": 1000, "visibility_timeout_ms": 500})
        ),
        "null leaves a field as it is"
    );
    let (_, v) = patch(r#"{"message_ttl_ms": null, "dead_letter_expired": true}"#).await;
    assert_eq!(
        v["settings"],
        with(
            json!({"max_retries": 4, "max_size": 3, "visibility_timeout_ms": 500, "dead_letter_expired": true})
        ),
        "but names no TTL for message_ttl_ms"
    );
    let (_, v) = patch("{}").await;
    assert_eq!(
        v["settings"]["max_retries"], 4,
        "an empty change changes nothing"
    );
    let (_, v) = put(r#"{"base_backoff_ms": 2000, "backoff_multiplier": 3}"#).await;
    assert_eq!(
        v["settings"],
        with(json!({"base_backoff_ms": 2000, "backoff_multiplier": 3.0})),
        "the rest back to the broker's"
    );
    let all_null = r#"{"visibility_timeout_ms": null, "max_retries": null, "base_backoff_ms": null,
        "max_backoff_ms": null, "backoff_multiplier": null, "max_size": null,
        "message_ttl_ms": null, "dead_letter_expired": null, "paused": null}"#;
    let (s, v) = put(all_null).await;
    assert_eq!((s, &v["settings"]), (StatusCode::OK, &defaults()), "{v}");
}

#[tokio::test]
async fn a_bad_field_gets_400_naming_it_and_changes_nothing() {
    let api = Api::new();
    put_q(&api, r#"{"max_retries": 2}"#).await;
    let body = r#"{"paused": true, "max_size": 0}"#;
    let (s, v) = send(&api, Method::PATCH, "/api/queues/q", Some(body)).await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "max_size: ",
    );
    let (_, v) = api.get("/api/queues/q").await;
    assert_eq!(v["settings"], with(json!({"max_retries": 2})));
}

#[tokio::test]
async fn patch_pause_and_resume_of_a_queue_that_does_not_exist_get_404() {
    let api = Api::new();
    for (method, uri, body) in [
        (
            Method::PATCH,
            "/api/queues/nowhere",
            Some(r#"{"paused": true}"#),
        ),
        (Method::POST, "/api/queues/nowhere/pause", None),
        (Method::POST, "/api/queues/nowhere/resume", None),
    ] {
        let (s, v) = send(&api, method.clone(), uri, body).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "nowhere");
    }
    let (s, v) = send(&api, Method::POST, "/api/queues/a%20b/pause", None).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "queue: ");
    assert_eq!(api.get("/api/queues").await.1, json!({"queues": []}));
}

#[tokio::test]
async fn a_paused_queue_takes_events_and_acks_but_leases_nothing_until_resumed() {
    let api = Api::new();
    api.post(
        "/api/queues/q/events",
        r#"[{"payload": 1}, {"payload": 2}]"#,
    )
    .await;
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    let receipt = v["events"][0]["receipt"].as_str().unwrap().to_string();
    put_q(&api, r#"{"max_size": 4}"#).await;

    let (s, v) = send(&api, Method::POST, "/api/queues/q/pause", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((&v["name"], &v["paused"]), (&json!("q"), &json!(true)));
    assert_eq!(
        v["settings"],
        with(json!({"max_size": 4, "paused": true})),
        "the other settings stay"
    );
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 5}"#).await;
    assert_eq!(v, json!({"events": []}));
    let (s, _) = api.post("/api/queues/q/events", r#"{"payload": 3}"#).await;
    assert_eq!(s, StatusCode::CREATED);
    let ack = format!(r#"{{"receipts": ["{receipt}"]}}"#);
    let (s, v) = api.post("/api/queues/q/ack", &ack).await;
    assert_eq!(
        (s, &v["results"][0]["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let (_, metrics, _) = api
        .exchange(Request::get("/api/metrics").body(Body::empty()).unwrap())
        .await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(r#"event_broker_queue_paused{queue="q"} 1"#),
        "{metrics}"
    );

    let (s, v) = send(&api, Method::POST, "/api/queues/q/resume", None).await;
    assert_eq!((s, &v["paused"]), (StatusCode::OK, &json!(false)));
    assert_eq!(v["settings"], with(json!({"max_size": 4})));
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 5}"#).await;
    assert_eq!(payloads(&v), [json!(2), json!(3)]);
}

// Single-threaded: once the poll task yields, it is waiting on its queue.
#[tokio::test(flavor = "current_thread")]
async fn a_long_poll_on_a_paused_queue_answers_once_it_is_resumed() {
    let api = Api::new();
    api.post("/api/queues/q/events", r#"{"payload": 7}"#).await;
    send(&api, Method::POST, "/api/queues/q/pause", None).await;
    let lease = Request::post("/api/queues/q/lease")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"wait_ms": 30000}"#))
        .unwrap();
    let poll = tokio::spawn(router(api.state.clone()).oneshot(lease));
    tokio::task::yield_now().await;
    assert!(!poll.is_finished(), "the poll should be waiting");
    api.post("/api/queues/q/events", r#"{"payload": 8}"#).await;
    tokio::task::yield_now().await;
    assert!(!poll.is_finished(), "answered while paused");

    send(&api, Method::POST, "/api/queues/q/resume", None).await;
    let resp = poll.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        payloads(&v),
        [json!(7)],
        "one event: the lease's default max"
    );
}
