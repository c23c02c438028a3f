//! What a log on disk holds, read without opening it: the log layer checks
//! every frame ([`check_log`]) and each record is decoded with the broker's
//! codec and applied to a fresh state, as a broker starting now would apply
//! it, so the counts are the events that broker would serve.

use std::fmt;
use std::path::{Path, PathBuf};

use super::queue::QueueStats;
use super::record::{self, DecodeError};
use super::state::State;
use super::BrokerError;
use event_broker_wal::{check_log, LogCheck, LogKind, LostRange};

/// A valid frame whose body is not a record this build reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset of the frame in it.
    pub offset: u64,
    /// Why it cannot be read.
    pub error: DecodeError,
}

/// What [`inspect`] found.
#[derive(Debug)]
pub struct Inspection {
    /// The directory inspected.
    pub dir: PathBuf,
    /// What the log layer found: segments, records, torn tail, damage.
    pub log: LogCheck,
    /// Per queue, oldest first: live events after replay by status. None is
    /// in flight, since leases are not logged.
    pub queues: Vec<QueueStats>,
    /// Webhook subscriptions in force.
    pub subscriptions: usize,
    /// Records that did not decode, in log order: a broker would refuse to open.
    pub undecodable: Vec<Undecodable>,
}

impl Inspection {
    /// The first damage in log order, as (file, byte offset, what): `None`
    /// when a broker would open the log as it is.
    pub fn first_damage(&self) -> Option<(&Path, u64, String)> {
        let frames = self
            .log
            .damage
            .iter()
            .map(|d: &LostRange| (d.path.as_path(), d.offset, d.defect.clone()));
        let records = self.undecodable.iter().map(|u| {
            (
                u.path.as_path(),
                u.offset,
                format!("undecodable record: {}", u.error),
            )
        });
        // Segment file names are zero-padded sequence numbers in one folder,
        // so path order is log order.
        frames
            .chain(records)
            .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
    }

    /// Damaged ranges and undecodable records.
    pub fn damage_count(&self) -> usize {
        self.log.damage.len() + self.undecodable.len()
    }
}

/// Checks the log in `dir` (a data directory, in use or not, or a
/// checkpoint) and counts its events as of wall time `now_ms`. Damage is in
/// the answer; an error means `dir` could not be read at all.
pub fn inspect(dir: &Path, now_ms: u64) -> Result<Inspection, BrokerError> {
    let mut state = State::new(0, 0);
    let mut undecodable = Vec::new();
    let log = check_log(dir, &mut |pos, body| match record::decode(body) {
        Ok(record) => {
            state.apply(&record, pos, now_ms);
        }
        Err(error) => undecodable.push((pos.segment, pos.offset, error)),
    })?;
    let undecodable = undecodable
        .into_iter()
        .map(|(segment, offset, error)| Undecodable {
            path: log
                .segments
                .iter()
                .find(|s| s.first_seq == segment)
                .map(|s| s.path.clone())
                .unwrap_or_default(),
            offset,
            error,
        })
        .collect();
    let queues = state
        .live_queues()
        .into_iter()
        .map(|q| {
            state.promote(q, now_ms);
            state.queues[q as usize].stats.clone()
        })
        .collect();
    Ok(Inspection {
        dir: dir.to_path_buf(),
        log,
        queues,
        subscriptions: state.subscriptions.len(),
        undecodable,
    })
}

