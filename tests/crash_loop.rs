//! The real binary in a crash loop: producers (single events and batches),
//! consumers and acks run against it while it is SIGKILLed at random moments
//! and restarted on the same data directory, for about half a minute. Then
//! everything left is drained, and the figures are printed. What was
//! answered must hold: no enqueue answered 2xx is lost, and no event whose
//! ack was answered `ok` is delivered again. Events leased but not acked
//! before a kill come back (at-least-once): they are counted, not refused.
//!
//! The moments are drawn from a seeded generator; the seed is printed, and
//! `CRASH_LOOP_SEED=<seed>` runs the same draws again.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::server::Server;
use serde_json::{json, Value};

const QUEUE: &str = "crash";
/// Time for the kill-and-restart cycles; the drain comes after.
const CYCLES_FOR: Duration = Duration::from_secs(30);
const MAX_CYCLES: u32 = 40;
/// Longest run of a cycle before its kill.
const MAX_RUN_MS: u64 = 1_500;

/// A small seeded generator (xorshift64*): the test needs reproducible
/// draws, not good ones.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What the clients were answered, across every cycle.
#[derive(Default)]
struct Ledger {
    /// Ids of enqueues answered 2xx.
    enqueued: BTreeSet<u64>,
    /// Ids whose ack was answered `ok`.
    acked: BTreeSet<u64>,
    /// Ids in acks that got no answer: the kill came first, so each may be
    /// acked or not.
    ack_unanswered: BTreeSet<u64>,
    /// Ids ever delivered.
    delivered: BTreeSet<u64>,
    /// Deliveries of an event after its ack was answered `ok`.
    acked_then_redelivered: Vec<u64>,
    /// Deliveries of an event delivered before and not acked.
    redelivered_unacked: u64,
}

impl Ledger {
    fn delivered(&mut self, id: u64) {
        if self.acked.contains(&id) {
            self.acked_then_redelivered.push(id);
        } else if !self.delivered.insert(id) {
            self.redelivered_unacked += 1;
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The answer's body if it was 2xx, or a 409 of an ack (which answers per
/// receipt too); `None` for any other answer or none.
fn post(client: &reqwest::blocking::Client, url: &str, body: &Value) -> Option<Value> {
    let resp = client.post(url).json(body).send().ok()?;
    let status = resp.status();
    let answer: Value = resp.json().ok()?;
    let per_receipt = status == reqwest::StatusCode::CONFLICT && answer.get("results").is_some();
    (status.is_success() || per_receipt).then_some(answer)
}

/// Enqueues until `stop`: one event per request, or batches of 2 to 20.
fn producer(base: String, batches: bool, seed: u64, ledger: Shared, stop: Arc<AtomicBool>) {
    let client = client();
    let url = format!("{base}/api/queues/{QUEUE}/events");
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let n = if batches { 2 + rng.below(19) } else { 1 };
        let events: Vec<Value> = (0..n).map(|i| json!({"payload": {"i": i}})).collect();
        let body = if batches {
            Value::Array(events)
        } else {
            events.into_iter().next().unwrap()
        };
        let Some(answer) = post(&client, &url, &body) else {
            continue;
        };
        let ids: Vec<u64> = match answer.get("ids") {
            Some(ids) => ids
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap())
                .collect(),
            None => vec![answer["id"].as_u64().unwrap()],
        };
        ledger.lock().unwrap().enqueued.extend(ids);
    }
}

/// Leases and acks until `stop`, leaving about one event in eight unacked:
/// those come back after the next restart.
fn consumer(base: String, seed: u64, ledger: Shared, stop: Arc<AtomicBool>) {
    let client = client();
    let lease = format!("{base}/api/queues/{QUEUE}/lease");
    let ack = format!("{base}/api/queues/{QUEUE}/ack");
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let Some(answer) = post(&client, &lease, &json!({"max": 20, "wait_ms": 100})) else {
            continue;
        };
        let mut to_ack = Vec::new();
        {
            let mut ledger = ledger.lock().unwrap();
            for event in answer["events"].as_array().unwrap() {
                let id = event["id"].as_u64().unwrap();
                ledger.delivered(id);
                if rng.below(8) != 0 {
                    to_ack.push((id, event["receipt"].as_str().unwrap().to_string()));
                }
            }
        }
        if to_ack.is_empty() {
            continue;
        }
        let receipts: Vec<&str> = to_ack.iter().map(|(_, r)| r.as_str()).collect();
        let answer = post(&client, &ack, &json!({"receipts": receipts}));
        let mut ledger = ledger.lock().unwrap();
        match answer {
            Some(answer) => {
                let results = answer["results"].as_array().unwrap();
                for ((id, _), result) in to_ack.iter().zip(results) {
                    if result["status"] == "ok" {
                        ledger.acked.insert(*id);
                    }
                }
            }
            None => ledger
                .ack_unanswered
                .extend(to_ack.iter().map(|(id, _)| *id)),
        }
    }
}

