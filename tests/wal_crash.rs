//! kill -9 while appending: every append that completed under `always` is
//! on disk after recovery.
//!
//! The test binary runs itself as the child: with `WAL_CRASH_CHILD` set, the
//! child test appends from several threads and prints `ack <seq> <tag>` once
//! each append has completed; the parent kills it mid-stream.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{body, options, replay_all};
use event_broker_wal::{Batch, Wal};

const CHILD_ENV: &str = "WAL_CRASH_CHILD";
const SEGMENT: u64 = 256 * 1024;
const THREADS: u64 = 8;

/// The body of record `tag`: its tag, then filler of a length it decides.
fn tagged(tag: u64) -> Vec<u8> {
    let mut out = tag.to_le_bytes().to_vec();
    out.extend(body(tag, (tag % 977) as usize));
    out
}

/// Child side: appends until killed. As a plain test run (no variable set) it returns at once.
#[test]
fn child_appends_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (wal, _) = Wal::open(options(Path::new(&dir), SEGMENT)).unwrap();
    let wal = Arc::new(wal);
    let round: u64 = std::env::var("WAL_CRASH_ROUND").unwrap().parse().unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let wal = wal.clone();
            s.spawn(move || {
                let stdout = std::io::stdout();
                for i in 0.. {
                    let tag = round << 40 | t << 32 | i;
                    let mut batch = Batch::new();
                    batch.push(&tagged(tag)).unwrap();
                    let pos = wal.append(batch).unwrap()[0];
                    let mut out = stdout.lock();
                    writeln!(out, "ack {} {tag}", pos.seq).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// A pseudo-random number from the standard library's hasher seed.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

#[test]
fn every_append_acknowledged_before_kill_9_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<u64, u64> = HashMap::new();
    for round in 1..=5u64 {
        let kill_after = 200 + random_below(3000);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_appends_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("WAL_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0u64;
        let mut record = |line: &str| {
            if let Some(rest) = line.strip_prefix("ack ") {
                let (seq, tag) = rest.split_once(' ').unwrap();
                acked.insert(seq.parse().unwrap(), tag.parse().unwrap());
                return true;
            }
            false
        };
        for line in lines.by_ref() {
            if record(&line.unwrap()) {
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines printed before the kill are still in the pipe.
        for line in lines {
            record(&line.unwrap());
        }
        assert!(
            seen >= kill_after,
            "round {round}: the child stopped early after {seen} acks"
        );

        let (wal, report) = Wal::open(options(dir.path(), SEGMENT)).unwrap();
        let on_disk: HashMap<u64, Vec<u8>> = replay_all(&wal)
            .into_iter()
            .map(|(p, b)| (p.seq, b))
            .collect();
        for (seq, tag) in &acked {
            let got = on_disk.get(seq).unwrap_or_else(|| {
                panic!("round {round}: acknowledged seq {seq} lost ({report:?})")
            });
            assert_eq!(
                got,
                &tagged(*tag),
                "round {round}: seq {seq} holds other bytes"
            );
        }
    }
    assert!(acked.len() >= 5 * 200);
}
