//! `event-broker bench` against the real broker: each workload, briefly,
//! with its JSON summary checked against what it was asked to do and
//! against the broker's own counts of the queue; then the runs that cannot
//! work, refused before any load or failed with their summary, and the
//! queue each run leaves empty.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::server::Server;
use event_broker_clock::monotonic_now;
use serde_json::Value;

fn run_bench(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_event-broker"))
        .arg("bench")
        .args(args)
        .args(["--json", "--url", url])
        .env_remove("BROKER_TOKEN")
        .output()
        .expect("run the bench")
}

/// Runs a workload to completion and returns its JSON summary.
fn bench(server: &Server, args: &[&str]) -> Value {
    let out = run_bench(&server.base, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench {args:?}: {}\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench {args:?}: stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The broker's counts of the queue the summary names.
fn broker_counts(server: &Server, summary: &Value) -> Value {
    let queue = summary["queue"]
        .as_str()
        .expect("the summary names its queue");
    queue_counts(server, queue)
}

/// The broker's counts of `queue`.
fn queue_counts(server: &Server, queue: &str) -> Value {
    reqwest::blocking::get(format!("{}/api/queues/{queue}", server.base))
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("queue counts")
}

/// The broker's counts of each of the summary's `queues` queues, numbered
/// after its `queue`.
fn spread_counts(server: &Server, summary: &Value) -> Vec<Value> {
    let base = summary["queue"].as_str().unwrap();
    (0..u64_of(summary, "queues"))
        .map(|i| queue_counts(server, &format!("{base}-{i}")))
        .collect()
}

/// Every queue of the broker, from `GET /api/queues`.
fn queues(server: &Server) -> Vec<Value> {
    let listed: Value = reqwest::blocking::get(format!("{}/api/queues", server.base))
        .and_then(|r| r.json())
        .expect("the queue listing");
    listed["queues"].as_array().unwrap().clone()
}

/// Asserts that no bench queue holds an event any more.
fn no_leftovers(server: &Server) {
    for queue in queues(server) {
        if queue["name"].as_str().unwrap().starts_with("bench-") {
            let held = ["ready", "delayed", "in_flight", "dead"].map(|k| u64_of(&queue, k));
            assert_eq!(held, [0; 4], "{queue}");
        }
    }
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Keys every workload reports, with plausible values.
fn check_common(s: &Value, workload: &str) {
    assert_eq!(s["workload"], workload);
    assert_eq!(u64_of(s, "errors"), 0, "{s}");
    assert!(s["seconds"].as_f64().unwrap() > 0.0, "{s}");
    let latency = &s["latency_ms"];
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(latency[key].as_f64().is_some(), "latency_ms.{key} in {s}");
    }
    assert!(latency["p50"].as_f64() <= latency["max"].as_f64(), "{s}");
    assert!(s["broker_cpu_s_per_million"].as_f64().is_some(), "{s}");
    assert!(u64_of(s, "broker_rss_bytes") > 0, "{s}");
}

#[test]
fn produce_stores_exactly_the_events_asked_for_one_by_one_and_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let s = bench(&server, &["produce", "--count", "2000", "--producers", "4"]);
    check_common(&s, "produce");
    assert_eq!((u64_of(&s, "events"), u64_of(&s, "requests")), (2000, 2000));
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), 2000);
    assert_eq!(
        u64_of(&counts, "acked_total"),
        2000,
        "emptied after the run"
    );
    no_leftovers(&server);

    let s = bench(
        &server,
        &[
            "produce", "--batch", "50", "--count", "5000", "--size", "100", "--keep",
        ],
    );
    check_common(&s, "produce");
    assert_eq!((u64_of(&s, "events"), u64_of(&s, "requests")), (5000, 100));
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), 5000);
    assert_eq!(u64_of(&counts, "ready"), 5000);
}

#[test]
fn consume_acks_every_prefilled_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let s = bench(&server, &["consume", "--prefill", "3000"]);
    check_common(&s, "consume");
    assert_eq!(u64_of(&s, "acked"), 3000);
    assert_eq!(u64_of(&s, "events"), 3000);
    assert_eq!(u64_of(&s, "missing"), 0);
    assert_eq!(u64_of(&s, "duplicates"), 0);
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), 3000);
    assert_eq!(u64_of(&counts, "acked_total"), 3000);
    assert_eq!(u64_of(&counts, "ready") + u64_of(&counts, "in_flight"), 0);
}

