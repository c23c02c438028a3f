//! Priorities and message TTL over loopback, API.md's "Priorities" and
//! "Time to live": delivery order, `expires_at` in every answer that shows
//! an event, expiry by the reaper and by a failed lease, the queue's
//! default TTL and `dead_letter_expired`, and the 400s for a priority or
//! TTL out of range.

mod common;

use axum::http::StatusCode;
use common::api::{assert_error, ids, Api};
use common::broker::limits;
use event_broker::event_json::timestamp;
use serde_json::{json, Value};
use std::time::Duration;

fn api() -> Api {
    let mut limits = limits();
    limits.max_retries = 3;
    Api::with(limits)
}

async fn reap(api: &Api) {
    api.state.broker.reap().result().await.unwrap();
}

#[tokio::test]
async fn higher_priorities_are_leased_first_then_by_visible_time_and_id() {
    let api = api();
    let batch = json!([
        {"payload": 0},
        {"payload": 1, "priority": 5},
        {"payload": 2, "priority": 255},
        {"payload": 3, "priority": 5},
        {"payload": 4, "priority": 0},
        {"payload": 5, "priority": 200, "delay_ms": 1000},
    ]);
    assert_eq!(
        api.enqueue_q(batch).await,
        json!({"ids": [0, 1, 2, 3, 4, 5]})
    );
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 2}"#).await;
    assert_eq!(ids(&v), [2, 1]);
    assert_eq!(v["events"][0]["priority"], 255);
    assert_eq!(v["events"][0]["expires_at"], Value::Null);
    // Delayed: its priority counts once it is visible.
    api.clock.advance(Duration::from_millis(1_000));
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 10}"#).await;
    assert_eq!(ids(&v), [5, 3, 0, 4]);
}

#[tokio::test]
async fn a_priority_is_kept_through_a_retry_and_shown_in_the_dlq_and_browsing() {
    let mut limits = limits();
    limits.max_retries = 0;
    let api = Api::with(limits);
    api.enqueue_q(json!({"payload": "p", "priority": 7})).await;
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    let nack = json!({"receipts": [v["events"][0]["receipt"]], "error": "boom"});
    api.post("/api/queues/q/nack", &nack.to_string()).await;
    let (_, v) = api.get("/api/queues/q/dlq").await;
    assert_eq!(v["events"][0]["priority"], 7, "{v}");
    api.post("/api/queues/q/dlq/redrive", "{}").await;
    api.enqueue_q(json!({"payload": "later"})).await;
    let (_, v) = api.get("/api/queues/q/events/0").await;
    assert_eq!(v["priority"], 7, "{v}");
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    assert_eq!(ids(&v), [0], "the redriven event still goes first");
}

#[tokio::test]
async fn an_enqueue_with_a_ttl_answers_its_expiry_and_others_answer_as_before() {
    let api = api();
    let v = api.enqueue_q(json!({"payload": 1, "ttl_ms": 60_000})).await;
    let at = timestamp(common::broker::START_MS + 60_000);
    assert_eq!(v, json!({"id": 0, "duplicate": false, "expires_at": at}));
    let v = api.enqueue_q(json!({"payload": 2})).await;
    assert_eq!(v, json!({"id": 1, "duplicate": false}));
    let v = api
        .enqueue_q(json!([{"payload": 3}, {"payload": 4, "ttl_ms": 60_000}]))
        .await;
    assert_eq!(v, json!({"ids": [2, 3], "expires_at": [null, at]}));
    let v = api.enqueue_q(json!([{"payload": 5}])).await;
    assert_eq!(v, json!({"ids": [4]}));
    let (_, v) = api.get("/api/queues/q/events/3").await;
    assert_eq!(v["expires_at"], at);
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 1}"#).await;
    assert_eq!(v["events"][0]["expires_at"], at);
}

