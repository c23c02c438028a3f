//! Backup drills on the real binary and the real backup.sh: a backup taken
//! under load restores every event acknowledged before it began and brings
//! back none whose ack was confirmed before it began; a backup of a stopped
//! broker restores exactly its unacked events; failures leave no archive and
//! say so in one line; `verify` names the first bad offset of a damaged log.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::server::Server;
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/backup.sh");
const BINARY: &str = env!("CARGO_BIN_EXE_event-broker");
const QUEUES: [&str; 2] = ["single", "batch"];

/// What a run of backup.sh or `event-broker verify` did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

fn run(command: &mut Command) -> Run {
    let out = command.output().expect("run the command");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// backup.sh with `args`, run by `sh` (dash on Debian, as in the image),
/// with the given settings and nothing inherited that it reads.
fn backup_sh(args: &[&str], settings: &[(&str, &str)]) -> Run {
    let mut command = Command::new("sh");
    command.arg(SCRIPT).args(args);
    for name in [
        "BROKER_URL",
        "ADMIN_TOKEN",
        "BROKER_TOKEN",
        "DATA_DIR",
        "BACKUP_DIR",
        "RETENTION_DAYS",
    ] {
        command.env_remove(name);
    }
    command.env("EVENT_BROKER", BINARY);
    run(command.envs(settings.iter().copied()))
}

/// backup.sh's backup of `data` into `backups`, asking the broker at `url`.
fn backup(url: &str, data: &Path, backups: &Path, more: &[(&str, &str)]) -> Run {
    let mut settings = vec![
        ("BROKER_URL", url),
        ("DATA_DIR", data.to_str().unwrap()),
        ("BACKUP_DIR", backups.to_str().unwrap()),
    ];
    settings.extend_from_slice(more);
    backup_sh(&[], &settings)
}

/// Restores `archive` into `into`; the run.
fn restore(archive: &Path, into: &Path) -> Run {
    backup_sh(
        &["restore", archive.to_str().unwrap(), into.to_str().unwrap()],
        &[],
    )
}

fn verify(dir: &Path) -> Run {
    run(Command::new(BINARY)
        .arg("verify")
        .arg(dir)
        .env("LOG_LEVEL", "off"))
}

/// The archive a successful backup printed, checked for its name and place.
fn archive_of(done: &Run, backups: &Path) -> PathBuf {
    assert!(
        done.ok && done.stderr.is_empty(),
        "backup.sh failed: {}",
        done.stderr
    );
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {:?}", done.stdout);
    let archive = PathBuf::from(lines[0]);
    assert_eq!(archive.parent(), Some(backups));
    let name = archive.file_name().unwrap().to_str().unwrap();
    let stamp = name
        .strip_prefix("event-broker-")
        .and_then(|n| n.strip_suffix("Z.tar.gz"))
        .unwrap_or_else(|| panic!("archive name {name}"));
    assert!(stamp.len() == 15 && stamp.as_bytes()[8] == b'T', "{name}");
    assert!(archive.is_file());
    archive
}

/// Archives (final names only) in `dir`.
fn archives(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("event-broker-") && n.ends_with(".tar.gz"))
        .collect();
    names.sort();
    names
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|es| {
            es.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn post(client: &reqwest::blocking::Client, url: &str, body: Value) -> Option<Value> {
    let resp = client.post(url).json(&body).send().ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().ok()
}

/// Where the drill is: the load reads it after each answer and before each ack.
const BEFORE: u8 = 0;
const DURING: u8 = 1;
const AFTER: u8 = 2;

/// What the load saw, by the phase it saw it in.
#[derive(Default)]
struct Seen {
    /// Enqueues answered 2xx before backup.sh began.
    enqueued_before: BTreeSet<u64>,
    /// Every enqueue answered 2xx.
    enqueued: BTreeSet<u64>,
    /// Acks sent before backup.sh finished, answered or not.
    ack_sent_before_end: BTreeSet<u64>,
    /// Acks answered ok before backup.sh began.
    ack_confirmed_before: BTreeSet<u64>,
    /// Every ack answered ok.
    acked: BTreeSet<u64>,
    /// Requests with no 2xx answer: their effect is unknown.
    failed: usize,
}

/// What the load saw, and a signal at each answer.
type Watched = Arc<(Mutex<Seen>, Condvar)>;

struct Load {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    seen: Watched,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Producers of single events and of batches, and consumers that lease and ack.
    fn start(base: &str) -> Load {
        let mut load = Load {
            phase: Arc::default(),
            stop: Arc::default(),
            seen: Arc::default(),
            threads: Vec::new(),
        };
        for (queue, batch) in [(QUEUES[0], 1), (QUEUES[1], 10)] {
            let url = format!("{base}/api/queues/{queue}/events");
            let (phase, stop, seen) = load.shared();
            load.threads.push(std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                // Batches of 2 KB events fill 1 MiB segments within the drill,
                // so checkpoints hold sealed segments as well as the active one.
                let pad = "p".repeat(2000);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let body = match batch {
                        1 => json!({"payload": {"n": n}}),
                        _ => Value::Array(
                            (0..batch)
                                .map(|i| json!({"payload": {"n": n, "i": i, "pad": pad}}))
                                .collect(),
                        ),
                    };
                    let answer = post(&client, &url, body);
                    // Read after the answer: BEFORE means it came before backup.sh began.
                    let before = phase.load(Ordering::SeqCst) == BEFORE;
                    let ids: Vec<u64> = match &answer {
                        Some(v) if batch == 1 => vec![v["id"].as_u64().unwrap()],
                        Some(v) => v["ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|id| id.as_u64().unwrap())
                            .collect(),
                        None => Vec::new(),
                    };
                    let (seen, changed) = &*seen;
                    let mut seen = seen.lock().unwrap();
                    seen.failed += usize::from(answer.is_none());
                    if before {
                        seen.enqueued_before.extend(&ids);
                    }
                    seen.enqueued.extend(ids);
                    changed.notify_all();
                }
            }));
        }
        for queue in QUEUES {
            let base = base.to_string();
            let (phase, stop, seen) = load.shared();
            load.threads.push(std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                while !stop.load(Ordering::SeqCst) {
                    consume_once(&client, &base, queue, &phase, &seen);
                }
            }));
        }
        load
    }

    fn shared(&self) -> (Arc<AtomicU8>, Arc<AtomicBool>, Watched) {
        (self.phase.clone(), self.stop.clone(), self.seen.clone())
    }

    /// Waits until the load has had `enqueues` enqueues and `acks` acks answered.
    fn wait_for(&self, enqueues: usize, acks: usize) {
        let (seen, changed) = &*self.seen;
        let short = |s: &mut Seen| s.enqueued.len() < enqueues || s.acked.len() < acks;
        let (_seen, waited) = changed
            .wait_timeout_while(seen.lock().unwrap(), Duration::from_secs(60), short)
            .unwrap();
        assert!(!waited.timed_out(), "the load made too little progress");
    }

    /// Stops the load once every request on its way is answered; what it saw.
    fn stop(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.0.lock().unwrap())
    }
}

