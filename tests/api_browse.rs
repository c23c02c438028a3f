//! Browsing without leasing and cancelling one event, API.md's "Browse
//! and cancel" section, over loopback: `GET /api/queues/{queue}/events`
//! and `.../events/{id}`, `DELETE .../events/{id}`, their 404s and the 400s
//! naming a bad parameter.

mod common;

use axum::http::{Method, StatusCode};
use common::api::{assert_error, Api};
use serde_json::{json, Value};

/// Queue `q` of `Api::new` (no retries) with one event in each state:
/// 0 dead, 1 in flight, 2 ready, 3 delayed; answers 1's receipt.
async fn one_of_each(api: &Api) -> String {
    let (s, v) = api
        .post("/api/queues/q/events", r#"{"payload": {"n": 0}}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api.post("/api/queues/q/lease", "{}").await;
    let nack = json!({"receipts": [v["events"][0]["receipt"]], "error": "boom"});
    let (s, v) = api.post("/api/queues/q/nack", &nack.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let batch = r#"[{"payload": {"n": 1}, "headers": {"k": "v"}}, {"payload": {"n": 2}},
        {"payload": {"n": 3}, "delay_ms": 60000}]"#;
    let (s, v) = api.post("/api/queues/q/events", batch).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 1}"#).await;
    assert_eq!(v["events"][0]["id"], 1, "{v}");
    v["events"][0]["receipt"].as_str().unwrap().to_string()
}

fn ids(page: &Value) -> Vec<u64> {
    let events = page["events"].as_array().expect("a page");
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

async fn delete(api: &Api, uri: &str) -> (StatusCode, Value) {
    let (s, v, _) = api.call(Method::DELETE, uri, None).await;
    (s, v)
}

#[tokio::test]
async fn browse_lists_every_state_in_id_order_without_leasing() {
    let api = Api::new();
    one_of_each(&api).await;
    let (s, v) = api.get("/api/queues/q/events").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), [0, 1, 2, 3]);
    assert_eq!(v["next"], Value::Null);
    let states: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["dead", "in_flight", "ready", "delayed"]);
    let dead = &v["events"][0];
    assert_eq!(dead["attempt"], 1);
    assert_eq!(dead["last_error"], "boom");
    assert_eq!(dead["visible_at"], Value::Null);
    assert_eq!(dead["payload"], json!({"n": 0}));
    let in_flight = &v["events"][1];
    assert_eq!(in_flight["attempt"], 1);
    assert_eq!(in_flight["headers"], json!({"k": "v"}));
    assert!(in_flight["visible_at"].is_string(), "the lease's end");
    for e in v["events"].as_array().unwrap() {
        assert_eq!(e["priority"], 0);
        assert_eq!(e["expires_at"], Value::Null);
        assert!(e["enqueued_at"].is_string());
    }
    // Browsing leased nothing: the ready event is still the one to lease.
    let (_, lease) = api.post("/api/queues/q/lease", "{}").await;
    assert_eq!(ids(&lease), [2]);
}

#[tokio::test]
async fn browse_filters_by_state_pages_by_limit_and_after_and_can_leave_payloads_out() {
    let api = Api::new();
    one_of_each(&api).await;
    for (state, want) in [("ready", 2), ("delayed", 3), ("in_flight", 1), ("dead", 0)] {
        let (s, v) = api
            .get(&format!("/api/queues/q/events?state={state}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(ids(&v), [want], "{state}");
    }
    let (_, v) = api.get("/api/queues/q/events?limit=2").await;
    assert_eq!((ids(&v), v["next"].clone()), (vec![0, 1], json!(1)));
    let (_, v) = api.get("/api/queues/q/events?limit=2&after=1").await;
    assert_eq!((ids(&v), v["next"].clone()), (vec![2, 3], Value::Null));
    let (_, v) = api.get("/api/queues/q/events?payload=false").await;
    assert_eq!(ids(&v), [0, 1, 2, 3]);
    for e in v["events"].as_array().unwrap() {
        assert!(e.get("payload").is_none(), "{e}");
        assert!(e.get("headers").is_some(), "{e}");
    }
}

#[tokio::test]
async fn one_event_is_shown_alone_and_unknown_ones_are_404() {
    let api = Api::new();
    one_of_each(&api).await;
    let (s, v) = api.get("/api/queues/q/events/3").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["id"].clone(), v["state"].clone()),
        (json!(3), json!("delayed"))
    );
    assert_eq!(v["payload"], json!({"n": 3}));
    let (s, v) = api.get("/api/queues/q/events/99").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "no event 99");
    let (s, v) = api.get("/api/queues/other/events/1").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "queue other");
    let (s, v) = api.get("/api/queues/other/events").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "queue other");
}

#[tokio::test]
async fn a_cancel_removes_an_event_in_any_state_and_its_receipt_is_not_found() {
    let api = Api::new();
    let receipt = one_of_each(&api).await;
    for id in [0, 1, 2, 3] {
        let (s, v) = delete(&api, &format!("/api/queues/q/events/{id}")).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{id}: {v}");
    }
    let (_, v) = api.get("/api/queues/q/events").await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let (_, q) = api.get("/api/queues/q").await;
    assert_eq!(
        [&q["ready"], &q["delayed"], &q["in_flight"], &q["dead"]],
        [0, 0, 0, 0]
    );
    let body = json!({"receipts": [receipt]}).to_string();
    for route in ["ack", "nack", "extend"] {
        let (_, v) = api.post(&format!("/api/queues/q/{route}"), &body).await;
        assert_eq!(v["results"][0]["status"], "not_found", "{route}: {v}");
    }
    let (s, v) = delete(&api, "/api/queues/q/events/1").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "no event 1");
    let (s, v) = delete(&api, "/api/queues/other/events/1").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "queue other");
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name() {
    let api = Api::new();
    one_of_each(&api).await;
    for (query, names) in [
        (
            "state=waiting",
            "state: expected one of ready, delayed, in_flight, dead",
        ),
        (
            "limit=0",
            "limit: expected a whole number from 1 to 1000, got 0",
        ),
        (
            "limit=1001",
            "limit: expected a whole number from 1 to 1000",
        ),
        ("limit=ten", "limit: expected a whole number from 1 to 1000"),
        ("payload=no", "payload: expected true or false"),
        ("after=-1", "after: expected an event id"),
        ("state=ready&state=dead", "state: given twice"),
        ("order=desc", "order: unknown query parameter"),
    ] {
        let (s, v) = api.get(&format!("/api/queues/q/events?{query}")).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", names);
    }
    let (s, v) = api.get("/api/queues/q/events/abc").await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "id: expected an event id",
    );
    let (s, v) = delete(&api, "/api/queues/q/events/-1").await;
    assert_error(
        s,
        &v,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "id: expected an event id",
    );
    let (s, v) = api.get("/api/queues/b@d/events").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "queue");
}