#[tokio::test]
async fn an_expired_event_is_never_leased_and_the_reaper_drops_it() {
    let api = api();
    api.enqueue_q(json!([{"payload": 1, "ttl_ms": 1_000}, {"payload": 2, "ttl_ms": 1_000, "delay_ms": 500}, {"payload": 3}])).await;
    api.clock.advance(Duration::from_millis(1_000));
    // Before the reaper came: passed over all the same.
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 10}"#).await;
    assert_eq!(ids(&v), [2]);
    reap(&api).await;
    let (_, v) = api.get("/api/queues/q/events").await;
    assert_eq!(ids(&v), [2], "only the event without a TTL is left");
    let (_, v) = api.get("/api/queues/q/dlq").await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let metrics = api.metrics().await;
    assert!(
        metrics.contains(r#"event_broker_queue_events_total{event="ttl_expired",queue="q"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_queue_ttl_applies_to_events_without_their_own_and_can_dead_letter_them() {
    let api = api();
    let settings = json!({"message_ttl_ms": 2_000, "dead_letter_expired": true});
    let (s, v, _) = api
        .call(
            axum::http::Method::PUT,
            "/api/queues/q",
            Some(&settings.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = api
        .enqueue_q(json!([{"payload": 1}, {"payload": 2, "ttl_ms": 10_000}]))
        .await;
    let start = common::broker::START_MS;
    assert_eq!(
        v["expires_at"],
        json!([timestamp(start + 2_000), timestamp(start + 10_000)])
    );
    api.clock.advance(Duration::from_millis(2_000));
    reap(&api).await;
    let (_, v) = api.get("/api/queues/q/dlq").await;
    assert_eq!(ids(&v), [0]);
    assert_eq!(v["events"][0]["last_error"], "expired");
    assert_eq!(v["events"][0]["attempts"], 0, "never delivered");
    // A redrive sends it back without an expiry.
    api.post("/api/queues/q/dlq/redrive", "{}").await;
    let (_, v) = api.get("/api/queues/q/events/0").await;
    assert_eq!(v["expires_at"], Value::Null, "{v}");
    api.clock.advance(Duration::from_millis(60_000));
    reap(&api).await;
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 10}"#).await;
    assert_eq!(ids(&v), [0], "1 expired too, and went to the DLQ");
}

#[tokio::test]
async fn a_lease_may_outlive_its_event_but_a_retry_may_not() {
    let api = api();
    api.enqueue_q(json!([{"payload": 1, "ttl_ms": 1_000}, {"payload": 2, "ttl_ms": 1_000}]))
        .await;
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 2}"#).await;
    let (first, second) = (&v["events"][0]["receipt"], &v["events"][1]["receipt"]);
    api.clock.advance(Duration::from_millis(5_000));
    reap(&api).await;
    let ack = json!({"receipts": [first]});
    let (s, v) = api.post("/api/queues/q/ack", &ack.to_string()).await;
    assert_eq!(
        (s, &v["results"][0]["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let nack = json!({"receipts": [second]});
    let (s, v) = api.post("/api/queues/q/nack", &nack.to_string()).await;
    assert_eq!(
        (s, &v["results"][0]["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let (_, v) = api.get("/api/queues/q/events").await;
    assert_eq!(
        ids(&v),
        Vec::<u64>::new(),
        "the nacked event expired, not retried"
    );
}

#[tokio::test]
async fn a_priority_or_ttl_out_of_range_is_refused_naming_the_field() {
    let api = api();
    for (body, field, allowed) in [
        (
            json!({"payload": 1, "priority": 256}),
            "priority",
            "from 0 to 255",
        ),
        (
            json!({"payload": 1, "priority": -1}),
            "priority",
            "from 0 to 255",
        ),
        (
            json!({"payload": 1, "priority": 1.5}),
            "priority",
            "from 0 to 255",
        ),
        (
            json!({"payload": 1, "priority": "high"}),
            "priority",
            "from 0 to 255",
        ),
        (
            json!({"payload": 1, "ttl_ms": 0}),
            "ttl_ms",
            "from 1 to 2592000000",
        ),
        (
            json!({"payload": 1, "ttl_ms": 2_592_000_001u64}),
            "ttl_ms",
            "from 1 to 2592000000",
        ),
        (
            json!([{"payload": 1}, {"payload": 1, "priority": 300}]),
            "events[1].priority",
            "from 0 to 255",
        ),
        (
            json!([{"payload": 1, "ttl_ms": -5}]),
            "events[0].ttl_ms",
            "from 1 to 2592000000",
        ),
    ] {
        let (s, v) = api.post("/api/queues/q/events", &body.to_string()).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", field);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(allowed), "{body}: {message}");
    }
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v["queues"], json!([]), "nothing was stored");
}