/// The summary `event-broker verify` prints: one fact per line, `name: value`.
impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.log.kind {
            LogKind::DataDir => "data directory, read without taking its lock",
            LogKind::Checkpoint => "checkpoint, checked against its manifest",
        };
        writeln!(f, "checked: {} ({kind})", self.dir.display())?;
        writeln!(f, "segments: {}", self.log.segments.len())?;
        writeln!(f, "bytes: {}", self.log.bytes())?;
        writeln!(f, "records: {}", self.log.records())?;
        if let Some(t) = &self.log.torn_tail {
            writeln!(
                f,
                "torn tail: {} at byte offset {} ({} bytes, {}): an interrupted write at the end of the newest segment, which recovery cuts off; not damage",
                t.path.display(), t.offset, t.bytes, t.defect
            )?;
        }
        for path in &self.log.vanished {
            writeln!(
                f,
                "vanished: {} (deleted by the broker's cleanup while checking)",
                path.display()
            )?;
        }
        for d in &self.log.damage {
            writeln!(
                f,
                "damage: {} at byte offset {} ({} bytes): {}",
                d.path.display(),
                d.offset,
                d.bytes,
                d.defect
            )?;
        }
        for u in &self.undecodable {
            writeln!(
                f,
                "damage: {} at byte offset {}: undecodable record: {}",
                u.path.display(),
                u.offset,
                u.error
            )?;
        }
        writeln!(f, "events: live events after replay, by queue: ready, delayed, dead (leases are not logged, so none is in flight)")?;
        let mut total = 0;
        for q in &self.queues {
            total += q.ready + q.delayed + q.dead;
            writeln!(
                f,
                "queue {}: {} ready, {} delayed, {} dead",
                q.name, q.ready, q.delayed, q.dead
            )?;
        }
        writeln!(f, "events total: {total} in {} queue(s)", self.queues.len())?;
        writeln!(f, "subscriptions: {}", self.subscriptions)?;
        match self.first_damage() {
            None => writeln!(f, "result: ok"),
            Some((path, offset, _)) => writeln!(
                f,
                "result: damaged, {} damaged range(s), the first at byte offset {offset} of {}",
                self.damage_count(),
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::tests::event;
    use crate::{Broker, BrokerOptions, Limits};
    use event_broker_clock::{Clock, ManualClock};
    use event_broker_wal::{FsyncPolicy, WalOptions};

    #[test]
    fn a_running_brokers_log_counts_its_live_events_by_queue_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let limits = Limits {
            max_retries: 0,
            ..Limits::default()
        };
        let options = BrokerOptions {
            wal: WalOptions {
                fsync: FsyncPolicy::Never,
                ..WalOptions::new(dir.path())
            },
            limits,
            clock: clock.clone(),
        };
        let (broker, _) = Broker::open(options).unwrap();
        let four = [event(0), event(0), event(0), event(60_000)];
        broker.enqueue_blocking("a", &four).unwrap();
        broker.enqueue_blocking("b", &[event(0), event(0)]).unwrap();
        let dies = broker.lease("a", 1, None).unwrap();
        let receipt = [dies[0].receipt.to_string()];
        broker
            .nack("a", &receipt, None, Some("no"))
            .unwrap()
            .wait()
            .unwrap();
        let acked = broker.lease("b", 1, None).unwrap();
        let receipt = [acked[0].receipt.to_string()];
        broker.ack("b", &receipt).unwrap().wait().unwrap();
        broker.lease("b", 1, None).unwrap();
        clock.advance(Duration::from_secs(1));

        // The broker holds the lock; inspecting needs none.
        let found = inspect(dir.path(), clock.unix_ms()).unwrap();
        let counts: Vec<_> = found
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.ready, q.delayed, q.dead, q.in_flight))
            .collect();
        assert_eq!(
            counts,
            [("a", 2, 1, 1, 0), ("b", 1, 0, 0, 0)],
            "the leased event of b is ready again"
        );
        assert_eq!(
            found.log.records(),
            8,
            "one enqueue per event, a death and an ack; leases are not logged"
        );
        assert_eq!(found.first_damage(), None);
        let summary = found.to_string();
        assert!(
            summary.contains("queue a: 2 ready, 1 delayed, 1 dead\n"),
            "{summary}"
        );
        assert!(summary.ends_with("result: ok\n"), "{summary}");
    }

    #[test]
    fn a_frame_that_is_not_a_record_is_damage_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = event_broker_wal::Wal::open(WalOptions::new(dir.path())).unwrap();
        let ack = crate::Record::Ack { ids: vec![1] }.encode();
        wal.append(event_broker_wal::Batch::of(&ack).unwrap())
            .unwrap();
        let bad = wal
            .append(event_broker_wal::Batch::of(b"\x09not a record").unwrap())
            .unwrap();
        wal.close().unwrap();

        let found = inspect(dir.path(), 0).unwrap();
        let (path, offset, what) = found.first_damage().expect("damage");
        assert!(
            path.ends_with("wal/00000000000000000000.seg"),
            "{}",
            path.display()
        );
        assert_eq!(offset, bad[0].offset);
        assert!(what.contains("version 9"), "{what}");
        assert!(found.to_string().contains("result: damaged"));
    }
}