/// Leases up to 5 events of `queue` and acks them, noting each ack by phase,
/// but for every fifth id, which stays leased as if its consumer had died:
/// however fast the consumers are, the drill has events acknowledged before
/// the backup and never acked, leased when it ran, to find after the restore.
fn consume_once(
    client: &reqwest::blocking::Client,
    base: &str,
    queue: &str,
    phase: &AtomicU8,
    seen: &(Mutex<Seen>, Condvar),
) {
    let Some(v) = post(
        client,
        &format!("{base}/api/queues/{queue}/lease"),
        json!({"max": 5}),
    ) else {
        seen.0.lock().unwrap().failed += 1;
        return;
    };
    let events: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"].as_u64().unwrap() % 5 != 0)
        .collect();
    if events.is_empty() {
        return;
    }
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let receipts: Vec<&str> = events
        .iter()
        .map(|e| e["receipt"].as_str().unwrap())
        .collect();
    // Read before sending: an ack sent after backup.sh finished cannot be in its archive.
    if phase.load(Ordering::SeqCst) != AFTER {
        seen.0.lock().unwrap().ack_sent_before_end.extend(&ids);
    }
    let answer = post(
        client,
        &format!("{base}/api/queues/{queue}/ack"),
        json!({"receipts": receipts}),
    );
    let before = phase.load(Ordering::SeqCst) == BEFORE;
    let (seen, changed) = seen;
    let mut seen = seen.lock().unwrap();
    let Some(answer) = answer else {
        seen.failed += 1;
        return;
    };
    for (id, result) in ids.iter().zip(answer["results"].as_array().unwrap()) {
        if result["status"] == "ok" {
            seen.acked.insert(*id);
            if before {
                seen.ack_confirmed_before.insert(*id);
            }
        }
    }
    changed.notify_all();
}

