//! The client commands of the binary (`produce`, `consume`, `queues`,
//! `queue`, `dlq`) against a real broker: what they print, what they do to
//! the queue, and the exit codes scripts rely on.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::server::{free_port, Server};

fn cli(server_url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_event-broker"))
        .args(args)
        .env("EVENT_BROKER_URL", server_url)
        .env_remove("EVENT_BROKER_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn produce_consume_queues_and_dlq_work_from_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.base.as_str();

    let one = lines(&ok(cli(
        url,
        &[
            "produce",
            "orders",
            r#"{"order": 42}"#,
            "--header",
            "source=cli",
            "--priority",
            "3",
        ],
        "",
    )));
    assert_eq!(one, vec![serde_json::json!({"id": 0, "duplicate": false})]);

    let input: String = (0..250).map(|i| format!("{{\"n\": {i}}}\n\n")).collect();
    let ids = lines(&ok(cli(
        url,
        &["produce", "orders", "--batch", "100"],
        &input,
    )));
    assert_eq!(ids.len(), 250);
    assert_eq!(ids[249]["id"], 250);

    let bad = cli(url, &["produce", "orders"], "{\"n\": 1}\nnot json\n");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("stdin line 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let got = lines(&ok(cli(
        url,
        &["consume", "orders", "--count", "100", "--max", "30"],
        "",
    )));
    assert_eq!(got.len(), 100);
    assert_eq!(
        got[0]["payload"],
        serde_json::json!({"order": 42}),
        "priority 3 first"
    );
    assert_eq!(got[0]["headers"]["source"], "cli");
    assert!(got[0]["receipt"].is_string());

    let held = lines(&ok(cli(
        url,
        &["consume", "orders", "--count", "1", "--no-ack"],
        "",
    )));
    assert_eq!(held.len(), 1);
    let queue: serde_json::Value =
        serde_json::from_slice(&ok(cli(url, &["queue", "orders", "--json"], "")).stdout).unwrap();
    assert_eq!(
        (
            queue["ready"].as_u64(),
            queue["in_flight"].as_u64(),
            queue["acked_total"].as_u64()
        ),
        (Some(150), Some(1), Some(100))
    );

    // Drains what is ready and stops at the first empty lease.
    let rest = lines(&ok(cli(url, &["consume", "orders"], "")));
    assert_eq!(rest.len(), 150);

    let table = String::from_utf8(ok(cli(url, &["queues"], "")).stdout).unwrap();
    assert!(table.starts_with("QUEUE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("orders ") && l.split_whitespace().nth(3) == Some("1")),
        "{table}"
    );
    let text = String::from_utf8(ok(cli(url, &["queue", "orders"], "")).stdout).unwrap();
    assert!(
        text.contains("in_flight: 1") && text.contains("  max_retries: "),
        "{text}"
    );

    // Dead letters: one event failing at max_retries 0.
    let http = reqwest::blocking::Client::new();
    common::server::call(
        &http,
        reqwest::Method::PUT,
        &format!("{url}/api/queues/jobs"),
        Some(serde_json::json!({"max_retries": 0})),
    );
    ok(cli(url, &["produce", "jobs", "1"], ""));
    let leased = lines(&ok(cli(url, &["consume", "jobs", "--no-ack"], "")));
    let receipt = leased[0]["receipt"].as_str().unwrap();
    common::server::call(
        &http,
        reqwest::Method::POST,
        &format!("{url}/api/queues/jobs/nack"),
        Some(serde_json::json!({"receipts": [receipt], "error": "no"})),
    );
    let dead = lines(&ok(cli(url, &["dlq", "jobs"], "")));
    assert_eq!(
        (dead.len(), dead[0]["last_error"].as_str()),
        (1, Some("no"))
    );
    let refused = cli(url, &["dlq", "jobs", "--purge"], "y\n");
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a purge asks first, and cannot ask a pipe"
    );
    assert_eq!(
        lines(&ok(cli(url, &["dlq", "jobs", "--redrive"], ""))),
        vec![serde_json::json!({"redriven": 1})]
    );
    let again = lines(&ok(cli(url, &["consume", "jobs", "--no-ack"], "")));
    common::server::call(
        &http,
        reqwest::Method::POST,
        &format!("{url}/api/queues/jobs/nack"),
        Some(serde_json::json!({"receipts": [again[0]["receipt"]]})),
    );
    assert_eq!(
        lines(&ok(cli(url, &["dlq", "jobs", "--purge", "--yes"], ""))),
        vec![serde_json::json!({"purged": 1})]
    );
}

#[test]
fn exit_codes_tell_a_refusal_from_a_broker_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("BROKER_TOKEN", "secret-token")]);
    let refused = cli(&server.base, &["queues", "--token", "wrong"], "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));
    ok(cli(
        &server.base,
        &["queues", "--token", "secret-token"],
        "",
    ));
    let bad_name = cli(
        &server.base,
        &["produce", "no such queue", "1", "--token", "secret-token"],
        "",
    );
    assert_eq!(bad_name.status.code(), Some(1));
    let down = cli(
        &format!("http://127.0.0.1:{}", free_port()),
        &["queues"],
        "",
    );
    assert_eq!(
        down.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let usage = cli(&server.base, &["produce", "q", "{not json"], "");
    assert_eq!(usage.status.code(), Some(2));
}