#[test]
fn produce_and_consume_over_4_queues_deliver_every_event_and_leave_the_queues_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let args = [
        "produce",
        "--queues",
        "4",
        "--count",
        "2002",
        "--producers",
        "8",
    ];
    let s = bench(&server, &args);
    check_common(&s, "produce");
    assert_eq!(u64_of(&s, "queues"), 4);
    assert_eq!((u64_of(&s, "events"), u64_of(&s, "requests")), (2002, 2002));
    let shares = [501, 501, 500, 500];
    for (counts, share) in spread_counts(&server, &s).iter().zip(shares) {
        assert_eq!(u64_of(counts, "enqueued_total"), share, "{counts}");
        assert_eq!(u64_of(counts, "acked_total"), share, "emptied: {counts}");
    }
    no_leftovers(&server);

    let args = [
        "consume",
        "--queues",
        "4",
        "--prefill",
        "3001",
        "--consumers",
        "4",
    ];
    let s = bench(&server, &args);
    check_common(&s, "consume");
    assert_eq!(u64_of(&s, "queues"), 4);
    assert_eq!((u64_of(&s, "acked"), u64_of(&s, "events")), (3001, 3001));
    assert_eq!((u64_of(&s, "missing"), u64_of(&s, "duplicates")), (0, 0));
    let shares = [751, 750, 750, 750];
    for (counts, share) in spread_counts(&server, &s).iter().zip(shares) {
        assert_eq!(u64_of(counts, "enqueued_total"), share, "{counts}");
        assert_eq!(u64_of(counts, "acked_total"), share, "{counts}");
    }
    no_leftovers(&server);
    assert_eq!(queues(&server).len(), 8, "4 queues a run, none other");

    // Every queue needs a worker of its own.
    let out = run_bench(
        &server.base,
        &["consume", "--queues", "4", "--consumers", "2"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--queues 4 needs at least 4 --consumers"),
        "{stderr}"
    );
    assert_eq!(queues(&server).len(), 8, "no load was sent");
}

#[test]
fn e2e_receives_every_event_it_sent_at_a_fixed_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let s = bench(&server, &["e2e", "--rate", "500", "--duration", "1s"]);
    check_common(&s, "e2e");
    assert_eq!(u64_of(&s, "sent"), 500);
    assert_eq!(u64_of(&s, "received"), u64_of(&s, "sent"));
    assert_eq!(u64_of(&s, "missing"), 0);
    let e2e = &s["e2e_latency_ms"];
    assert!(e2e["p50"].as_f64() <= e2e["max"].as_f64(), "{s}");
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), u64_of(&s, "sent"));
    assert_eq!(u64_of(&counts, "acked_total"), u64_of(&s, "received"));
}

#[test]
fn mixed_produces_and_consumes_together_and_reports_the_depth_left() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let s = bench(&server, &["mixed", "--duration", "1s"]);
    check_common(&s, "mixed");
    let (produced, consumed) = (u64_of(&s, "produced"), u64_of(&s, "consumed"));
    assert!(produced > 0 && consumed > 0, "{s}");
    assert!(
        u64_of(&s, "max_rss_bytes") >= u64_of(&s, "broker_rss_bytes"),
        "{s}"
    );
    assert_eq!(u64_of(&s, "depth"), produced - consumed);
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), produced);
    // What the consumers left, the cleanup acked.
    assert_eq!(u64_of(&counts, "acked_total"), produced, "{counts}");
    no_leftovers(&server);
}

#[test]
fn a_bench_without_a_broker_fails_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run_bench(
        &format!("http://127.0.0.1:{port}"),
        &["produce", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("connecting to 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_default_counts_fit_a_broker_with_the_default_queue_max_size() {
    let max = event_broker_core::Limits::default().queue_max_size;
    assert!(event_broker_bench::produce::DEFAULT_COUNT <= max);
    assert!(event_broker_bench::consume::DEFAULT_PREFILL <= max);
}

#[test]
fn consume_with_its_defaults_runs_against_a_broker_with_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("QUEUE_MAX_SIZE", "100000")]);
    let s = bench(&server, &["consume"]);
    check_common(&s, "consume");
    let prefill = event_broker_bench::consume::DEFAULT_PREFILL;
    assert_eq!((u64_of(&s, "acked"), u64_of(&s, "missing")), (prefill, 0));
    no_leftovers(&server);
}