/// Every event the broker at `base` holds, leased with a long timeout so
/// that each shows once; none may be delayed or dead.
fn everything(base: &str) -> BTreeSet<u64> {
    let client = reqwest::blocking::Client::new();
    let mut ids = BTreeSet::new();
    for queue in QUEUES {
        loop {
            let url = format!("{base}/api/queues/{queue}/lease");
            let v = post(
                &client,
                &url,
                json!({"max": 1000, "visibility_timeout_ms": 600_000}),
            )
            .expect("lease");
            let events = v["events"].as_array().unwrap();
            if events.is_empty() {
                break;
            }
            ids.extend(events.iter().map(|e| e["id"].as_u64().unwrap()));
        }
    }
    let queues: Value = client
        .get(format!("{base}/api/queues"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for q in queues["queues"].as_array().unwrap() {
        assert_eq!(
            (q["delayed"].as_u64(), q["dead"].as_u64()),
            (Some(0), Some(0)),
            "{q}"
        );
    }
    ids
}

#[test]
fn a_backup_under_load_restores_what_was_acknowledged_before_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let server = Server::start(&data);
    let load = Load::start(&server.base);
    load.wait_for(1000, 150);

    load.phase.store(DURING, Ordering::SeqCst);
    let done = backup(&server.base, &data, &backups, &[]);
    load.phase.store(AFTER, Ordering::SeqCst);
    let archive = archive_of(&done, &backups);
    assert_eq!(
        entries(&backups),
        archives(&backups),
        "nothing but the archive is left"
    );
    assert_eq!(
        entries(&data.join("checkpoints")),
        Vec::<String>::new(),
        "the checkpoint is deleted"
    );
    let live = verify(&data);
    assert!(
        live.ok,
        "verify on the data directory in use: {}{}",
        live.stdout, live.stderr
    );
    assert!(
        live.stdout
            .contains("(data directory, read without taking its lock)"),
        "{}",
        live.stdout
    );
    let seen = load.stop();

    let restored = dir.path().join("restored");
    let put = restore(&archive, &restored);
    assert!(put.ok && put.stderr.is_empty(), "restore: {}", put.stderr);
    assert_eq!(put.stdout.trim(), restored.to_str().unwrap());
    let files = entries(&restored.join("wal"));
    assert!(files.iter().all(|n| n.ends_with(".seg")), "{files:?}");
    assert!(
        files.len() > 1,
        "sealed segments and the active one: {files:?}"
    );
    let second = Server::start(&restored);
    let back = everything(&second.base);

    let kept: BTreeSet<u64> = seen
        .enqueued_before
        .difference(&seen.ack_sent_before_end)
        .copied()
        .collect();
    assert!(
        kept.len() > 50,
        "the drill must check something: {} kept",
        kept.len()
    );
    let missing: Vec<_> = kept.difference(&back).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing after restore: {missing:?}"
    );
    let returned: Vec<_> = seen.ack_confirmed_before.intersection(&back).collect();
    assert!(
        returned.is_empty(),
        "acked before the backup, back after restore: {returned:?}"
    );
    let checked = verify(&restored);
    assert!(
        checked.ok,
        "verify on the restored directory: {}{}",
        checked.stdout, checked.stderr
    );
}

