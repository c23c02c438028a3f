//! Ordering groups, fair turns and flow control over loopback, API.md's
//! "Ordering groups" and "Flow control": a group's events one at a time in
//! id order through a retry and a dead letter, `group` in every answer that
//! shows an event, turns across groups at a high `group_concurrency`, and
//! `max_in_flight`, the queue's and a group's rate on the broker's clock,
//! with the metric of leases they cut short.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::api::{assert_error, ids, Api};
use common::broker::limits;
use serde_json::{json, Value};

fn api() -> Api {
    let mut limits = limits();
    limits.queue_max_size = 5_000;
    limits.max_retries = 3;
    Api::with(limits)
}

async fn settings(api: &Api, body: Value) -> Value {
    let (s, v, _) = api
        .call(Method::PUT, "/api/queues/q", Some(&body.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["settings"].clone()
}

async fn lease(api: &Api, max: u64) -> Value {
    let (s, v) = api
        .post("/api/queues/q/lease", &json!({"max": max}).to_string())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn settle(api: &Api, how: &str, leased: &Value, extra: Value) {
    let receipts: Vec<&Value> = leased["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["receipt"])
        .collect();
    let mut body = json!({"receipts": receipts});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (s, v) = api
        .post(&format!("/api/queues/q/{how}"), &body.to_string())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "ok"),
        "{v}"
    );
}

#[tokio::test]
async fn a_group_gives_one_event_at_a_time_in_id_order_through_a_retry() {
    let api = api();
    let batch = json!([
        {"payload": "a0", "group": "a"},
        {"payload": "a1", "group": "a"},
        {"payload": "a2", "group": "a"},
        {"payload": "b0", "group": "b"},
        {"payload": "none"},
    ]);
    api.enqueue_q(batch).await;
    let first = lease(&api, 10).await;
    assert_eq!(
        ids(&first),
        [0, 3, 4],
        "one of each group, and the event without one"
    );
    let groups: Vec<&Value> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["group"])
        .collect();
    assert_eq!(groups, [&json!("a"), &json!("b"), &Value::Null]);

    let a0 = json!({"events": [first["events"][0].clone()]});
    settle(&api, "nack", &a0, json!({"delay_ms": 1_000})).await;
    assert_eq!(
        ids(&lease(&api, 10).await),
        Vec::<u64>::new(),
        "a0 waits for its retry, a1 behind it"
    );
    api.clock.advance(Duration::from_millis(1_000));
    let again = lease(&api, 10).await;
    assert_eq!(
        ids(&again),
        [0],
        "the retry goes before the group's later events"
    );
    assert_eq!(again["events"][0]["attempt"], 2);
    settle(&api, "ack", &again, json!({})).await;
    assert_eq!(ids(&lease(&api, 10).await), [1]);
}

#[tokio::test]
async fn a_dead_letter_frees_its_group_and_a_redrive_puts_it_back_in_id_order() {
    let mut limits = limits();
    limits.max_retries = 0;
    let api = Api::with(limits);
    let batch = json!([
        {"payload": "a0", "group": "a"},
        {"payload": "a1", "group": "a"},
        {"payload": "a2", "group": "a"},
    ]);
    api.enqueue_q(batch).await;
    let a0 = lease(&api, 10).await;
    settle(&api, "nack", &a0, json!({"error": "boom"})).await;
    let (_, dlq) = api.get("/api/queues/q/dlq").await;
    assert_eq!(dlq["events"][0]["group"], "a", "{dlq}");
    let a1 = lease(&api, 10).await;
    assert_eq!(ids(&a1), [1], "the dead event no longer holds its group");

    api.post("/api/queues/q/dlq/redrive", "{}").await;
    let (_, browsed) = api.get("/api/queues/q/events/0").await;
    assert_eq!(
        (&browsed["state"], &browsed["group"]),
        (&json!("ready"), &json!("a"))
    );
    assert_eq!(
        ids(&lease(&api, 10).await),
        Vec::<u64>::new(),
        "a1 is in flight"
    );
    settle(&api, "ack", &a1, json!({})).await;
    assert_eq!(
        ids(&lease(&api, 10).await),
        [0],
        "redriven: first again, by id"
    );
}

#[tokio::test]
async fn a_lease_takes_turns_across_groups_whatever_the_concurrency() {
    let api = api();
    settings(&api, json!({"group_concurrency": 1000})).await;
    let hot: Vec<Value> = (0..1000)
        .map(|i| json!({"payload": i, "group": "hot"}))
        .collect();
    api.enqueue_q(Value::Array(hot)).await;
    let small: Vec<Value> = (0..10)
        .map(|g| json!({"payload": g, "group": format!("small-{g}")}))
        .collect();
    api.enqueue_q(Value::Array(small)).await;
    let leased = lease(&api, 11).await;
    let want: Vec<u64> = [0].into_iter().chain(1000..1010).collect();
    assert_eq!(
        ids(&leased),
        want,
        "one event from each of the eleven groups"
    );
    assert_eq!(
        ids(&lease(&api, 3).await),
        [1, 2, 3],
        "then the hot group, which alone is left"
    );
}

#[tokio::test]
async fn max_in_flight_caps_leases_and_a_long_poll_waits_for_an_ack() {
    let api = api();
    let shown = settings(&api, json!({"max_in_flight": 2})).await;
    assert_eq!(shown["max_in_flight"], 2);
    api.enqueue_q(json!([{"payload": 0}, {"payload": 1}, {"payload": 2}]))
        .await;
    let first = lease(&api, 10).await;
    assert_eq!(ids(&first), [0, 1]);
    let (_, queue) = api.get("/api/queues/q").await;
    assert_eq!(queue["in_flight"], 2);

    let poll = api.post("/api/queues/q/lease", r#"{"max": 10, "wait_ms": 30000}"#);
    let ack = async {
        // Once the poll waits, an ack makes room and wakes it.
        while api.state.broker.long_polled_queues() == 0 {
            tokio::task::yield_now().await;
        }
        let one = json!({"events": [first["events"][0].clone()]});
        settle(&api, "ack", &one, json!({})).await;
    };
    let ((s, woken), ()) = tokio::join!(poll, ack);
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&woken), [2]);
    let text = api.metrics().await;
    assert!(
        text.contains(r#"event_broker_queue_throttled_total{limit="max_in_flight",queue="q"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_rate_limit_gives_its_burst_then_its_rate_on_the_brokers_clock() {
    let api = api();
    let shown = settings(&api, json!({"rate_limit_per_s": 10, "rate_limit_burst": 3})).await;
    assert_eq!(
        (&shown["rate_limit_per_s"], &shown["rate_limit_burst"]),
        (&json!(10), &json!(3))
    );
    let batch: Vec<Value> = (0..10).map(|i| json!({"payload": i})).collect();
    api.enqueue_q(Value::Array(batch)).await;
    assert_eq!(ids(&lease(&api, 10).await), [0, 1, 2], "the burst");
    assert_eq!(ids(&lease(&api, 10).await), Vec::<u64>::new());
    api.clock.advance(Duration::from_millis(100));
    assert_eq!(ids(&lease(&api, 10).await), [3], "one every 100 ms");
    api.clock.advance(Duration::from_secs(10));
    assert_eq!(
        ids(&lease(&api, 10).await),
        [4, 5, 6],
        "a quiet spell refills the burst, no more"
    );
    let text = api.metrics().await;
    assert!(
        // Each of the four leases stopped short of its max with events ready.
        text.contains(r#"event_broker_queue_throttled_total{limit="rate_limit",queue="q"} 4"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_group_out_of_its_rate_sits_out_while_the_others_are_served() {
    let api = api();
    settings(
        &api,
        json!({"group_concurrency": 10, "group_rate_limit_per_s": 1}),
    )
    .await;
    let batch = json!([
        {"payload": "a0", "group": "a"},
        {"payload": "a1", "group": "a"},
        {"payload": "b0", "group": "b"},
        {"payload": "b1", "group": "b"},
    ]);
    api.enqueue_q(batch).await;
    assert_eq!(ids(&lease(&api, 10).await), [0, 2], "one a second each");
    assert_eq!(ids(&lease(&api, 10).await), Vec::<u64>::new());
    api.clock.advance(Duration::from_secs(1));
    assert_eq!(ids(&lease(&api, 10).await), [1, 3]);
}

#[tokio::test]
async fn a_group_out_of_range_is_refused_naming_the_field() {
    let api = api();
    let (s, v) = api
        .post("/api/queues/q/events", r#"{"payload": 1, "group": ""}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "group");
    assert_eq!(
        v["error"]["message"],
        "group: expected a string of 1 to 128 characters, got 0 characters"
    );
    let long = "g".repeat(129);
    let body = json!([{"payload": 1}, {"payload": 2, "group": long}]).to_string();
    let (s, v) = api.post("/api/queues/q/events", &body).await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "events[1].group",
    );
    let (s, v) = api
        .post("/api/queues/q/events", r#"{"payload": 1, "group": 7}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "group");
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v, json!({"queues": []}), "nothing was stored");
}
