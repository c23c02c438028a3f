//! Ordered groups and delivery limits against the real binary on a free
//! loopback port: events of one group go out one at a time in id order
//! through nacks and expired leases, a hot group does not starve small
//! ones, and a queue's rate limit bounds leases and webhook pushes
//! together.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use common::server::{call, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// Enqueues a batch; the ids, in the batch's order.
fn enqueue(client: &Client, queue_url: &str, batch: Vec<Value>) -> Vec<u64> {
    let n = batch.len();
    let v = call(
        client,
        Method::POST,
        &format!("{queue_url}/events"),
        Some(Value::Array(batch)),
    );
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids: {v}"))
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), n, "{v}");
    ids
}

/// The events of a lease answer.
fn events(v: &Value) -> &Vec<Value> {
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {v}"))
}

/// Acks or nacks `receipts`, each of which must name a current lease.
fn finish(client: &Client, queue_url: &str, route: &str, receipts: Vec<Value>) {
    let v = call(
        client,
        Method::POST,
        &format!("{queue_url}/{route}"),
        Some(json!({ "receipts": receipts })),
    );
    let results = v["results"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(
        results.iter().all(|r| r["status"] == "ok"),
        "{route} of leases well within their time: {v}"
    );
}

/// A small seeded generator (xorshift64*), so that a run's choices can be
/// made again.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % n
    }
}