#[test]
fn a_backup_of_a_stopped_broker_restores_exactly_its_unacked_events() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let mut server = Server::start(&data);
    let load = Load::start(&server.base);
    load.wait_for(600, 150);
    let seen = load.stop();
    assert_eq!(
        seen.failed, 0,
        "every request answered, so what is left is known exactly"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));

    // Nobody listens at the broker's address now: the script must not need it.
    let done = backup(&server.base, &data, &backups, &[]);
    let archive = archive_of(&done, &backups);
    assert!(
        !data.join("checkpoints").exists(),
        "no checkpoint of a stopped broker"
    );

    let restored = dir.path().join("restored");
    assert!(restore(&archive, &restored).ok);
    let checked = verify(&restored);
    assert!(checked.ok, "{}{}", checked.stdout, checked.stderr);
    let unacked: BTreeSet<u64> = seen.enqueued.difference(&seen.acked).copied().collect();
    let line = |q: &str| format!("queue {q}: ");
    assert!(
        QUEUES.iter().all(|q| checked.stdout.contains(&line(q))),
        "{}",
        checked.stdout
    );
    assert!(
        checked
            .stdout
            .contains(&format!("events total: {} in 2 queue(s)", unacked.len())),
        "{}",
        checked.stdout
    );
    let second = Server::start(&restored);
    assert_eq!(everything(&second.base), unacked);
}

/// Asserts a failed backup: non-zero, one line on stderr, and nothing in BACKUP_DIR.
fn assert_failed_cleanly(what: &str, done: &Run, backups: &Path) -> String {
    assert!(!done.ok, "{what}: backup.sh succeeded: {}", done.stdout);
    let lines = done.stderr_lines();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one line on stderr: {:?}",
        done.stderr
    );
    assert!(lines[0].starts_with("backup.sh: "), "{what}: {}", lines[0]);
    assert_eq!(done.stdout, "", "{what}");
    assert_eq!(
        entries(backups),
        Vec::<String>::new(),
        "{what}: BACKUP_DIR is left as it was"
    );
    lines[0].to_string()
}

#[test]
fn a_failed_backup_says_why_in_one_line_and_leaves_no_archive_or_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    fs::create_dir(&backups).unwrap();

    // Unreachable: the data directory's lock is held, so a broker is said to
    // run, but nothing listens where the script is told to ask.
    let held = dir.path().join("held");
    fs::create_dir_all(held.join("wal")).unwrap();
    let lock = fs::File::create(held.join("LOCK")).unwrap();
    lock.try_lock().unwrap();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{nobody}");
    let done = backup(&url, &held, &backups, &[]);
    let said = assert_failed_cleanly("unreachable", &done, &backups);
    assert!(said.contains("cannot ask the broker"), "{said}");
    drop(lock);

    let data = dir.path().join("data");
    let server = Server::start_with(&data, &[("BROKER_TOKEN", "right-token")]);
    let done = backup(
        &server.base,
        &data,
        &backups,
        &[("BROKER_TOKEN", "wrong-token")],
    );
    let said = assert_failed_cleanly("wrong token", &done, &backups);
    assert!(said.contains("HTTP 401 unauthorized"), "{said}");

    // As root chmod stops no write: a BACKUP_DIR under a regular file cannot be made.
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let under_file = file.join("sub");
    let token = [("BROKER_TOKEN", "right-token")];
    let done = backup(&server.base, &data, &under_file, &token);
    let said = assert_failed_cleanly("unwritable BACKUP_DIR", &done, &backups);
    assert!(said.contains("BACKUP_DIR"), "{said}");

    // A failure after the checkpoint was made deletes it.
    let done = backup(
        &server.base,
        &data,
        &backups,
        &[token[0], ("EVENT_BROKER", "false")],
    );
    let said = assert_failed_cleanly("archive not verified", &done, &backups);
    assert!(said.contains("does not verify"), "{said}");
    assert_eq!(
        entries(&data.join("checkpoints")),
        Vec::<String>::new(),
        "the checkpoint is deleted"
    );

    let done = backup(&server.base, &data, &backups, &token);
    archive_of(&done, &backups);
}

