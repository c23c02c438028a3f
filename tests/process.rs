//! The real binary on a free loopback port: SIGTERM under load exits cleanly
//! and keeps every acknowledged write; SIGKILL under load loses no
//! acknowledged event.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const QUEUE: &str = "load";

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_event-broker"))
            .env("PORT", port.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("DATA_DIR", data_dir)
            .env("WAL_FSYNC", "always")
            .env("WAL_SEGMENT_BYTES", "1048576")
            .env("SHUTDOWN_TIMEOUT_MS", "5000")
            .env("QUEUE_MAX_SIZE", "1000000")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the broker");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready();
        server
    }

    /// Polls readiness: the process needs a moment to bind and recover.
    fn wait_ready(&self) {
        let client = reqwest::blocking::Client::new();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let ready = client
                .get(format!("{}/api/health/ready", self.base))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the broker did not become ready");
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "the broker did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _already_gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

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

/// Producers (and consumers, when `consume`) until `stop`; join the handle
/// before reading what was acknowledged, so no answer is still on its way.
fn load(
    base: &str,
    consume: bool,
    stop: &Arc<AtomicBool>,
) -> (Arc<Mutex<Acked>>, std::thread::JoinHandle<()>) {
    let acked = Arc::new(Mutex::new(Acked::default()));
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
                    acked.lock().unwrap().enqueued.extend(ids);
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
                    let mut acked = acked.lock().unwrap();
                    for (e, r) in events.iter().zip(v["results"].as_array().unwrap()) {
                        if r["status"] == "ok" {
                            acked.acked.insert(e["id"].as_u64().unwrap());
                        }
                    }
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

/// Runs load against `server` for `run_for`, sends `signal`, and waits for
/// the exit and for every answer the load got.
fn interrupt(
    mut server: Server,
    signal: i32,
    consume: bool,
    run_for: Duration,
) -> (Acked, ExitStatus) {
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, load) = load(&server.base, consume, &stop);
    std::thread::sleep(run_for);
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let n = acked.enqueued.len();
    assert!(n > 100, "little load: {n}");
    (acked, status)
}

#[test]
fn sigterm_under_load_exits_0_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (acked, status) = interrupt(server, libc::SIGTERM, true, Duration::from_millis(800));
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
        let run_for = Duration::from_millis(500 + 200 * round);
        let (acked, _) = interrupt(server, libc::SIGKILL, false, run_for);

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
    let port = server.base.rsplit(':').next().unwrap().to_string();
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

#[test]
fn a_long_poll_returns_soon_after_an_enqueue_to_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::blocking::Client::new();
    let mut delays = Vec::new();
    for round in 0..5 {
        let base = server.base.clone();
        let poll = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let url = format!("{base}/api/queues/poll/lease");
            let v = post(&client, &url, json!({"wait_ms": 20_000})).expect("lease");
            (Instant::now(), v)
        });
        // Give the poll time to start waiting; the figure is measured from
        // sending the enqueue (its fsync included), so this wait does not enter it.
        std::thread::sleep(Duration::from_millis(200));
        let url = format!("{}/api/queues/poll/events", server.base);
        let sent = Instant::now();
        post(&client, &url, json!({"payload": round})).expect("enqueue");
        let (returned, v) = poll.join().unwrap();
        assert_eq!(v["events"][0]["payload"], round);
        let receipt = v["events"][0]["receipt"].as_str().unwrap();
        let url = format!("{}/api/queues/poll/ack", server.base);
        post(&client, &url, json!({"receipts": [receipt]})).expect("ack");
        delays.push(returned.saturating_duration_since(sent));
    }
    delays.sort();
    eprintln!("long poll returned after the enqueue was sent: {delays:?}");
    // A generous bound: the figure itself (a few ms) is in the README.
    assert!(delays[2] < Duration::from_millis(500), "{delays:?}");
}