/// Raises `stop` when the thread holding it panics, so that the other
/// threads of a test end at once rather than at their deadline, and the
/// panic is what the test reports.
struct StopOnPanic(Arc<AtomicBool>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

fn join_all(threads: Vec<std::thread::JoinHandle<()>>) {
    let mut panicked = false;
    for t in threads {
        panicked |= t.join().is_err();
    }
    assert!(!panicked, "a consumer failed; its panic is above");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Acked,
    Nacked,
    /// Neither acked nor nacked: left for its lease to expire.
    Abandoned,
}

/// One delivery as a consumer saw it.
#[derive(Debug)]
struct Delivery {
    consumer: usize,
    id: u64,
    /// The group the event was enqueued with.
    group: String,
    /// The `group` the lease answer showed.
    shown_group: Value,
    attempt: u64,
    /// Taken right after the lease answer.
    answered: Instant,
    /// Taken right before the ack or nack was sent; none when abandoned.
    ended: Option<Instant>,
    end: End,
}

/// A group's deliveries, for a failure message.
fn render(ds: &[&Delivery], start: Instant) -> String {
    ds.iter()
        .map(|d| {
            let ended = d.ended.map(|e| (e - start).as_micros());
            format!(
                "  consumer {} id {} attempt {} answered {}us ended {:?}us {:?}\n",
                d.consumer,
                d.id,
                d.attempt,
                (d.answered - start).as_micros(),
                ended,
                d.end
            )
        })
        .collect()
}

#[test]
fn groups_keep_order_and_never_overlap_under_nacks_and_expiries() {
    const GROUPS: usize = 50;
    const PER_GROUP: usize = 20;
    const CONSUMERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    // Short backoffs and a quick reaper keep retries and expiries cheap;
    // nothing dead-letters, so every event must end acked.
    let server = Server::start_with(
        dir.path(),
        &[
            ("BASE_BACKOFF_MS", "5"),
            ("MAX_BACKOFF_MS", "20"),
            ("MAX_RETRIES", "1000"),
            ("REAPER_INTERVAL_MS", "20"),
            ("WAL_FSYNC", "never"),
        ],
    );
    let client = Client::new();
    let url = format!("{}/api/queues/ordered", server.base);

    // Interleaved across groups, in a shuffled group order each round, so
    // that a group's ids are neither adjacent nor in a fixed pattern.
    let mut rng = Rng::new(1);
    let mut order = Vec::new();
    for k in 0..PER_GROUP {
        let mut round: Vec<usize> = (0..GROUPS).collect();
        for i in (1..round.len()).rev() {
            round.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order.extend(round.into_iter().map(|g| (g, k)));
    }
    let group_name = |g: usize| format!("g{g:02}");
    let mut group_ids: HashMap<String, Vec<u64>> = HashMap::new();
    let mut group_of: HashMap<u64, String> = HashMap::new();
    for chunk in order.chunks(100) {
        let batch = chunk
            .iter()
            .map(|&(g, k)| json!({"payload": {"k": k}, "group": group_name(g)}))
            .collect();
        for (id, &(g, _)) in enqueue(&client, &url, batch).into_iter().zip(chunk) {
            group_ids.entry(group_name(g)).or_default().push(id);
            group_of.insert(id, group_name(g));
        }
    }
    let total = group_of.len();
    assert_eq!(total, GROUPS * PER_GROUP);

    let group_of = Arc::new(group_of);
    let timeline: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(40);
    let start = Instant::now();
    let mut threads = Vec::new();
    for consumer in 0..CONSUMERS {
        let (url, group_of, timeline, acked, stop) = (
            url.clone(),
            group_of.clone(),
            timeline.clone(),
            acked.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let _guard = StopOnPanic(stop.clone());
            let client = Client::new();
            let mut rng = Rng::new(100 + consumer as u64);
            let delivery = |e: &Value, answered: Instant, ended: Option<Instant>, end: End| {
                let id = e["id"].as_u64().unwrap();
                Delivery {
                    consumer,
                    id,
                    group: group_of
                        .get(&id)
                        .unwrap_or_else(|| panic!("leased an unknown event: {e}"))
                        .clone(),
                    shown_group: e.get("group").cloned().unwrap_or_default(),
                    attempt: e["attempt"].as_u64().unwrap(),
                    answered,
                    ended,
                    end,
                }
            };
            while acked.load(Ordering::SeqCst) < total
                && !stop.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                // A lease to be abandoned is short, so that its expiry
                // comes soon; the others are long enough never to expire.
                let abandon = rng.below(10) == 0;
                let body = if abandon {
                    json!({"max": 1, "visibility_timeout_ms": 200, "wait_ms": 300})
                } else {
                    json!({"max": 4, "visibility_timeout_ms": 30000, "wait_ms": 300})
                };
                let leased = call(&client, Method::POST, &format!("{url}/lease"), Some(body));
                let answered = Instant::now();
                let leased = events(&leased);
                if abandon {
                    let mut timeline = timeline.lock().unwrap();
                    for e in leased {
                        timeline.push(delivery(e, answered, None, End::Abandoned));
                    }
                    continue;
                }
                let (nacks, acks): (Vec<&Value>, Vec<&Value>) =
                    leased.iter().partition(|_| rng.below(100) < 15);
                for (list, end, route) in [(nacks, End::Nacked, "nack"), (acks, End::Acked, "ack")]
                {
                    if list.is_empty() {
                        continue;
                    }
                    let receipts = list.iter().map(|e| e["receipt"].clone()).collect();
                    let ended = Instant::now();
                    finish(&client, &url, route, receipts);
                    if end == End::Acked {
                        acked.fetch_add(list.len(), Ordering::SeqCst);
                    }
                    let mut timeline = timeline.lock().unwrap();
                    for e in list {
                        timeline.push(delivery(e, answered, Some(ended), end));
                    }
                }
            }
        }));
    }
    join_all(threads);
    let timeline = std::mem::take(&mut *timeline.lock().unwrap());
    assert_eq!(
        acked.load(Ordering::SeqCst),
        total,
        "not every event was acked in time ({} deliveries)",
        timeline.len()
    );

    let mut acks: HashMap<u64, usize> = HashMap::new();
    for d in &timeline {
        assert_eq!(d.shown_group, json!(d.group), "event {}", d.id);
        if d.end == End::Acked {
            *acks.entry(d.id).or_default() += 1;
        }
    }
    for (id, n) in &acks {
        assert_eq!(*n, 1, "event {id} acked {n} times");
    }
    assert_eq!(acks.len(), total, "every event acked");
    assert!(
        timeline.iter().any(|d| d.end == End::Nacked)
            && timeline.iter().any(|d| d.end == End::Abandoned),
        "the run should have retried after both nacks and expiries"
    );

    for (group, ids) in &group_ids {
        let mut ds: Vec<&Delivery> = timeline.iter().filter(|d| &d.group == group).collect();
        let mut by_ack: Vec<&&Delivery> = ds.iter().filter(|d| d.end == End::Acked).collect();
        by_ack.sort_by_key(|d| d.ended);
        let acked_ids: Vec<u64> = by_ack.iter().map(|d| d.id).collect();
        assert_eq!(&acked_ids, ids, "group {group}: acked out of id order");

        // One at a time: each delivery of the group ended before the next
        // was answered, and the next is the same event again after a
        // failure, or the group's next event after an ack. An abandoned
        // delivery's end is its lease's expiry, which only the broker
        // sees, so it is held to the second rule alone.
        ds.sort_by_key(|d| d.answered);
        let mut at = 0;
        let mut attempt = 0;
        for (i, d) in ds.iter().enumerate() {
            let why = || format!("group {group}, delivery {i}:\n{}", render(&ds, start));
            assert!(at < ids.len(), "delivered after its last ack; {}", why());
            assert_eq!(d.id, ids[at], "{}", why());
            attempt += 1;
            assert_eq!(d.attempt, attempt, "attempts count deliveries; {}", why());
            if let (Some(ended), Some(next)) = (d.ended, ds.get(i + 1)) {
                assert!(ended <= next.answered, "deliveries overlap; {}", why());
            }
            if d.end == End::Acked {
                at += 1;
                attempt = 0;
            }
        }
        assert_eq!(at, ids.len(), "group {group}");
    }
}