#[test]
fn with_admin_token_set_the_backup_sends_it_where_the_producers_token_gets_403() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let tokens = [
        ("BROKER_TOKEN", "producer-token"),
        ("ADMIN_TOKEN", "admin-token"),
    ];
    let server = Server::start_with(&data, &tokens);

    let done = backup(&server.base, &data, &backups, &tokens[..1]);
    let said = assert_failed_cleanly("producer token", &done, &backups);
    assert!(said.contains("HTTP 403 forbidden"), "{said}");

    let done = backup(&server.base, &data, &backups, &tokens);
    archive_of(&done, &backups);
}

#[test]
fn restore_refuses_a_non_empty_directory_and_old_archives_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let mut server = Server::start(&data);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/queues/{}/events", server.base, QUEUES[0]);
    post(&client, &url, json!({"payload": 1})).expect("enqueue");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10));

    fs::create_dir(&backups).unwrap();
    let aged = |name: &str, age: &str| {
        let path = backups.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if name.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::write(&path, "old").unwrap();
        }
        let touched = Command::new("touch")
            .arg("-d")
            .arg(age)
            .arg(&path)
            .status()
            .unwrap();
        assert!(touched.success());
    };
    aged("event-broker-20200101T000000Z.tar.gz", "10 days ago");
    aged("event-broker-20200109T000000Z.tar.gz", "2 days ago");
    aged("notes-20200101.txt", "10 days ago");
    aged(".event-broker-backup.killed/", "2 days ago");
    let done = backup(
        "http://127.0.0.1:1",
        &data,
        &backups,
        &[("RETENTION_DAYS", "7")],
    );
    let archive = archive_of(&done, &backups);
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        entries(&backups),
        [
            "event-broker-20200109T000000Z.tar.gz",
            &name,
            "notes-20200101.txt"
        ],
        "the 10-day-old archive and the killed run's leftovers are pruned"
    );

    let taken = dir.path().join("taken");
    fs::create_dir(&taken).unwrap();
    fs::write(taken.join("something"), "mine").unwrap();
    let refused = restore(&archive, &taken);
    assert!(!refused.ok);
    assert_eq!(refused.stderr_lines().len(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is not empty"),
        "{}",
        refused.stderr
    );
    assert_eq!(entries(&taken), ["something"]);

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(restore(&archive, &empty).ok);
    assert_eq!(entries(&empty), ["wal"]);
    let checked = verify(&empty);
    assert!(
        checked.stdout.contains("events total: 1 in 1 queue(s)"),
        "{}",
        checked.stdout
    );
}

#[test]
fn verify_names_the_first_bad_offset_of_a_damaged_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/queues/{}/events", server.base, QUEUES[1]);
    let big = "x".repeat(1000);
    for _ in 0..15 {
        let batch: Vec<Value> = (0..100).map(|_| json!({"payload": big})).collect();
        post(&client, &url, Value::Array(batch)).expect("enqueue");
    }
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10));

    let copy = dir.path().join("copy");
    fs::create_dir_all(copy.join("wal")).unwrap();
    let segments = entries(&data.join("wal"));
    assert!(
        segments.len() > 1,
        "a sealed segment to damage: {segments:?}"
    );
    for name in &segments {
        fs::copy(data.join("wal").join(name), copy.join("wal").join(name)).unwrap();
    }
    let sealed = copy.join("wal").join(&segments[0]);
    let mut bytes = fs::read(&sealed).unwrap();
    let frame = common::frame_offsets(&bytes)[5];
    bytes[frame + 8 + 30] ^= 0x20;
    fs::write(&sealed, bytes).unwrap();

    assert!(verify(&data).ok, "the original is whole");
    let damaged = verify(&copy);
    assert!(!damaged.ok);
    let at = format!("{} at byte offset {frame}", sealed.display());
    assert!(
        damaged.stdout.contains(&format!("damage: {at} ")),
        "{}",
        damaged.stdout
    );
    assert!(
        damaged.stdout.contains("result: damaged"),
        "{}",
        damaged.stdout
    );
    let lines = damaged.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", damaged.stderr);
    assert!(
        lines[0].contains(&format!("at byte offset {frame} of {}", sealed.display())),
        "{}",
        lines[0]
    );
}
