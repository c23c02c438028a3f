//! The command line of the real binary: settings after the command's name,
//! each command reading only its own, help that names each default once,
//! bad settings refused in one line with exit 2, a failure reported once,
//! an exit as soon as the broker has logged that it stopped, and a
//! skip-corrupt start that the next start does not need again.

mod common;

use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::server::{self, free_port, wait_for_log, Server};
use event_broker_clock::monotonic_now;
use serde_json::{json, Value};

/// The binary with no setting from the test runner's environment.
fn broker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_event-broker"));
    command.env_clear();
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run the binary")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Settings of `serve` that would stop it with exit 2.
const BAD_SERVE_SETTINGS: [(&str, &str); 5] = [
    ("WAL_FSYNC", "bad"),
    ("QUEUE_MAX_SIZE", "-1"),
    ("LOG_LEVEL", "loud"),
    ("RECOVER", "maybe"),
    ("MAX_BATCH", "0"),
];

fn health(base: &str) -> u16 {
    reqwest::blocking::get(format!("{base}/api/health"))
        .expect("health")
        .status()
        .as_u16()
}

#[test]
fn serve_takes_its_settings_after_its_name_and_the_flag_wins_over_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (port, other) = (free_port(), free_port());
    let mut command = server::command(dir.path(), other);
    command.args(["serve", "--port", &port.to_string(), "--max-batch", "5"]);
    let server = Server::spawn(command, port);
    assert_eq!(health(&server.base), 200);
    let status: Value = reqwest::blocking::get(format!("{}/api/status", server.base))
        .and_then(|r| r.json())
        .unwrap();
    assert_eq!(status["config"]["MAX_BATCH"], "5", "{status}");
}

#[test]
fn settings_without_a_command_still_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (port, other) = (free_port(), free_port());
    let mut command = server::command(dir.path(), other);
    command.args(["--port", &port.to_string()]);
    let server = Server::spawn(command, port);
    assert_eq!(health(&server.base), 200);
}

/// The options of a help text, each with its text joined on one line.
fn options(help: &str) -> Vec<String> {
    let mut options: Vec<String> = Vec::new();
    for line in help.lines() {
        let line = line.trim();
        if line.starts_with("--") || line.starts_with("-h") || line.starts_with("-V") {
            options.push(line.to_string());
        } else if let Some(last) = options.last_mut().filter(|_| !line.is_empty()) {
            last.push(' ');
            last.push_str(line);
        }
    }
    options
}

#[test]
fn help_lists_every_setting_of_serve_naming_its_variable_and_default_once() {
    let top = String::from_utf8(run(broker().arg("--help")).stdout).unwrap();
    let serve = String::from_utf8(run(broker().args(["serve", "--help"])).stdout).unwrap();
    let serve_options = options(&serve);
    assert!(serve_options.len() >= 28, "{serve}");
    for option in &serve_options {
        if option.starts_with("-h") {
            continue;
        }
        assert!(option.matches("[env: ").count() == 1, "{option}");
        let defaults = option.to_lowercase().matches("default").count();
        let expected = usize::from(option.contains("[default: "));
        assert_eq!(defaults, expected, "{option}");
        let flag = option.split_whitespace().next().unwrap();
        assert!(
            top.contains(&format!("{flag} ")),
            "{flag} missing in:\n{top}"
        );
    }
    for text in [&top, &serve] {
        assert_eq!(text.matches("[env: PORT=]").count(), 1, "{text}");
        assert_eq!(text.matches("[default: 3000]").count(), 1, "{text}");
        assert!(!text.contains("default 3000"), "{text}");
    }
}

#[test]
fn a_server_setting_before_another_command_is_refused() {
    for args in [
        &["--port", "3103", "bench", "produce"][..],
        &["--data-dir", "/tmp/elsewhere", "verify"],
        &["--port", "3103", "healthcheck"],
    ] {
        let out = run(broker().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let command = args[2];
        let flag = args[0];
        assert!(
            stderr.contains(&format!(
                "the subcommand '{command}' cannot be used with '{flag}"
            )),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn verify_and_healthcheck_read_only_their_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let checked = run(broker()
        .args(["healthcheck", "--bind-addr", "127.0.0.1"])
        .env("PORT", server.port())
        .env("DATA_DIR", dir.path().join("no/such/dir"))
        .envs(BAD_SERVE_SETTINGS));
    assert!(checked.status.success(), "{checked:?}");
    assert_eq!(String::from_utf8_lossy(&checked.stdout), "ready\n");
    assert!(checked.stderr.is_empty(), "{checked:?}");

    for args in [&["verify"][..], &["verify", data.to_str().unwrap()]] {
        let out = run(broker()
            .args(args)
            .env("DATA_DIR", &data)
            .env("PORT", "0")
            .envs(BAD_SERVE_SETTINGS));
        assert!(out.status.success(), "{args:?}: {out:?}");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("result: ok"), "{report}");
        assert!(out.stderr.is_empty(), "{out:?}");
    }

    let refused = run(broker().arg("healthcheck").env("PORT", "0"));
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&refused),
        ["event-broker: invalid PORT=\"0\": expected a whole number from 1 to 65535"]
    );
}

