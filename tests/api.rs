//! The HTTP contract of API.md, route by route and error by error, over
//! loopback to a server on a free port.

mod common;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api::{assert_error, Api};
use common::broker::limits;
use event_broker::api::router;
use event_broker_wal::fs::FaultyFs;
use serde_json::{json, Value};
use tower::ServiceExt;

#[tokio::test]
async fn one_event_is_stored_and_delivered_byte_for_byte() {
    let api = Api::new();
    let payload = r#"{"b": [1 ,2.50], "a":"é\u00e9"}"#;
    let (s, v) = api
        .post(
            "/api/queues/orders/events",
            &format!(r#"{{"payload": {payload}, "headers": {{"k": "v"}}}}"#),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({"id": 0, "duplicate": false}));
    let text = api.lease_text("orders", r#"{"max": 10}"#).await;
    assert!(text.contains(payload), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let e = &v["events"][0];
    assert_eq!(e["id"], 0);
    assert_eq!(e["queue"], "orders");
    assert_eq!(e["headers"], json!({"k": "v"}));
    assert_eq!(e["attempt"], 1);
    assert_eq!(e["enqueued_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(e["lease_expires_at"], "2023-11-14T22:13:50.000Z");
    assert!(e["receipt"].as_str().unwrap().starts_with("0."));
}

#[tokio::test]
async fn a_batch_answers_its_ids_and_duplicates_name_the_first() {
    let api = Api::new();
    let (s, v) = api
        .post(
            "/api/queues/q/events",
            r#"[{"payload": 1}, {"payload": 2, "idempotency_key": "k"}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v, json!({"ids": [0, 1]}));
    let (s, v) = api
        .post(
            "/api/queues/q/events",
            r#"{"payload": 3, "idempotency_key": "k"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v, json!({"id": 1, "duplicate": true}));
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field() {
    let api = Api::new();
    let (s, v) = api.post("/api/queues/q/events", r#"{"payload": 1"#).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_json", "JSON");
    let (s, v) = api.post("/api/queues/q/events", r#"{"delay_ms": 5}"#).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "payload");
    let (s, v) = api
        .post("/api/queues/q/events", r#"{"payload": 1, "delay_ms": -5}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "");
    let (s, v) = api
        .post("/api/queues/q/events", r#"{"payload": 1, "colour": "red"}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "colour");
    let (s, v) = api
        .post(
            "/api/queues/q/events",
            r#"{"payload": 1, "headers": {"k": 1}}"#,
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "headers");
    let (s, v) = api.post("/api/queues/q/events", "[]").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "events");
    let (s, v) = api
        .post("/api/queues/bad%20name/events", r#"{"payload": 1}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "queue");
    let (s, v) = api.post("/api/queues/q/lease", r#"{"max": 0}"#).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "max");
    let (s, v) = api
        .post("/api/queues/q/lease", r#"{"wait_ms": 60001}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "wait_ms");
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_415_and_a_big_payload_413() {
    let api = Api::new();
    let req = Request::post("/api/queues/q/events")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"payload": 1}"#))
        .unwrap();
    let (s, v, _) = api.send(req).await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );
    let big = format!(
        r#"[{{"payload": 1}}, {{"payload": "{}"}}]"#,
        "x".repeat(100)
    );
    let (s, v) = api.post("/api/queues/q/events", &big).await;
    assert_error(
        s,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "events[1].payload",
    );
    let (s, v) = api.get("/api/queues").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"queues": []}), "nothing of the batch was stored");
}

#[tokio::test]
async fn unknown_routes_and_queues_get_404() {
    let api = Api::new();
    let (s, v) = api.get("/api/nothing").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "route");
    let (s, v) = api.get("/api/queues/ghost").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "ghost");
    let (s, v) = api.get("/api/queues/ghost/dlq").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "ghost");
}

#[tokio::test]
async fn a_full_queue_gets_429_with_retry_after() {
    let api = Api::new();
    for _ in 0..5 {
        assert_eq!(
            api.post("/api/queues/q/events", r#"{"payload": 1}"#)
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (s, v, headers) = api
        .call(
            Method::POST,
            "/api/queues/q/events",
            Some(r#"{"payload": 1}"#),
        )
        .await;
    assert_error(s, &v, StatusCode::TOO_MANY_REQUESTS, "queue_full", "q");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn ack_nack_and_extend_answer_per_receipt_and_409_when_all_fail() {
    let api = Api::new();
    api.post(
        "/api/queues/q/events",
        r#"[{"payload": 1}, {"payload": 2}]"#,
    )
    .await;
    let (_, v) = api
        .post(
            "/api/queues/q/lease",
            r#"{"max": 2, "visibility_timeout_ms": 1000}"#,
        )
        .await;
    let r0 = v["events"][0]["receipt"].as_str().unwrap().to_string();
    let r1 = v["events"][1]["receipt"].as_str().unwrap().to_string();
    let (s, v) = api
        .post(
            "/api/queues/q/extend",
            &format!(r#"{{"receipts": ["{r0}"], "visibility_timeout_ms": 5000}}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"results": [{"receipt": r0, "status": "ok"}]}));
    let (s, v) = api
        .post(
            "/api/queues/q/ack",
            &format!(r#"{{"receipts": ["{r0}", "99.1"]}}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["results"],
        json!([{"receipt": r0, "status": "ok"}, {"receipt": "99.1", "status": "not_found"}])
    );
    let (s, v) = api
        .post("/api/queues/q/ack", &format!(r#"{{"receipts": ["{r0}"]}}"#))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "lease_lost", "lease");
    assert_eq!(
        v["results"],
        json!([{"receipt": r0, "status": "lease_lost"}])
    );
    // max_retries is 0 here: one nack moves the event to the dead-letter queue.
    let (s, v) = api
        .post(
            "/api/queues/q/nack",
            &format!(r#"{{"receipts": ["{r1}"], "error": "downstream 503"}}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api.get("/api/queues/q/dlq?limit=10").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["events"][0]["id"], 1);
    assert_eq!(v["events"][0]["payload"], 2);
    assert_eq!(v["events"][0]["attempts"], 1);
    assert_eq!(v["events"][0]["last_error"], "downstream 503");
    assert_eq!(v["next"], Value::Null);
    let (s, v) = api.post("/api/queues/q/dlq/redrive", "{}").await;
    assert_eq!((s, v), (StatusCode::OK, json!({"redriven": 1})));
    let (_, v) = api.post("/api/queues/q/lease", "").await;
    assert_eq!(v["events"][0]["attempt"], 1, "attempts reset: {v}");
    let (s, v) = api.post("/api/queues/q/dlq/purge", r#"{"ids": [1]}"#).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"purged": 0})));
}

#[tokio::test]
async fn queues_status_and_health_describe_the_broker() {
    let api = Api::new();
    api.post(
        "/api/queues/q/events",
        r#"{"payload": 1, "delay_ms": 1000}"#,
    )
    .await;
    let (s, v) = api.get("/api/queues/q").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "q");
    assert_eq!(
        (v["ready"].clone(), v["delayed"].clone()),
        (json!(0), json!(1))
    );
    api.clock.advance(std::time::Duration::from_millis(1000));
    let (_, v) = api.get("/api/queues").await;
    assert_eq!(v["queues"][0]["ready"], 1);
    assert_eq!(v["queues"][0]["enqueued_total"], 1);
    assert_eq!(
        api.get("/api/health").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        api.get("/api/health/ready").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let (s, v) = api.get("/api/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["wal"]["fsync"], "always");
    assert_eq!(v["queues"][0]["name"], "q");
    assert_eq!(v["config"]["PORT"], "3000");
    api.state.shutdown.cancel();
    let (s, v) = api.get("/api/health/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["status"], "unavailable");
}

#[tokio::test]
async fn with_a_token_every_route_but_health_needs_it() {
    let mut api = Api::new();
    api.state.token = Some(Arc::from("s3cret"));
    let (s, v) = api.get("/api/queues").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "Bearer");
    let req = Request::get("/api/queues")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    let (s, v, headers) = api.send(req).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "wrong");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let req = Request::get("/api/queues")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(req).await.0, StatusCode::OK);
    assert_eq!(api.get("/api/health").await.0, StatusCode::OK);
    assert_eq!(api.get("/api/health/ready").await.0, StatusCode::OK);
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_security_headers() {
    let api = Api::new();
    let (_, _, headers) = api.call(Method::GET, "/api/nothing", None).await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let generated = headers["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a uuid: {generated}");
    let req = Request::get("/api/health")
        .header("x-request-id", "trace-me-42")
        .body(Body::empty())
        .unwrap();
    let (_, _, headers) = api.send(req).await;
    assert_eq!(headers["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn cors_answers_allowed_origins_only_and_preflight_needs_no_token() {
    let mut api = Api::new();
    api.state.origins = Arc::new(vec!["https://app.example".into()]);
    api.state.token = Some(Arc::from("s3cret"));
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/queues/q/events")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    let (s, _, headers) = api.send(preflight("https://app.example")).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let (_, _, headers) = api.send(preflight("https://evil.example")).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_route_templates_and_queue_figures() {
    let api = Api::new();
    api.post(
        "/api/queues/q/events",
        r#"[{"payload": 1}, {"payload": 2}]"#,
    )
    .await;
    api.post("/api/queues/q/lease", r#"{"max": 1}"#).await;
    let req = Request::get("/api/metrics").body(Body::empty()).unwrap();
    let (status, bytes, headers) = api.exchange(req).await;
    assert_eq!(status, StatusCode::OK);
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = String::from_utf8(bytes).unwrap();
    for line in [
        r#"http_requests_total{method="POST",route="/api/queues/{queue}/events",status="201"} 1"#,
        r#"event_broker_queue_depth{queue="q",state="ready"} 1"#,
        r#"event_broker_queue_depth{queue="q",state="in_flight"} 1"#,
        r#"event_broker_queue_events_total{event="enqueued",queue="q"} 2"#,
        r#"event_broker_queue_events_total{event="delivered",queue="q"} 1"#,
        r#"event_broker_queue_utilization{queue="q"} 0.4"#,
        "event_broker_wal_segments 1",
        "event_broker_wal_failed 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains("process_resident_memory_bytes"),
        "process metrics"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn past_the_rate_limit_a_client_gets_429_with_retry_after() {
    let mut api = Api::new();
    let max = std::num::NonZeroU32::new(2).unwrap();
    let window = std::time::Duration::from_secs(60);
    api.state.limiter = Some(Arc::new(event_broker::api::ratelimit::limiter(max, window)));
    assert_eq!(api.get("/api/queues").await.0, StatusCode::OK);
    assert_eq!(api.get("/api/queues").await.0, StatusCode::OK);
    let (s, v, headers) = api.call(Method::GET, "/api/queues", None).await;
    assert_error(
        s,
        &v,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "rate limit",
    );
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=30).contains(&retry_after),
        "one request comes back every 30 s: {retry_after}"
    );
    assert_eq!(
        api.get("/api/health").await.0,
        StatusCode::OK,
        "health is never limited"
    );
}

#[tokio::test]
async fn a_checkpoint_is_made_named_and_refused_when_the_name_is_taken() {
    let api = Api::new();
    api.post("/api/queues/q/events", r#"{"payload": 1}"#).await;
    let (s, v) = api
        .post("/api/admin/checkpoint", r#"{"name": "nightly"}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["path"], "checkpoints/nightly");
    assert_eq!(v["segments"], 1);
    assert!(v["bytes"].as_u64().unwrap() > 24);
    let (s, v) = api
        .post("/api/admin/checkpoint", r#"{"name": "nightly"}"#)
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "conflict", "nightly");
    let (s, v) = api
        .post("/api/admin/checkpoint", r#"{"name": "../up"}"#)
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_request", "name");
    let (s, v) = api.post("/api/admin/checkpoint", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["path"].as_str().unwrap().starts_with("checkpoints/20"),
        "{v}"
    );
}

#[tokio::test]
async fn a_full_disk_gets_507_and_nothing_is_stored_then_writes_resume() {
    let fs = FaultyFs::new();
    let api = Api::on(limits(), fs.clone());
    api.post("/api/queues/q/events", r#"{"payload": 1}"#).await;
    fs.set(|f| f.space_left = Some(10));
    let (s, v) = api
        .post(
            "/api/queues/q/events",
            r#"[{"payload": 2}, {"payload": 3}]"#,
        )
        .await;
    assert_error(s, &v, StatusCode::INSUFFICIENT_STORAGE, "storage_full", "");
    assert_eq!(
        api.get("/api/health/ready").await.0,
        StatusCode::OK,
        "a full disk is not a failure"
    );
    fs.set(|f| f.space_left = None);
    let (s, v) = api.post("/api/queues/q/events", r#"{"payload": 4}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api.post("/api/queues/q/lease", r#"{"max": 10}"#).await;
    let payloads: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(
        payloads,
        [&json!(1), &json!(4)],
        "nothing of the failed batch"
    );
}

#[tokio::test]
async fn an_fsync_failing_for_want_of_space_gets_503_as_readiness_does_not_507() {
    let fs = FaultyFs::new();
    let api = Api::on(limits(), fs.clone());
    api.post("/api/queues/q/events", r#"{"payload": 1}"#).await;
    fs.set(|f| f.fail_next_sync_no_space = true);
    // ENOSPC, but from the fsync: freeing space cannot help, a restart does.
    for payload in [2, 3] {
        let (s, v) = api
            .post(
                "/api/queues/q/events",
                &format!(r#"{{"payload": {payload}}}"#),
            )
            .await;
        assert_error(s, &v, StatusCode::SERVICE_UNAVAILABLE, "unavailable", "");
    }
    assert_eq!(
        api.get("/api/health/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_failed_fsync_gets_503_for_writes_while_reads_and_health_go_on() {
    let fs = FaultyFs::new();
    let api = Api::on(limits(), fs.clone());
    api.post("/api/queues/q/events", r#"{"payload": 1}"#).await;
    fs.set(|f| f.fail_next_sync = true);
    let (s, v) = api.post("/api/queues/q/events", r#"{"payload": 2}"#).await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "fsync",
    );
    let (s, v) = api.post("/api/queues/q/events", r#"{"payload": 3}"#).await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "restart",
    );
    let (s, v) = api.get("/api/health/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["reason"].as_str().unwrap().contains("storage failed"),
        "{v}"
    );
    assert_eq!(api.get("/api/health").await.0, StatusCode::OK);
    let (s, v) = api.post("/api/queues/q/lease", r#"{"max": 10}"#).await;
    assert_eq!(s, StatusCode::OK, "reads go on: {v}");
    assert_eq!(v["events"][0]["payload"], 1);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = Api::new();
    let (s, v) = api.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["openapi"].as_str().unwrap().starts_with('3'),
        "{}",
        v["openapi"]
    );
    let paths = v["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/queues/{queue}/events", "post"),
        ("/api/queues/{queue}/lease", "post"),
        ("/api/queues/{queue}/ack", "post"),
        ("/api/queues/{queue}/nack", "post"),
        ("/api/queues/{queue}/extend", "post"),
        ("/api/queues", "get"),
        ("/api/queues/{queue}", "get"),
        ("/api/queues/{queue}", "put"),
        ("/api/queues/{queue}", "patch"),
        ("/api/queues/{queue}/pause", "post"),
        ("/api/queues/{queue}/resume", "post"),
        ("/api/queues/{queue}/dlq", "get"),
        ("/api/queues/{queue}/dlq/redrive", "post"),
        ("/api/queues/{queue}/dlq/purge", "post"),
        ("/api/health", "get"),
        ("/api/health/ready", "get"),
        ("/api/status", "get"),
        ("/api/metrics", "get"),
        ("/api/admin/checkpoint", "post"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let schemas = v["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("EventIn") && schemas.contains_key("ErrorBody"));
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn while_recovering_the_broker_is_alive_but_not_ready() {
    let call = |uri: &'static str| async move {
        let resp = event_broker::api::recovering_router()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    };
    assert_eq!(
        call("/api/health").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (s, v) = call("/api/health/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        v,
        json!({"status": "unavailable", "reason": "recovering the log"})
    );
    let (s, v) = call("/api/queues").await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "recovering",
    );
}

// Single-threaded: once the poll task yields, it is waiting on its queue.
#[tokio::test(flavor = "current_thread")]
async fn a_long_poll_returns_soon_after_an_enqueue_to_its_queue() {
    let api = Api::new();
    let mut delays = Vec::new();
    for round in 0..5 {
        let app = router(api.state.clone());
        let poll = tokio::spawn(app.oneshot(lease_request(r#"{"wait_ms": 20000}"#)));
        tokio::task::yield_now().await;
        assert!(!poll.is_finished(), "the poll should be waiting");
        let sent = Instant::now();
        let (s, _) = api
            .post(
                "/api/queues/poll/events",
                &format!(r#"{{"payload": {round}}}"#),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let resp = poll.await.unwrap().unwrap();
        delays.push(sent.elapsed());
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["events"][0]["payload"], round);
        let receipt = v["events"][0]["receipt"].as_str().unwrap().to_string();
        api.post(
            "/api/queues/poll/ack",
            &format!(r#"{{"receipts": ["{receipt}"]}}"#),
        )
        .await;
    }
    delays.sort();
    eprintln!("long poll answered after the enqueue was sent: {delays:?}");
    // A generous bound: the figure itself (a few ms, fsync included) is in the README.
    assert!(
        delays[2] < std::time::Duration::from_millis(500),
        "{delays:?}"
    );
}

fn lease_request(body: &str) -> Request<Body> {
    Request::post("/api/queues/poll/lease")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}
