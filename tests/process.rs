//! The real binary on a free loopback port: SIGTERM under load exits cleanly
//! and keeps every acknowledged write; SIGKILL under load loses no
//! acknowledged event; a paused queue under long-polling consumers delivers
//! nothing until it is resumed, and its settings survive SIGKILL.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::server::Server;
use serde_json::{json, Value};

const QUEUE: &str = "load";

fn post(client: &reqwest::blocking::Client, url: &str, body: Value) -> Option<Value> {
    let resp = client.post(url).json(&body).send().ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().ok()
}

/// What the load saw acknowledged.
#[derive(Default)]
struct Acked {
    enqueued: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

/// What the load saw acknowledged, and a signal at each answer.
type Seen = Arc<(Mutex<Acked>, Condvar)>;

/// Producers (and consumers, when `consume`) until `stop`; join the handle
/// before reading what was acknowledged, so no answer is still on its way.
fn load(base: &str, consume: bool, stop: &Arc<AtomicBool>) -> (Seen, std::thread::JoinHandle<()>) {
    let acked: Seen = Arc::default();
    let mut threads = Vec::new();
    for p in 0..4 {
        let (base, stop, acked) = (base.to_string(), stop.clone(), acked.clone());
        threads.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let url = format!("{base}/api/queues/{QUEUE}/events");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Value> = (0..10)
                    .map(|i| json!({"payload": {"p": p, "n": n, "i": i}}))
                    .collect();
                n += 1;
                if let Some(v) = post(&client, &url, Value::Array(batch)) {
                    let ids = v["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|id| id.as_u64().unwrap());
                    let (seen, answered) = &*acked;
                    seen.lock().unwrap().enqueued.extend(ids);
                    answered.notify_all();
                }
            }
        }));
    }
    for _ in 0..(if consume { 2 } else { 0 }) {
        let (base, stop, acked) = (base.to_string(), stop.clone(), acked.clone());
        threads.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(v) = post(
                    &client,
                    &format!("{base}/api/queues/{QUEUE}/lease"),
                    json!({"max": 20}),
                ) else {
                    continue;
                };
                let events = v["events"].as_array().unwrap().clone();
                if events.is_empty() {
                    continue;
                }
                let receipts: Vec<&str> = events
                    .iter()
                    .map(|e| e["receipt"].as_str().unwrap())
                    .collect();
                if let Some(v) = post(
                    &client,
                    &format!("{base}/api/queues/{QUEUE}/ack"),
                    json!({"receipts": receipts}),
                ) {
                    let (seen, answered) = &*acked;
                    let mut seen = seen.lock().unwrap();
                    for (e, r) in events.iter().zip(v["results"].as_array().unwrap()) {
                        if r["status"] == "ok" {
                            seen.acked.insert(e["id"].as_u64().unwrap());
                        }
                    }
                    answered.notify_all();
                }
            }
        }));
    }
    let all = std::thread::spawn(move || {
        for t in threads {
            t.join().unwrap();
        }
    });
    (acked, all)
}

/// Leases and acks everything left; the ids seen.
fn drain(base: &str) -> BTreeSet<u64> {
    let client = reqwest::blocking::Client::new();
    let mut seen = BTreeSet::new();
    loop {
        let v = post(
            &client,
            &format!("{base}/api/queues/{QUEUE}/lease"),
            json!({"max": 1000}),
        )
        .expect("lease");
        let events = v["events"].as_array().unwrap();
        if events.is_empty() {
            return seen;
        }
        let receipts: Vec<&str> = events
            .iter()
            .map(|e| e["receipt"].as_str().unwrap())
            .collect();
        post(
            &client,
            &format!("{base}/api/queues/{QUEUE}/ack"),
            json!({"receipts": receipts}),
        )
        .expect("ack");
        seen.extend(events.iter().map(|e| e["id"].as_u64().unwrap()));
    }
}

/// Runs load against `server` until it has acknowledged `enqueues`
/// enqueues (and, when consuming, a quarter as many acks), sends `signal`,
/// and waits for the exit and for every answer the load got.
fn interrupt(
    mut server: Server,
    signal: i32,
    consume: bool,
    enqueues: usize,
) -> (Acked, ExitStatus) {
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, load) = load(&server.base, consume, &stop);
    {
        let (seen, answered) = &*acked;
        let short = |a: &mut Acked| {
            a.enqueued.len() < enqueues || (consume && a.acked.len() < enqueues / 4)
        };
        let (_seen, waited) = answered
            .wait_timeout_while(seen.lock().unwrap(), Duration::from_secs(60), short)
            .unwrap();
        assert!(!waited.timed_out(), "the load made too little progress");
    }
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acked = std::mem::take(&mut *acked.0.lock().unwrap());
    (acked, status)
}