#[test]
fn a_log_level_that_is_not_a_level_stops_the_broker_with_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["warning", "loud", "event_broker=loud"] {
        let mut command = server::command(&dir.path().join("data"), free_port());
        let out = run(command.env("LOG_LEVEL", value));
        assert_eq!(out.status.code(), Some(2), "{value}: {out:?}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let start = format!(
            "event-broker: invalid LOG_LEVEL={value:?}: expected a level (off, error, warn, info, debug, trace)"
        );
        assert!(lines[0].starts_with(&start), "{lines:?}");
        assert!(!dir.path().join("data").exists(), "it did not start");
    }
}

#[test]
fn a_failure_of_serve_is_one_log_line_naming_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "not a directory").unwrap();
    let mut command = server::command(&file, free_port());
    let out = run(&mut command);
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: Value = serde_json::from_str(&lines[0]).expect("a JSON log line");
    assert_eq!(line["level"], "ERROR", "{line}");
    let error = format!("DATA_DIR {} is a file, not a directory", file.display());
    assert_eq!(line["fields"]["error"], error.as_str(), "{line}");

    // With nothing logged at the error level, the same line goes to stderr plainly.
    let out = run(command.env("LOG_LEVEL", "off"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_lines(&out), [format!("event-broker: {error}")]);

    // An OS error is named once, not once per layer that carries it.
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("wal"), "").unwrap();
    let out = run(server::command(&data, free_port()).env("LOG_LEVEL", "off"));
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].matches("(os error").count(), 1, "{lines:?}");
    assert!(lines[0].contains(&data.join("wal").display().to_string()));
}

#[test]
fn verify_and_healthcheck_failures_are_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = run(broker().arg("verify").arg(&missing));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&out),
        [format!(
            "event-broker: {} does not exist",
            missing.display()
        )]
    );

    let port = free_port();
    let out = run(broker()
        .args(["healthcheck", "--port", &port.to_string()])
        .env("BIND_ADDR", "127.0.0.1"));
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let start = format!("event-broker: asking http://127.0.0.1:{port}/api/health/ready: ");
    assert!(lines[0].starts_with(&start), "{lines:?}");
    assert!(lines[0].matches("(os error").count() <= 1, "{lines:?}");
}

#[test]
fn the_broker_exits_as_soon_as_it_has_logged_that_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = server::command(dir.path(), port)
        // The subscription below names a loopback receiver.
        .env("WEBHOOK_ALLOW_PRIVATE", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    wait_for_log(&mut log, "serving");
    let base = format!("http://127.0.0.1:{port}/api");
    let client = reqwest::blocking::Client::new();
    let json = |r: reqwest::blocking::Response| r.error_for_status().unwrap();
    json(
        client
            .put(format!("{base}/queues/hooked/subscription"))
            .json(&json!({"url": format!("http://127.0.0.1:{}/hook", free_port())}))
            .send()
            .unwrap(),
    );
    for queue in ["hooked", "plain"] {
        json(
            client
                .post(format!("{base}/queues/{queue}/events"))
                .json(&json!({"payload": 1}))
                .send()
                .unwrap(),
        );
    }
    json(
        client
            .post(format!("{base}/queues/plain/lease"))
            .json(&json!({"max": 1}))
            .send()
            .unwrap(),
    );
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    wait_for_log(&mut log, "stopped");
    let stopped = monotonic_now();
    let status = child.wait().unwrap();
    let lingered = monotonic_now() - stopped;
    assert!(status.success(), "{status}");
    assert!(
        lingered < Duration::from_millis(300),
        "the process lived on for {lingered:?} after logging that it stopped"
    );
}

/// Events ready in `queue` of a broker started in `data` with `args`.
fn ready_after_start(data: &Path, args: &[&str]) -> u64 {
    let port = free_port();
    let mut command = server::command(data, port);
    command.args(args);
    let mut server = Server::spawn(command, port);
    let queue: Value = reqwest::blocking::get(format!("{}/api/queues/q", server.base))
        .and_then(|r| r.json())
        .unwrap();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    queue["ready"].as_u64().unwrap()
}

#[test]
fn after_a_skip_corrupt_start_the_next_start_opens_the_log_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = reqwest::blocking::Client::new();
    let big = "x".repeat(1000);
    for _ in 0..15 {
        let batch: Vec<Value> = (0..100).map(|_| json!({"payload": big})).collect();
        client
            .post(format!("{}/api/queues/q/events", server.base))
            .json(&batch)
            .send()
            .and_then(|r| r.error_for_status())
            .expect("enqueue");
    }
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());

    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() > 1, "a sealed segment to damage");
    let mut bytes = fs::read(&segments[0]).unwrap();
    let frame = common::frame_offsets(&bytes)[5];
    bytes[frame + 8 + 30] ^= 0x20;
    fs::write(&segments[0], bytes).unwrap();

    let refused = run(server::command(dir.path(), free_port()).env("LOG_LEVEL", "off"));
    assert_eq!(refused.status.code(), Some(1));
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(refusal.contains("corrupt log"), "{refusal}");

    let kept = ready_after_start(dir.path(), &["serve", "--recover=skip-corrupt"]);
    assert!((1400..1500).contains(&kept), "{kept} of 1500 kept");
    assert_eq!(ready_after_start(dir.path(), &[]), kept);
    assert_eq!(ready_after_start(dir.path(), &["serve"]), kept);
    let verified = run(broker().arg("verify").arg(dir.path()));
    assert!(verified.status.success(), "{verified:?}");
}
