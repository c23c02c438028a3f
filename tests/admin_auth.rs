//! The admin token of API.md's "Authentication, limits and headers", over a
//! real socket: with `ADMIN_TOKEN` set, only it opens the admin routes (a
//! producer's `BROKER_TOKEN` gets 403 there, no token or an unknown one 401),
//! and it opens every other route too. Also the startup warning of a broker
//! that listens beyond loopback without `BROKER_TOKEN`, read from the real
//! binary's log.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api::{assert_error, Api};
use serde_json::Value;

const PRODUCER: &str = "producer-s3cret";
const ADMIN: &str = "admin-s3cret";

/// The routes that need the admin token, with a body each accepts.
const ADMIN_ROUTES: [(Method, &str, Option<&str>); 11] = [
    // First, while the dead event 0 is there to cancel.
    (Method::DELETE, "/api/queues/q/events/0", None),
    (Method::POST, "/api/queues/q/dlq/purge", Some("{}")),
    (Method::POST, "/api/queues/q/dlq/redrive", Some("{}")),
    (Method::POST, "/api/admin/checkpoint", None),
    (
        Method::PUT,
        "/api/queues/q/subscription",
        // A public address: no private-address rule can refuse it, and no
        // worker runs here to call it.
        Some(r#"{"url": "https://93.184.215.14/hook"}"#),
    ),
    (Method::DELETE, "/api/queues/q/subscription", None),
    (Method::PUT, "/api/queues/q", Some(r#"{"max_retries": 0}"#)),
    (Method::PATCH, "/api/queues/q", Some(r#"{"max_size": 100}"#)),
    (Method::POST, "/api/queues/q/pause", None),
    (Method::POST, "/api/queues/q/resume", None),
    // Last, since it takes the queue away.
    (Method::DELETE, "/api/queues/q", None),
];

/// A broker with both tokens set, and one dead event in queue `q`.
async fn both_tokens() -> Api {
    let mut api = Api::new();
    api.state.token = Some(Arc::from(PRODUCER));
    api.state.admin_token = Some(Arc::from(ADMIN));
    let token = Some(PRODUCER);
    let (s, v) = call(
        &api,
        Method::POST,
        "/api/queues/q/events",
        Some(r#"{"payload": 1}"#),
        token,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = call(&api, Method::POST, "/api/queues/q/lease", None, token).await;
    let nack = format!(r#"{{"receipts": [{}]}}"#, v["events"][0]["receipt"]);
    // No retries in `Api::new`: one nack makes the event dead.
    let (s, v) = call(&api, Method::POST, "/api/queues/q/nack", Some(&nack), token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    api
}

/// How many dead events queue `q` has.
async fn dead(api: &Api) -> usize {
    let (s, v) = call(api, Method::GET, "/api/queues/q/dlq", None, Some(ADMIN)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().len()
}

/// One request with `token` as its bearer token, when given.
async fn call(
    api: &Api,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let (s, v, _) = call_with_headers(api, method, uri, body, token).await;
    (s, v)
}

async fn call_with_headers(
    api: &Api,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Body::from(body.unwrap_or("").to_string()))
        .unwrap();
    api.send(req).await
}

/// Enqueues, leases and acks one event with `token`.
async fn produce_and_consume(api: &Api, token: Option<&str>) {
    let (s, v) = call(
        api,
        Method::POST,
        "/api/queues/p/events",
        Some(r#"{"payload": 2}"#),
        token,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "enqueue: {v}");
    let (s, v) = call(api, Method::POST, "/api/queues/p/lease", Some("{}"), token).await;
    assert_eq!(s, StatusCode::OK, "lease: {v}");
    let receipt = v["events"][0]["receipt"]
        .as_str()
        .expect("a receipt")
        .to_string();
    let ack = format!(r#"{{"receipts": ["{receipt}"]}}"#);
    let (s, v) = call(api, Method::POST, "/api/queues/p/ack", Some(&ack), token).await;
    assert_eq!(s, StatusCode::OK, "ack: {v}");
}

#[tokio::test]
async fn a_producer_token_produces_and_consumes_but_gets_403_on_every_admin_route() {
    let api = both_tokens().await;
    produce_and_consume(&api, Some(PRODUCER)).await;
    for uri in ["/api/queues/q", "/api/queues/q/dlq", "/api/status"] {
        let (s, v) = call(&api, Method::GET, uri, None, Some(PRODUCER)).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    }
    // Reading a subscription is not an admin route: 404 for none, not 403.
    let (s, v) = call(
        &api,
        Method::GET,
        "/api/queues/q/subscription",
        None,
        Some(PRODUCER),
    )
    .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found", "no subscription");

    for (method, uri, body) in ADMIN_ROUTES {
        let (s, v, headers) =
            call_with_headers(&api, method.clone(), uri, body, Some(PRODUCER)).await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden", "ADMIN_TOKEN");
        assert!(
            headers.get(header::WWW_AUTHENTICATE).is_none(),
            "{method} {uri}"
        );
    }
    // Refused before anything was done: the dead event is neither purged
    // nor redriven, no subscription was set, and the queue's settings and
    // pause are as they were.
    assert_eq!(dead(&api).await, 1);
    let (s, _) = call(
        &api,
        Method::GET,
        "/api/queues/q/subscription",
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = call(&api, Method::GET, "/api/queues/q", None, Some(ADMIN)).await;
    assert_eq!(
        (&v["paused"], &v["settings"]["max_size"]),
        (&serde_json::json!(false), &serde_json::json!(5)),
        "{v}"
    );
}

#[tokio::test]
async fn the_admin_token_opens_every_route() {
    let api = both_tokens().await;
    produce_and_consume(&api, Some(ADMIN)).await;
    admin_routes_answer(&api, ADMIN).await;
    for uri in ["/api/queues", "/api/status", "/api/metrics"] {
        let (s, _) = call(&api, Method::GET, uri, None, Some(ADMIN)).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn no_token_or_an_unknown_one_gets_401_on_admin_and_other_routes_alike() {
    let api = both_tokens().await;
    let other = (
        Method::POST,
        "/api/queues/q/events",
        Some(r#"{"payload": 3}"#),
    );
    for (method, uri, body) in ADMIN_ROUTES.into_iter().chain([other]) {
        let (s, v, headers) = call_with_headers(&api, method.clone(), uri, body, None).await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "Bearer");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer",
            "{method} {uri}"
        );
        let (s, v) = call(&api, method.clone(), uri, body, Some("guess")).await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "wrong");
    }
    let (s, _) = call(&api, Method::GET, "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn with_only_the_admin_token_set_producers_need_none_but_admin_routes_do() {
    let mut api = Api::new();
    api.state.admin_token = Some(Arc::from(ADMIN));
    produce_and_consume(&api, None).await;
    for (method, uri, body) in ADMIN_ROUTES {
        let (s, v) = call(&api, method.clone(), uri, body, None).await;
        assert_error(
            s,
            &v,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "ADMIN_TOKEN",
        );
        let (s, v) = call(&api, method.clone(), uri, body, Some(PRODUCER)).await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized", "wrong");
    }
    let (s, v) = call(
        &api,
        Method::POST,
        "/api/queues/p/dlq/purge",
        Some("{}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn with_only_the_broker_token_set_it_opens_the_admin_routes_as_before() {
    let mut api = Api::new();
    api.state.token = Some(Arc::from(PRODUCER));
    let (s, _) = call(
        &api,
        Method::POST,
        "/api/queues/q/events",
        Some(r#"{"payload": 1}"#),
        Some(PRODUCER),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    admin_routes_answer(&api, PRODUCER).await;
}

/// The lines the broker logs up to "serving", bound to `bind_addr` with
/// `settings` added.
fn startup_log(bind_addr: &str, settings: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::server::command(dir.path(), common::server::free_port());
    command
        .env("BIND_ADDR", bind_addr)
        .envs(settings.iter().copied());
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the broker");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let serving = line.contains(r#""message":"serving""#);
        lines.push(line);
        if serving {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lines.last().is_some_and(|l| l.contains("serving")),
        "{lines:#?}"
    );
    lines
}

fn warnings(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|l| l["level"] == "WARN")
        .collect()
}

#[test]
fn a_broker_on_every_address_without_broker_token_warns_once_how_to_close_it() {
    let found = warnings(&startup_log("0.0.0.0", &[]));
    assert_eq!(found.len(), 1, "{found:#?}");
    let message = found[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains("set BROKER_TOKEN"), "{message}");
    assert!(message.contains("BIND_ADDR=127.0.0.1"), "{message}");
    assert_eq!(found[0]["fields"]["bind_addr"], "0.0.0.0");
}

#[test]
fn a_broker_on_loopback_or_with_a_token_logs_no_warning() {
    assert_eq!(
        warnings(&startup_log("127.0.0.1", &[])),
        Vec::<Value>::new()
    );
    let token = [("BROKER_TOKEN", PRODUCER)];
    assert_eq!(
        warnings(&startup_log("0.0.0.0", &token)),
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn the_openapi_document_marks_exactly_the_admin_routes() {
    let api = Api::new();
    let (s, doc) = call(&api, Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let mut marked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"] == serde_json::json!([{"admin": []}]) {
                assert!(op["responses"].get("403").is_some(), "{method} {path}");
                marked.push(format!("{} {path}", method.to_uppercase()));
            } else {
                assert!(op["responses"].get("403").is_none(), "{method} {path}");
            }
        }
    }
    let mut admin: Vec<String> = ADMIN_ROUTES
        .iter()
        .map(|(method, uri, _)| {
            let path = format!("{uri}/")
                .replace("/q/", "/{queue}/")
                .replace("/events/0/", "/events/{id}/");
            format!("{method} {}", path.trim_end_matches('/'))
        })
        .collect();
    marked.sort();
    admin.sort();
    assert_eq!(marked, admin);
}

/// Every admin route, called with `token`, does its work.
async fn admin_routes_answer(api: &Api, token: &str) {
    let want = [
        StatusCode::NO_CONTENT,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
    ];
    for ((method, uri, body), want) in ADMIN_ROUTES.into_iter().zip(want) {
        let (s, v) = call(api, method.clone(), uri, body, Some(token)).await;
        assert_eq!(s, want, "{method} {uri}: {v}");
    }
}