#[test]
fn sigterm_under_load_exits_0_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (acked, status) = interrupt(server, libc::SIGTERM, true, 2_000);
    assert_eq!(status.code(), Some(0), "{status}");

    let server = Server::start(dir.path());
    let left = drain(&server.base);
    let want: BTreeSet<u64> = acked.enqueued.difference(&acked.acked).copied().collect();
    let missing: Vec<_> = want.difference(&left).collect();
    assert!(
        missing.is_empty(),
        "acknowledged enqueues lost: {missing:?}"
    );
    let back: Vec<_> = acked.acked.intersection(&left).collect();
    assert!(back.is_empty(), "acknowledged acks came back: {back:?}");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let server = Server::start(dir.path());
        let (acked, _) = interrupt(server, libc::SIGKILL, false, 1_000 + 700 * round);

        let server = Server::start(dir.path());
        let left = drain(&server.base);
        let missing: Vec<_> = acked.enqueued.difference(&left).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged events lost: {missing:?}"
        );
    }
}

#[test]
fn healthcheck_command_exits_0_only_when_the_broker_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let port = server.port().to_string();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_event-broker"))
            .arg("healthcheck")
            .env("PORT", &port)
            .env("LOG_LEVEL", "off")
            .output()
            .unwrap()
            .status
    };
    assert!(check().success());
    drop(server);
    assert!(!check().success());
}

/// Where a paused-queue run is: consuming, paused (the pause answered), or
/// resuming (the resume about to be sent).
const RUNNING: u8 = 0;
const PAUSED: u8 = 1;
const RESUMING: u8 = 2;

/// What one long-polling consumer of a paused-queue run saw.
#[derive(Default)]
struct Polled {
    /// Ids it leased and acked.
    acked: Vec<u64>,
    /// Polls sent once the pause was answered that answered empty.
    empty_while_paused: usize,
    /// Events got by polls sent once the pause was answered, before the resume.
    leased_while_paused: usize,
    /// Events it got after the resume.
    after_resume: usize,
}

/// What every consumer saw, by consumer, and a signal at each answer.
type Consumers = Arc<(Mutex<Vec<Polled>>, Condvar)>;

/// Consumer `me`: long-polls `queue` in rounds of a second and acks what
/// it gets, until `done`.
fn long_poller(
    base: String,
    queue: &'static str,
    me: usize,
    phase: Arc<AtomicU8>,
    done: Arc<AtomicBool>,
    seen: Consumers,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        let lease = format!("{base}/api/queues/{queue}/lease");
        while !done.load(Ordering::SeqCst) {
            let sent_in = phase.load(Ordering::SeqCst);
            let Some(v) = post(&client, &lease, json!({"max": 10, "wait_ms": 1000})) else {
                continue;
            };
            let got_in = phase.load(Ordering::SeqCst);
            let events = v["events"].as_array().unwrap().clone();
            let (all, answered) = &*seen;
            {
                let polled = &mut all.lock().unwrap()[me];
                match (sent_in, got_in, events.is_empty()) {
                    (PAUSED, PAUSED, true) => polled.empty_while_paused += 1,
                    (PAUSED, PAUSED, false) => polled.leased_while_paused += events.len(),
                    (_, RESUMING, false) => polled.after_resume += events.len(),
                    _ => {}
                }
                answered.notify_all();
            }
            if events.is_empty() {
                continue;
            }
            let receipts: Vec<&str> = events
                .iter()
                .map(|e| e["receipt"].as_str().unwrap())
                .collect();
            let url = format!("{base}/api/queues/{queue}/ack");
            let acked =
                post(&client, &url, json!({"receipts": receipts})).expect("an ack, paused or not");
            let polled = &mut all.lock().unwrap()[me];
            for (e, r) in events.iter().zip(acked["results"].as_array().unwrap()) {
                assert_eq!(r["status"], "ok", "{acked}");
                polled.acked.push(e["id"].as_u64().unwrap());
            }
            answered.notify_all();
        }
    })
}

/// A request that must succeed; its JSON answer.
fn call(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().expect("the broker answers");
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    answer.json().expect("a JSON answer")
}

