//! Managing queues against the real binary on a free loopback port: a
//! queue deleted under load answers its producers and consumers nothing
//! worse than `not_found`, and none of it comes back after a kill; the
//! priority order and TTL expiry of events survive a kill.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::server::{call, send, Server};
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn ids(v: &Value, key: &str) -> Vec<u64> {
    let list = v[key].as_array().unwrap_or_else(|| panic!("no {key}: {v}"));
    list.iter()
        .map(|e| e.as_u64().or_else(|| e["id"].as_u64()).unwrap())
        .collect()
}

/// Every id of the queue's events in any state, by browsing; none for a
/// queue that does not exist.
fn browse_all(client: &Client, queue_url: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let url = match after {
            Some(a) => format!("{queue_url}/events?limit=1000&payload=false&after={a}"),
            None => format!("{queue_url}/events?limit=1000&payload=false"),
        };
        let (status, v) = send(client, Method::GET, &url, None);
        if status == StatusCode::NOT_FOUND {
            return out;
        }
        assert_eq!(status, StatusCode::OK, "{v}");
        out.extend(ids(&v, "events"));
        match v["next"].as_u64() {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// What the load on a queue met that a user would call an error.
#[derive(Default)]
struct Met {
    /// Requests answered with a status the contract does not give them.
    errors: Vec<String>,
    /// Ids whose enqueue was answered before the delete was sent.
    before_delete: BTreeSet<u64>,
    /// Requests sent once the delete was answered, and answered.
    after_delete: usize,
}

/// What the load met, and a signal at each answer.
type Seen = Arc<(Mutex<Met>, Condvar)>;

/// Waits until what the load met passes `enough`, for at most a minute.
fn wait_for(seen: &Seen, what: &str, enough: impl Fn(&Met) -> bool) {
    let (met, answered) = &**seen;
    let (_met, waited) = answered
        .wait_timeout_while(met.lock().unwrap(), Duration::from_secs(60), |m| !enough(m))
        .unwrap();
    assert!(!waited.timed_out(), "{what}");
}

#[test]
fn a_queue_deleted_under_load_answers_not_found_and_stays_gone_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new();
    let doomed = format!("{}/api/queues/doomed", server.base);
    let kept = format!("{}/api/queues/kept", server.base);
    let kept_ids = ids(
        &call(
            &client,
            Method::POST,
            &format!("{kept}/events"),
            Some(json!([{"payload": "a"}, {"payload": "b"}])),
        ),
        "ids",
    );

    let deleting = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let mut threads = Vec::new();
    for p in 0..2 {
        let (url, deleting, deleted, stop, seen) = (
            doomed.clone(),
            deleting.clone(),
            deleted.clone(),
            stop.clone(),
            seen.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let client = Client::new();
            while !stop.load(Ordering::SeqCst) {
                let sent_before = !deleting.load(Ordering::SeqCst);
                let sent_after = deleted.load(Ordering::SeqCst);
                let batch: Vec<Value> = (0..5).map(|i| json!({"payload": [p, i]})).collect();
                let (status, v) = send(
                    &client,
                    Method::POST,
                    &format!("{url}/events"),
                    Some(Value::Array(batch)),
                );
                let (met, answered) = &*seen;
                let mut met = met.lock().unwrap();
                if status != StatusCode::CREATED {
                    met.errors.push(format!("enqueue: {status} {v}"));
                } else if sent_before && !deleting.load(Ordering::SeqCst) {
                    met.before_delete.extend(ids(&v, "ids"));
                }
                met.after_delete += usize::from(sent_after);
                answered.notify_all();
            }
        }));
    }
    for _ in 0..2 {
        let (url, deleting, stop, seen) =
            (doomed.clone(), deleting.clone(), stop.clone(), seen.clone());
        threads.push(std::thread::spawn(move || {
            let client = Client::new();
            let met = &seen.0;
            while !stop.load(Ordering::SeqCst) {
                let (status, v) = send(
                    &client,
                    Method::POST,
                    &format!("{url}/lease"),
                    Some(json!({"max": 10, "wait_ms": 100})),
                );
                if status != StatusCode::OK {
                    met.lock()
                        .unwrap()
                        .errors
                        .push(format!("lease: {status} {v}"));
                    continue;
                }
                let receipts: Vec<Value> = v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["receipt"].clone())
                    .collect();
                if receipts.is_empty() {
                    continue;
                }
                let (status, v) = send(
                    &client,
                    Method::POST,
                    &format!("{url}/ack"),
                    Some(json!({"receipts": receipts})),
                );
                let mut met = met.lock().unwrap();
                match status {
                    StatusCode::OK | StatusCode::CONFLICT => {}
                    _ => met.errors.push(format!("ack: {status} {v}")),
                }
                for r in v["results"].as_array().into_iter().flatten() {
                    match r["status"].as_str() {
                        Some("ok") => {}
                        Some("not_found") if deleting.load(Ordering::SeqCst) => {}
                        other => met.errors.push(format!("ack result {other:?}: {v}")),
                    }
                }
            }
        }));
    }

    // Under load for a while, then deleted; a delete that meets an event
    // being changed answers 409 and is tried again, as API.md says.
    wait_for(&seen, "the load made too little progress", |m| {
        m.before_delete.len() >= 5_000
    });
    // A lease surely out when the delete comes.
    let held = call(
        &client,
        Method::POST,
        &format!("{doomed}/lease"),
        Some(json!({"visibility_timeout_ms": 600000, "wait_ms": 30000})),
    );
    let held = held["events"][0]["receipt"].clone();
    deleting.store(true, Ordering::SeqCst);
    loop {
        let (status, v) = send(&client, Method::DELETE, &doomed, None);
        match status {
            StatusCode::NO_CONTENT => break,
            StatusCode::CONFLICT => assert_eq!(v["error"]["code"], "conflict", "{v}"),
            _ => panic!("delete: {status} {v}"),
        }
    }
    // The load goes on against the fresh queue for a while.
    deleted.store(true, Ordering::SeqCst);
    wait_for(&seen, "the load stopped after the delete", |m| {
        m.after_delete >= 40
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let met = std::mem::take(&mut *seen.0.lock().unwrap());
    assert_eq!(met.errors, Vec::<String>::new(), "errors besides not_found");
    let (status, v) = send(
        &client,
        Method::POST,
        &format!("{doomed}/ack"),
        Some(json!({"receipts": [held]})),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["results"][0]["status"], "not_found", "{v}");

    let gone: Vec<u64> = browse_all(&client, &doomed)
        .into_iter()
        .filter(|id| met.before_delete.contains(id))
        .collect();
    assert_eq!(gone, Vec::<u64>::new(), "events enqueued before the delete");
    drop(server);
    let server = Server::start(dir.path());
    let doomed = format!("{}/api/queues/doomed", server.base);
    let kept = format!("{}/api/queues/kept", server.base);
    let back: Vec<u64> = browse_all(&client, &doomed)
        .into_iter()
        .filter(|id| *id <= *met.before_delete.last().unwrap())
        .collect();
    assert_eq!(
        back,
        Vec::<u64>::new(),
        "events of before the delete came back"
    );
    assert_eq!(
        browse_all(&client, &kept),
        kept_ids,
        "the other queue is whole"
    );
    let (_, v) = send(&client, Method::GET, &format!("{doomed}/dlq"), None);
    let dead = v["events"].as_array().map_or(0, Vec::len);
    assert_eq!(dead, 0, "{v}");
}

#[test]
fn priority_order_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new();
    let url = format!("{}/api/queues/ranked", server.base);
    let priorities = [0, 9, 255, 9, 0, 128, 1, 255];
    let batch: Vec<Value> = priorities
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"payload": i, "priority": p}))
        .collect();
    let enqueued = ids(
        &call(
            &client,
            Method::POST,
            &format!("{url}/events"),
            Some(Value::Array(batch)),
        ),
        "ids",
    );
    // One retried before the kill keeps its priority.
    let first = call(
        &client,
        Method::POST,
        &format!("{url}/lease"),
        Some(json!({})),
    );
    assert_eq!(first["events"][0]["id"], enqueued[2]);
    let receipt = first["events"][0]["receipt"].clone();
    call(
        &client,
        Method::POST,
        &format!("{url}/nack"),
        Some(json!({"receipts": [receipt], "delay_ms": 0})),
    );
    drop(server);

    let server = Server::start(dir.path());
    let url = format!("{}/api/queues/ranked", server.base);
    let leased = call(
        &client,
        Method::POST,
        &format!("{url}/lease"),
        Some(json!({"max": 100})),
    );
    let order: Vec<u64> = ids(&leased, "events");
    let mut want: Vec<(std::cmp::Reverse<u8>, u64)> = priorities
        .iter()
        .zip(&enqueued)
        .map(|(p, id)| (std::cmp::Reverse(*p as u8), *id))
        .collect();
    // The nacked one became visible again after the others: last of its priority.
    want.sort_by_key(|(p, id)| (*p, *id == enqueued[2], *id));
    let want: Vec<u64> = want.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, want, "{leased}");
    let shown: Vec<u64> = leased["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["priority"].as_u64().unwrap())
        .collect();
    assert_eq!(shown, [255, 255, 128, 9, 9, 1, 0, 0]);
}

