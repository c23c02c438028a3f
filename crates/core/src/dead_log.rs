//! A log line for each event moved to a dead-letter queue, once its `Dead`
//! record is durable, whether a nack or an expired lease killed it, or its
//! `Expire` record when its TTL sent it there; held
//! back to one a second per queue ([`Throttle`]). Recovery replays `Dead`
//! records without this: it logs what it found, not what happened earlier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::expiry::TTL_EXPIRED;
use super::record::Record;
use super::state::State;
use crate::log_throttle::Throttle;

/// The throttle of each queue, by its index in the state.
#[derive(Debug, Default)]
pub(super) struct DeadLog {
    throttles: HashMap<u32, Throttle>,
}

/// A dead-lettering to log once the state is unlocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeadLine {
    queue: Arc<str>,
    id: u64,
    failures: u32,
    error: Option<String>,
    /// Lines of the queue held back since its last one.
    suppressed: u64,
}

impl DeadLog {
    /// The lines for the `Dead` records among `records`, just applied to
    /// `state` at `now`: as many as the queues' throttles let through.
    pub fn lines(&mut self, state: &State, records: &[Record<'_>], now: Instant) -> Vec<DeadLine> {
        let mut lines = Vec::new();
        for record in records {
            let died: Vec<(u64, Option<&str>)> = match record {
                Record::Dead { id, error, .. } => vec![(*id, error.as_deref())],
                Record::Expire {
                    ids,
                    dead_at: Some(_),
                } => ids.iter().map(|id| (*id, Some(TTL_EXPIRED))).collect(),
                _ => continue,
            };
            for (id, error) in died {
                let Some(event) = state.events.get(&id) else {
                    continue;
                };
                let throttle = self.throttles.entry(event.queue).or_default();
                if let Some(suppressed) = throttle.admit(now) {
                    lines.push(DeadLine {
                        queue: state.queues[event.queue as usize].name.clone(),
                        id,
                        failures: event.failures(),
                        error: error.map(str::to_string),
                        suppressed,
                    });
                }
            }
        }
        lines
    }
}

impl DeadLine {
    /// Writes the line.
    pub fn write(&self) {
        tracing::warn!(
            queue = %self.queue,
            id = self.id,
            failures = self.failures,
            error = self.error.as_deref(),
            suppressed = self.suppressed,
            "event dead-lettered"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use super::*;
    use crate::queue::Status;
    use crate::state::Event;
    use event_broker_wal::Position;

    fn state_with_dead(queues: &[&str], events: &[(u64, usize)]) -> State {
        let mut state = State::new(0, 0);
        for name in queues {
            state.intern(name);
        }
        for &(id, q) in events {
            let at = Position {
                seq: 0,
                segment: 0,
                offset: 0,
                len: 0,
            };
            let mut event = Event::new(&at, 0, q as u32, Status::Dead, 0);
            event.set_failures(3);
            state.events.insert(id, event);
        }
        state
    }

    fn dead(id: u64) -> Record<'static> {
        Record::Dead {
            id,
            failures: 3,
            dead_at: 0,
            error: Some(Cow::Borrowed("webhook answered 500")),
        }
    }

    #[test]
    fn one_line_a_second_per_queue_counting_those_held_back() {
        let state = state_with_dead(&["a", "b"], &[(1, 0), (2, 0), (3, 1), (4, 0)]);
        let start = Instant::now();
        let mut log = DeadLog::default();
        let records = [dead(1), dead(2), dead(3), Record::Ack { ids: vec![9] }];
        let lines = log.lines(&state, &records, start);
        let ids: Vec<(&str, u64, u64)> = lines
            .iter()
            .map(|l| (&*l.queue, l.id, l.suppressed))
            .collect();
        assert_eq!(ids, [("a", 1, 0), ("b", 3, 0)]);
        assert_eq!(lines[0].error.as_deref(), Some("webhook answered 500"));

        let later = start + Duration::from_secs(1);
        let lines = log.lines(&state, &[dead(4)], later);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].id, lines[0].suppressed),
            (4, 1),
            "event 2 was held back"
        );
    }

    #[test]
    fn an_expiry_to_the_dead_letter_queue_writes_a_line_and_a_drop_none() {
        let state = state_with_dead(&["a", "b"], &[(1, 0), (2, 1)]);
        let records = [
            Record::Expire {
                ids: vec![1],
                dead_at: Some(0),
            },
            Record::Expire {
                ids: vec![2],
                dead_at: None,
            },
        ];
        let lines = DeadLog::default().lines(&state, &records, Instant::now());
        let got: Vec<(u64, Option<&str>)> =
            lines.iter().map(|l| (l.id, l.error.as_deref())).collect();
        assert_eq!(got, [(1, Some("expired"))]);
    }

    #[test]
    fn a_record_of_an_event_no_longer_there_writes_no_line() {
        let state = state_with_dead(&["a"], &[]);
        let lines = DeadLog::default().lines(&state, &[dead(1)], Instant::now());
        assert!(lines.is_empty());
    }
}