#[derive(Default)]
struct Progress {
    /// Events of the hot group handed out so far.
    hot_leased: usize,
    /// Distinct events of each small group acked.
    small_acked: HashMap<String, HashSet<u64>>,
    /// For each small group done, how many hot events had been handed out
    /// by the time its last ack was answered.
    done_at: HashMap<String, usize>,
}

#[test]
fn a_hot_group_does_not_starve_small_groups() {
    const HOT: usize = 100_000;
    const SMALL_GROUPS: usize = 100;
    const PER_SMALL: usize = 10;
    const CONSUMERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("QUEUE_MAX_SIZE", "200000"), ("WAL_FSYNC", "never")],
    );
    let client = Client::new();
    let url = format!("{}/api/queues/crowded", server.base);
    let v = call(
        &client,
        Method::PUT,
        &url,
        Some(json!({"group_concurrency": 1000})),
    );
    assert_eq!(v["settings"]["group_concurrency"], 1000, "{v}");

    // The hot group first, so that by id and by the time each became
    // visible every small event waits behind the whole of it.
    let mut group_of: HashMap<u64, String> = HashMap::with_capacity(HOT + 1000);
    for _ in 0..HOT / 1000 {
        let batch = (0..1000)
            .map(|_| json!({"payload": 0, "group": "hot"}))
            .collect();
        for id in enqueue(&client, &url, batch) {
            group_of.insert(id, "hot".to_string());
        }
    }
    let small: Vec<(String, usize)> = (0..SMALL_GROUPS)
        .flat_map(|g| (0..PER_SMALL).map(move |k| (format!("s{g:03}"), k)))
        .collect();
    let batch = small
        .iter()
        .map(|(g, k)| json!({"payload": k, "group": g}))
        .collect();
    for (id, (g, _)) in enqueue(&client, &url, batch).into_iter().zip(&small) {
        group_of.insert(id, g.clone());
    }

    let group_of = Arc::new(group_of);
    let progress: Arc<Mutex<Progress>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut threads = Vec::new();
    for _ in 0..CONSUMERS {
        let (url, group_of, progress, stop) = (
            url.clone(),
            group_of.clone(),
            progress.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let _guard = StopOnPanic(stop.clone());
            let client = Client::new();
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let leased = call(
                    &client,
                    Method::POST,
                    &format!("{url}/lease"),
                    Some(json!({"max": 100, "wait_ms": 200})),
                );
                let leased = events(&leased);
                if leased.is_empty() {
                    continue;
                }
                let mut small = Vec::new();
                let mut hot = 0;
                for e in leased {
                    let id = e["id"].as_u64().unwrap();
                    let group = &group_of[&id];
                    assert_eq!(e["group"], json!(group), "{e}");
                    if group == "hot" {
                        hot += 1;
                    } else {
                        small.push((group.clone(), id));
                    }
                }
                progress.lock().unwrap().hot_leased += hot;
                let receipts = leased.iter().map(|e| e["receipt"].clone()).collect();
                finish(&client, &url, "ack", receipts);
                let mut p = progress.lock().unwrap();
                let hot_leased = p.hot_leased;
                for (group, id) in small {
                    let acked = p.small_acked.entry(group.clone()).or_default();
                    assert!(acked.insert(id), "event {id} acked twice");
                    if acked.len() == PER_SMALL {
                        p.done_at.insert(group, hot_leased);
                    }
                }
                if p.done_at.len() == SMALL_GROUPS {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        }));
    }
    join_all(threads);
    let p = std::mem::take(&mut *progress.lock().unwrap());
    assert_eq!(
        p.done_at.len(),
        SMALL_GROUPS,
        "small groups done in time, with {} hot events handed out",
        p.hot_leased
    );
    let worst = p.done_at.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(
        *worst.1 < 2000,
        "small group {} finished only after {} hot deliveries",
        worst.0,
        worst.1
    );
}