#[test]
fn ttl_expiry_survives_a_kill_and_what_expired_while_down_is_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REAPER_INTERVAL_MS", "50")]);
    let client = Client::new();
    let dropped = format!("{}/api/queues/short", server.base);
    let dead = format!("{}/api/queues/short-dlq", server.base);
    call(
        &client,
        Method::PUT,
        &dead,
        Some(json!({"message_ttl_ms": 400, "dead_letter_expired": true})),
    );
    let answer = call(
        &client,
        Method::POST,
        &format!("{dropped}/events"),
        Some(
            json!([{"payload": 1, "ttl_ms": 400}, {"payload": 2}, {"payload": 3, "ttl_ms": 2_592_000_000u64}]),
        ),
    );
    let short_ids = ids(&answer, "ids");
    assert!(
        answer["expires_at"][0].is_string() && answer["expires_at"][1].is_null(),
        "{answer}"
    );
    let dlq_ids = ids(
        &call(
            &client,
            Method::POST,
            &format!("{dead}/events"),
            Some(json!([{"payload": 4}])),
        ),
        "ids",
    );

    // Expired by the reaper while up, then killed.
    let started = Instant::now();
    while browse_all(&client, &dropped) != [short_ids[1], short_ids[2]] {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing expired"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    while ids(
        &call(&client, Method::GET, &format!("{dead}/dlq"), None),
        "events",
    ) != dlq_ids
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing dead-lettered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Enqueued just before the kill, to expire while the broker is down.
    let late = call(
        &client,
        Method::POST,
        &format!("{dropped}/events"),
        Some(json!({"payload": 5, "ttl_ms": 300})),
    );
    drop(server);
    let expires_at = late["expires_at"].as_str().unwrap().to_string();
    let until = humantime::parse_rfc3339(&expires_at).unwrap();
    while SystemTime::now() <= until + Duration::from_millis(1) {
        std::thread::sleep(Duration::from_millis(20));
    }

    let server = Server::start_with(dir.path(), &[("REAPER_INTERVAL_MS", "50")]);
    let dropped = format!("{}/api/queues/short", server.base);
    let dead = format!("{}/api/queues/short-dlq", server.base);
    let leased = call(
        &client,
        Method::POST,
        &format!("{dropped}/lease"),
        Some(json!({"max": 10})),
    );
    assert_eq!(
        ids(&leased, "events"),
        [short_ids[1], short_ids[2]],
        "past its expiry: never delivered"
    );
    let dlq = call(&client, Method::GET, &format!("{dead}/dlq"), None);
    assert_eq!(ids(&dlq, "events"), dlq_ids, "{dlq}");
    assert_eq!(dlq["events"][0]["last_error"], "expired");
    let started = Instant::now();
    loop {
        let left = browse_all(&client, &dropped);
        if left == [short_ids[1], short_ids[2]] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = client
        .get(format!("{}/api/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"event_broker_queue_events_total{event="ttl_expired",queue="short"} 1"#),
        "the one expired since this start: {metrics}"
    );
}
