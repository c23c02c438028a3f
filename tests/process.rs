//! The real binary on a free loopback port: SIGTERM under load exits cleanly
//! and keeps every acknowledged write; SIGKILL under load loses no
//! acknowledged event.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
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