type Calls = Arc<Mutex<Vec<Instant>>>;

async fn hook(State(calls): State<Calls>, _body: Bytes) -> axum::http::StatusCode {
    calls.lock().unwrap().push(Instant::now());
    axum::http::StatusCode::OK
}

/// A webhook receiver on a loopback port that answers 200 to every call
/// and notes when each came; its URL and the notes. It serves until the
/// test process ends.
fn receiver() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let state = calls.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new()
                .route("/hook", axum::routing::post(hook))
                .with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/hook"), calls)
}

#[test]
fn rate_limit_holds_for_leases_and_webhooks_together() {
    const RATE: usize = 100;
    const BURST: usize = 10;
    const WINDOW: Duration = Duration::from_secs(5);
    const CONSUMERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("WEBHOOK_ALLOW_PRIVATE", "true"), ("WAL_FSYNC", "never")],
    );
    let client = Client::new();
    let url = format!("{}/api/queues/limited", server.base);
    call(
        &client,
        Method::PUT,
        &url,
        Some(json!({"rate_limit_per_s": RATE, "rate_limit_burst": BURST})),
    );
    for _ in 0..2 {
        enqueue(
            &client,
            &url,
            (0..1000).map(|i| json!({ "payload": i })).collect(),
        );
    }
    let (hook_url, calls) = receiver();

    // Nothing is delivered before `start`: no consumer runs yet and the
    // subscription is made after it. So every delivery counted, one the
    // test saw by `end`, was let through by the limiter between the two,
    // where at most the burst plus the rate times the window may pass. A
    // delivery the limiter passed before `end` but that the test saw only
    // after it is left out, which only lowers the count.
    let start = Instant::now();
    let end = start + WINDOW;
    call(
        &client,
        Method::PUT,
        &format!("{url}/subscription"),
        Some(json!({"url": hook_url, "concurrency": 4})),
    );
    let leased_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..CONSUMERS {
        let (url, leased_at, stop) = (url.clone(), leased_at.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let _guard = StopOnPanic(stop.clone());
            let client = Client::new();
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let leased = call(
                    &client,
                    Method::POST,
                    &format!("{url}/lease"),
                    Some(json!({"max": 50, "wait_ms": 300})),
                );
                let answered = Instant::now();
                let leased = events(&leased);
                for e in leased {
                    assert_eq!(e.get("group"), Some(&Value::Null), "no group: {e}");
                }
                leased_at
                    .lock()
                    .unwrap()
                    .extend(std::iter::repeat_n(answered, leased.len()));
                if !leased.is_empty() {
                    let receipts = leased.iter().map(|e| e["receipt"].clone()).collect();
                    finish(&client, &url, "ack", receipts);
                }
            }
        }));
    }
    join_all(threads);
    let within = |at: &&Instant| **at <= end;
    let leased = leased_at.lock().unwrap().iter().filter(within).count();
    let pushed = calls.lock().unwrap().iter().filter(within).count();
    let total = leased + pushed;
    let bound = BURST + RATE * WINDOW.as_secs() as usize;
    assert!(
        total <= bound,
        "{total} deliveries ({leased} leased, {pushed} pushed) in {WINDOW:?}, over {bound}"
    );
    assert!(
        leased > 0 && pushed > 0,
        "both ways get deliveries: {leased} leased, {pushed} pushed"
    );
    assert!(
        total >= 300,
        "the limiter let too little through: {total} ({leased} leased, {pushed} pushed)"
    );

    let v = call(&client, Method::GET, &url, None);
    assert_eq!(
        v["settings"]["rate_limit_per_s"].as_f64(),
        Some(RATE as f64),
        "{v}"
    );
    assert_eq!(
        v["settings"]["rate_limit_burst"].as_f64(),
        Some(BURST as f64),
        "{v}"
    );
}
