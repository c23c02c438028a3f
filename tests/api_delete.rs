//! Deleting a queue, API.md's "Queues" section, over loopback:
//! `DELETE /api/queues/{queue}` answers 204 and takes the queue with its
//! events in every state, its settings and its subscription; 404 for a
//! queue that does not exist; receipts of its events answer `not_found`
//! after; a long poll waiting on it answers empty; a later enqueue starts a
//! fresh queue with new ids. The admin token is in `tests/admin_auth.rs`.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api::{assert_error, Api};
use event_broker::api::router;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

async fn delete(api: &Api, uri: &str) -> (StatusCode, Value) {
    let (s, v, _) = api.call(Method::DELETE, uri, None).await;
    (s, v)
}

/// Queue `q` (no retries) with a dead event 0, an in-flight 1, a ready 2 and
/// a delayed 3, its own settings and a subscription; answers 1's receipt.
async fn loaded(api: &Api) -> String {
    api.post("/api/queues/q/events", r#"{"payload": 0}"#).await;
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    let nack = json!({"receipts": [v["events"][0]["receipt"]]});
    api.post("/api/queues/q/nack", &nack.to_string()).await;
    let batch = r#"[{"payload": 1}, {"payload": 2}, {"payload": 3, "delay_ms": 60000}]"#;
    let (s, v) = api.post("/api/queues/q/events", batch).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 1}"#).await;
    let receipt = v["events"][0]["receipt"].as_str().unwrap().to_string();
    let (s, v, _) = api
        .call(
            Method::PATCH,
            "/api/queues/q",
            Some(r#"{"max_retries": 7, "paused": true}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hook = r#"{"url": "https://93.184.215.14/hook"}"#;
    let (s, v, _) = api
        .call(Method::PUT, "/api/queues/q/subscription", Some(hook))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    receipt
}

#[tokio::test]
async fn delete_takes_the_queue_with_its_events_settings_and_subscription() {
    let api = Api::new();
    loaded(&api).await;
    let (s, v) = delete(&api, "/api/queues/q").await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    for uri in [
        "/api/queues/q",
        "/api/queues/q/events",
        "/api/queues/q/dlq",
        "/api/queues/q/subscription",
    ] {
        let (s, v) = api.get(uri).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "");
    }
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v["queues"], json!([]), "{v}");
    let (_, metrics) = api.get("/api/metrics").await;
    assert!(
        !metrics.to_string().contains("queue=\\\"q\\\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_queue_that_does_not_exist_gets_404() {
    let api = Api::new();
    let (s, v) = delete(&api, "/api/queues/nope").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "nope");
    api.post("/api/queues/q/events", r#"{"payload": 0}"#).await;
    assert_eq!(
        delete(&api, "/api/queues/q").await.0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = delete(&api, "/api/queues/q").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "q");
}

#[tokio::test]
async fn receipts_of_a_deleted_queue_answer_not_found_also_once_it_is_made_again() {
    let api = Api::new();
    let receipt = loaded(&api).await;
    delete(&api, "/api/queues/q").await;
    let receipts = json!({"receipts": [receipt]}).to_string();
    for route in ["ack", "nack", "extend"] {
        let (_, v) = api.post(&format!("/api/queues/q/{route}"), &receipts).await;
        assert_eq!(v["results"][0]["status"], "not_found", "{route}: {v}");
    }
    api.post("/api/queues/q/events", r#"{"payload": 9}"#).await;
    let (_, v) = api.post("/api/queues/q/ack", &receipts).await;
    assert_eq!(v["results"][0]["status"], "not_found", "{v}");
}

#[tokio::test]
async fn a_new_enqueue_starts_a_fresh_queue_with_new_ids() {
    let api = Api::new();
    loaded(&api).await;
    delete(&api, "/api/queues/q").await;
    let (s, v) = api.post("/api/queues/q/events", r#"{"payload": 9}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["id"], 4, "ids are never reused: {v}");
    let (_, v) = api.get("/api/queues/q").await;
    assert_eq!(
        (
            &v["ready"],
            &v["dead"],
            &v["paused"],
            &v["settings"]["max_retries"]
        ),
        (&json!(1), &json!(0), &json!(false), &json!(0)),
        "fresh: the broker's defaults, not paused: {v}"
    );
    let (s, _) = api.get("/api/queues/q/subscription").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    assert_eq!(v["events"][0]["id"], 4, "{v}");
}

#[tokio::test]
async fn a_long_poll_waiting_on_a_deleted_queue_answers_empty() {
    let api = Api::new();
    api.post("/api/queues/q/events", r#"{"payload": 0}"#).await;
    api.post("/api/queues/q/lease", "{}").await;
    let lease = Request::post("/api/queues/q/lease")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"wait_ms": 30000}"#))
        .unwrap();
    let poll = tokio::spawn(router(api.state.clone()).oneshot(lease));
    tokio::task::yield_now().await;
    assert!(!poll.is_finished(), "the poll should be waiting");

    assert_eq!(
        delete(&api, "/api/queues/q").await.0,
        StatusCode::NO_CONTENT
    );
    // Well before the poll's 30 s.
    let resp = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered once the queue was deleted")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["events"], json!([]), "{v}");
}