#[test]
fn bench_reads_none_of_the_brokers_settings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_event-broker"))
        .args([
            "bench",
            "produce",
            "--count",
            "10",
            "--json",
            "--url",
            &server.base,
        ])
        .env_remove("BROKER_TOKEN")
        .envs([
            ("WAL_FSYNC", "bad"),
            ("PORT", "0"),
            ("DATA_DIR", "/no/such/dir"),
            ("QUEUE_MAX_SIZE", "-1"),
            ("LOG_LEVEL", "loud"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u64_of(&s, "events"), 10);

    // A broker's setting is no flag of the bench: its target is --url.
    let out = run_bench(&server.base, &["produce", "--port", "3103"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unexpected argument '--port'"), "{stderr}");
}

#[test]
fn a_run_in_which_every_request_fails_exits_1_with_its_summary_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("MAX_PAYLOAD_BYTES", "100")]);
    let out = run_bench(&server.base, &["produce", "--count", "20", "--size", "200"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).expect("the summary");
    assert_eq!((u64_of(&s, "events"), u64_of(&s, "errors")), (0, 20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("413 Payload Too Large"), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        "event-broker bench: every request failed (20 in all; the first are shown above)"
    );
}

#[test]
fn a_queue_name_or_url_the_broker_refuses_stops_the_run_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = run_bench(&server.base, &["produce", "--queue", "bad name!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("event-broker bench: the broker refuses the queue \"bad name!\": "),
        "{stderr}"
    );
    assert!(
        stderr.contains("a queue name is 1 to 128 characters"),
        "{stderr}"
    );

    let out = run_bench(&format!("{}/api/api", server.base), &["produce"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "event-broker bench: {}/api does not answer as an event-broker: GET /api/status answered 404",
        server.base
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(queues(&server).is_empty(), "no load was sent");
}

#[test]
fn a_url_ending_in_api_reaches_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for url in [
        format!("{}/api", server.base),
        format!("{}/api/", server.base),
    ] {
        let out = run_bench(&url, &["produce", "--count", "10"]);
        assert!(out.status.success(), "{url}: {out:?}");
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (u64_of(&s, "events"), u64_of(&s, "errors")),
            (10, 0),
            "{url}"
        );
    }
}

#[test]
fn more_events_than_the_queue_may_hold_are_refused_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("QUEUE_MAX_SIZE", "100000")]);
    for (args, flag) in [
        (&["produce", "--count", "200000"][..], "--count 200000"),
        (&["consume", "--prefill", "200000"], "--prefill 200000"),
    ] {
        let out = run_bench(&server.base, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!(
            "event-broker bench: {flag} is more than the broker's QUEUE_MAX_SIZE of 100000"
        );
        assert!(stderr.starts_with(&expected), "{stderr}");
    }
    // Over several queues the limit is of each queue's share.
    let out = run_bench(
        &server.base,
        &["produce", "--queues", "2", "--count", "200001"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "event-broker bench: --count 200001 over 2 queues puts 100001 events in one, \
             more than the broker's QUEUE_MAX_SIZE of 100000"
        ),
        "{stderr}"
    );
    assert!(queues(&server).is_empty(), "no load was sent");
}

#[test]
fn a_run_of_a_set_duration_into_a_full_queue_ends_on_time_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("QUEUE_MAX_SIZE", "300")]);
    let started = monotonic_now();
    let out = run_bench(
        &server.base,
        &["produce", "--duration", "1s", "--producers", "4"],
    );
    let took = monotonic_now() - started;
    assert!(out.status.success(), "{out:?}");
    assert!(took < Duration::from_secs(3), "the run took {took:?}");
    let s: Value = serde_json::from_slice(&out.stdout).expect("the summary");
    assert_eq!(u64_of(&s, "events"), 300, "{s}");
    assert!(u64_of(&s, "throttled") > 0, "{s}");
    assert!(s["seconds"].as_f64().unwrap() < 1.5, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the queue was full (QUEUE_MAX_SIZE)"),
        "{stderr}"
    );
    assert_eq!(u64_of(&broker_counts(&server, &s), "acked_total"), 300);
    no_leftovers(&server);
}

#[test]
fn an_interrupted_run_prints_its_summary_and_empties_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_event-broker"))
        .args([
            "bench",
            "mixed",
            "--duration",
            "60s",
            "--json",
            "--url",
            &server.base,
        ])
        .env_remove("BROKER_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("produced") {
        line.clear();
        assert!(
            progress.read_line(&mut line).unwrap() > 0,
            "no progress line"
        );
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    progress.read_to_string(&mut rest).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.ends_with("event-broker bench: interrupted\n"),
        "{rest}"
    );
    let s: Value = serde_json::from_str(&stdout).expect("the summary");
    assert!(u64_of(&s, "produced") > 0, "{s}");
    assert!(s["seconds"].as_f64().unwrap() < 30.0, "{s}");
    assert_eq!(
        u64_of(&broker_counts(&server, &s), "acked_total"),
        u64_of(&s, "produced")
    );
    no_leftovers(&server);
}