/// The clients of one cycle: two single-event producers, one of batches,
/// two consumers.
fn clients(
    base: &str,
    rng: &mut Rng,
    ledger: &Shared,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for batches in [false, false, true] {
        let (base, seed, ledger, stop) = (
            base.to_string(),
            rng.below(u64::MAX),
            ledger.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            producer(base, batches, seed, ledger, stop)
        }));
    }
    for _ in 0..2 {
        let (base, seed, ledger, stop) = (
            base.to_string(),
            rng.below(u64::MAX),
            ledger.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            consumer(base, seed, ledger, stop)
        }));
    }
    threads
}

fn settings() -> Vec<(&'static str, &'static str)> {
    // Leases outlast every cycle, so within one an event is only ever held
    // by one consumer; a restart makes every held event ready again.
    vec![("VISIBILITY_TIMEOUT_MS", "600000")]
}

/// Leases and acks everything left; the ids it saw.
fn drain(base: &str, ledger: &Shared) -> BTreeSet<u64> {
    let client = client();
    let mut seen = BTreeSet::new();
    loop {
        let lease = format!("{base}/api/queues/{QUEUE}/lease");
        let answer = post(&client, &lease, &json!({"max": 1000})).expect("lease while draining");
        let events = answer["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        let receipts: Vec<&str> = events
            .iter()
            .map(|e| e["receipt"].as_str().unwrap())
            .collect();
        let ack = format!("{base}/api/queues/{QUEUE}/ack");
        post(&client, &ack, &json!({"receipts": receipts})).expect("ack while draining");
        let mut ledger = ledger.lock().unwrap();
        for event in events {
            let id = event["id"].as_u64().unwrap();
            ledger.delivered(id);
            seen.insert(id);
        }
    }
    let stats = client
        .get(format!("{base}/api/queues/{QUEUE}"))
        .send()
        .unwrap();
    let stats: Value = stats.json().unwrap();
    for count in ["ready", "delayed", "in_flight"] {
        assert_eq!(stats[count], 0, "{count} after draining: {stats}");
    }
    seen
}

#[test]
fn sigkill_at_random_moments_loses_no_answered_enqueue_and_brings_back_no_answered_ack() {
    let seed = std::env::var("CRASH_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    println!("crash loop seed: {seed} (CRASH_LOOP_SEED={seed} repeats it)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let ledger: Shared = Arc::default();
    let started = Instant::now();
    let mut cycles = 0;
    while cycles < MAX_CYCLES && started.elapsed() < CYCLES_FOR {
        let mut server = Server::start_with(dir.path(), &settings());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = clients(&server.base, &mut rng, &ledger, &stop);
        // Not a wait for anything: the kill's random moment.
        std::thread::sleep(Duration::from_millis(rng.below(MAX_RUN_MS)));
        server.signal(libc::SIGKILL);
        server.wait_exit(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        cycles += 1;
    }

    let server = Server::start_with(dir.path(), &settings());
    let drained = drain(&server.base, &ledger);
    drop(server);

    let ledger = ledger.lock().unwrap();
    let lost: Vec<u64> = ledger
        .enqueued
        .iter()
        .filter(|id| !ledger.acked.contains(id))
        .filter(|id| !ledger.ack_unanswered.contains(id))
        .filter(|id| !drained.contains(id))
        .copied()
        .collect();
    let unanswered_stored = drained.difference(&ledger.enqueued).count();
    println!(
        "crash loop: {cycles} cycles in {:.1} s; {} enqueues answered, {} acks answered ok, \
         {} acks unanswered, {} drained at the end ({unanswered_stored} of them stored \
         without an answer); lost {}, acked then redelivered {}, \
         redeliveries of unacked leases {}",
        started.elapsed().as_secs_f64(),
        ledger.enqueued.len(),
        ledger.acked.len(),
        ledger.ack_unanswered.len(),
        drained.len(),
        lost.len(),
        ledger.acked_then_redelivered.len(),
        ledger.redelivered_unacked,
    );
    assert!(cycles >= 5, "only {cycles} cycles ran");
    assert!(
        !ledger.acked.is_empty(),
        "no ack was answered: the load did not run"
    );
    assert!(lost.is_empty(), "enqueues answered 2xx, lost: {lost:?}");
    assert!(
        ledger.acked_then_redelivered.is_empty(),
        "acks answered ok, delivered again: {:?}",
        ledger.acked_then_redelivered
    );
}