/// Enqueues the payloads `from..from + n` on `queue`; their ids.
fn enqueue_range(
    client: &reqwest::blocking::Client,
    queue_url: &str,
    from: u64,
    n: u64,
) -> Vec<u64> {
    let batch: Vec<Value> = (from..from + n).map(|i| json!({"payload": i})).collect();
    let url = format!("{queue_url}/events");
    let v = call(
        client,
        reqwest::Method::POST,
        &url,
        Some(Value::Array(batch)),
    );
    let ids = v["ids"].as_array().unwrap();
    ids.iter().map(|id| id.as_u64().unwrap()).collect()
}

/// Waits until every consumer's record passes `enough`.
fn wait_for(seen: &Consumers, what: &str, enough: impl Fn(&[Polled]) -> bool) {
    let (all, answered) = &**seen;
    let (_all, waited) = answered
        .wait_timeout_while(all.lock().unwrap(), Duration::from_secs(60), |all| {
            !enough(all)
        })
        .unwrap();
    assert!(!waited.timed_out(), "{what}");
}

#[test]
fn a_paused_queue_delivers_nothing_until_resumed_and_its_settings_survive_a_kill() {
    const CONSUMERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::blocking::Client::new();
    let queue_url = format!("{}/api/queues/paused-load", server.base);
    let settings = json!({"visibility_timeout_ms": 60000, "max_retries": 2, "max_size": 5000});
    call(&client, reqwest::Method::PUT, &queue_url, Some(settings));
    let mut enqueued = enqueue_range(&client, &queue_url, 0, 300);

    let phase = Arc::new(AtomicU8::new(RUNNING));
    let done = Arc::new(AtomicBool::new(false));
    let seen: Consumers = Arc::new((
        Mutex::new((0..CONSUMERS).map(|_| Polled::default()).collect()),
        Condvar::new(),
    ));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|me| {
            let (base, phase, done, seen) = (
                server.base.clone(),
                phase.clone(),
                done.clone(),
                seen.clone(),
            );
            long_poller(base, "paused-load", me, phase, done, seen)
        })
        .collect();
    // Paused while the consumers work through the load; enqueues go on.
    wait_for(&seen, "a consumer acked nothing", |all| {
        all.iter().all(|p| !p.acked.is_empty())
    });
    let paused = call(
        &client,
        reqwest::Method::POST,
        &format!("{queue_url}/pause"),
        None,
    );
    assert_eq!(paused["paused"], true, "{paused}");
    phase.store(PAUSED, Ordering::SeqCst);
    enqueued.extend(enqueue_range(&client, &queue_url, 300, 100));
    wait_for(
        &seen,
        "a consumer's poll never answered while paused",
        |all| all.iter().all(|p| p.empty_while_paused > 0),
    );

    // Resumed while every consumer has a long poll out.
    phase.store(RESUMING, Ordering::SeqCst);
    let resumed = call(
        &client,
        reqwest::Method::POST,
        &format!("{queue_url}/resume"),
        None,
    );
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert!(resumed["ready"].as_u64().unwrap() >= 100, "{resumed}");
    let total = enqueued.len();
    wait_for(&seen, "the events were not all acked", |all| {
        all.iter().map(|p| p.acked.len()).sum::<usize>() >= total
    });
    done.store(true, Ordering::SeqCst);
    for consumer in consumers {
        consumer.join().unwrap();
    }
    let mut acked = Vec::new();
    for (me, p) in seen.0.lock().unwrap().iter().enumerate() {
        assert_eq!(
            p.leased_while_paused, 0,
            "consumer {me} leased while paused"
        );
        assert!(
            p.after_resume > 0,
            "consumer {me} got nothing after the resume"
        );
        acked.extend(p.acked.iter().copied());
    }
    acked.sort_unstable();
    enqueued.sort_unstable();
    assert_eq!(acked, enqueued, "every event acked once");

    // Paused again, then killed: the settings and the pause are in the log.
    call(
        &client,
        reqwest::Method::POST,
        &format!("{queue_url}/pause"),
        None,
    );
    drop(server);
    let server = Server::start(dir.path());
    let queue_url = format!("{}/api/queues/paused-load", server.base);
    let shown = call(&client, reqwest::Method::GET, &queue_url, None);
    let s = &shown["settings"];
    assert_eq!(
        (
            &shown["paused"],
            &s["visibility_timeout_ms"],
            &s["max_retries"],
            &s["max_size"]
        ),
        (&json!(true), &json!(60000), &json!(2), &json!(5000)),
        "{shown}"
    );
    enqueue_range(&client, &queue_url, 400, 1);
    let lease_url = format!("{queue_url}/lease");
    let lease = call(&client, reqwest::Method::POST, &lease_url, Some(json!({})));
    assert_eq!(
        lease,
        json!({"events": []}),
        "leased from a queue paused before the kill"
    );
}
