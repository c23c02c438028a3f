//! `event-broker bench` against the real broker: each workload, briefly,
//! with its JSON summary checked against what it was asked to do and
//! against the broker's own counts of the queue.

mod common;

use std::process::{Command, Output};

use common::server::Server;
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
    reqwest::blocking::get(format!("{}/api/queues/{queue}", server.base))
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("queue counts")
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
    assert_eq!(u64_of(&broker_counts(&server, &s), "enqueued_total"), 2000);

    let s = bench(
        &server,
        &[
            "produce", "--batch", "50", "--count", "5000", "--size", "100",
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
    let counts = broker_counts(&server, &s);
    assert_eq!(u64_of(&counts, "enqueued_total"), produced);
    assert_eq!(u64_of(&counts, "acked_total"), consumed);
    let depth = ["ready", "delayed", "in_flight"].map(|k| u64_of(&counts, k));
    assert_eq!(
        u64_of(&s, "depth"),
        depth.iter().sum::<u64>(),
        "{s} {counts}"
    );
    assert_eq!(u64_of(&s, "depth"), produced - consumed);
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
