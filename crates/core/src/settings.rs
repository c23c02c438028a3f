//! Per-queue settings: a queue may have its own lease length, retries,
//! backoff and size bound in place of the broker-wide ones, and be paused.
//!
//! - A change is one [`Record::Settings`] holding the queue's whole own
//!   settings, applied through `State::apply` like every record, so settings
//!   survive restarts and are in checkpoints and backups; cleanup writes
//!   them again before it deletes the segment holding them, as it does
//!   subscriptions.
//! - A field the queue does not set follows the broker-wide setting of the
//!   same name, also when that changes at a restart: the settings in force
//!   ([`QueueSettings`]) are worked out where they are used.
//! - A change applies to what happens after it: a lease already given keeps
//!   its deadline; the next lease, failure and enqueue use the new values.
//! - A queue with settings exists whether it holds events or not: it is
//!   listed and shown, after a restart too.
//! - While a queue is paused its leases answer no events and its long polls
//!   wait (a resume wakes them), so webhook workers, which lease like any
//!   consumer, stop too. Enqueue, ack, nack and extend work as ever, and
//!   the reaper fails expired leases by the queue's rules.
//! - `message_ttl_ms` is the TTL of events enqueued without their own
//!   `ttl_ms`, fixed when each is enqueued: a change leaves the expiry of
//!   the events already there as it was. `dead_letter_expired` is read when
//!   an event expires (`expiry` module).
//! - `max_backoff_ms` is a cap: below the base in force it makes every
//!   retry wait the cap, rather than being refused. So a queue can lower one
//!   without naming the other, and no change of the broker-wide values at a
//!   restart can make a queue's settings invalid.

use std::borrow::Cow;
use std::time::Duration;

use super::record::{Flow, Multiplier, OwnSettings, Record};
use super::rules;
use super::state::State;
use super::{check_queue_name, Backoff, Broker, BrokerError, Core, Limits, QueueStats};

/// A queue's settings in force: its own where it has them, else the broker-wide ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// Lease length when the consumer names none (ms).
    pub visibility_timeout_ms: u64,
    /// Failures after the first before an event is dead.
    pub max_retries: u32,
    /// Delay after the first failure (ms).
    pub base_backoff_ms: u64,
    /// Cap on any retry delay (ms).
    pub max_backoff_ms: u64,
    /// Growth of the delay per failure.
    pub backoff_multiplier: f64,
    /// Events not yet acked nor dead that the queue holds at most.
    pub max_size: u64,
    /// How long its events are to live (ms); `None`: for ever.
    pub message_ttl_ms: Option<u64>,
    /// Whether expired events are to go to the dead-letter queue.
    pub dead_letter_expired: bool,
    /// Whether leases are held back.
    pub paused: bool,
    /// Events of one group in flight at once.
    pub group_concurrency: u32,
    /// Events of the queue in flight at once; `None`: no limit.
    pub max_in_flight: Option<u32>,
    /// Deliveries per second; `None`: no limit.
    pub rate_limit_per_s: Option<u32>,
    /// Deliveries at once after a quiet spell: the queue's own, else its rate.
    pub rate_limit_burst: Option<u32>,
    /// Deliveries per second of each group; `None`: no limit.
    pub group_rate_limit_per_s: Option<u32>,
}

impl Default for QueueSettings {
    /// The settings of a queue that has none of its own, under the default limits.
    fn default() -> Self {
        OwnSettings::default().effective(&Limits::default())
    }
}

impl QueueSettings {
    /// These settings with the group and flow settings `flow`.
    pub fn with_flow(self, flow: &Flow) -> QueueSettings {
        QueueSettings {
            group_concurrency: flow.group_concurrency.unwrap_or(1),
            max_in_flight: flow.max_in_flight,
            rate_limit_per_s: flow.rate_limit_per_s,
            rate_limit_burst: flow.rate_limit_burst.or(flow.rate_limit_per_s),
            group_rate_limit_per_s: flow.group_rate_limit_per_s,
            ..self
        }
    }

    /// The lease length when the consumer names none.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_millis(self.visibility_timeout_ms)
    }

    /// The retry schedule, with the broker's jitter `seed`.
    pub fn backoff(&self, seed: u64) -> Backoff {
        Backoff {
            base_ms: self.base_backoff_ms,
            max_ms: self.max_backoff_ms,
            multiplier: self.backoff_multiplier,
            seed,
        }
    }
}

impl OwnSettings {
    /// The settings in force under the broker-wide `limits`.
    pub fn effective(&self, limits: &Limits) -> QueueSettings {
        QueueSettings {
            visibility_timeout_ms: self
                .visibility_timeout_ms
                .unwrap_or(limits.visibility_timeout.as_millis() as u64),
            max_retries: self.max_retries.unwrap_or(limits.max_retries),
            base_backoff_ms: self.base_backoff_ms.unwrap_or(limits.backoff.base_ms),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(limits.backoff.max_ms),
            backoff_multiplier: self
                .backoff_multiplier
                .map_or(limits.backoff.multiplier, |m| m.0),
            max_size: self.max_size.unwrap_or(limits.queue_max_size),
            message_ttl_ms: self.message_ttl_ms,
            dead_letter_expired: self.dead_letter_expired,
            paused: self.paused,
            group_concurrency: 1,
            max_in_flight: None,
            rate_limit_per_s: None,
            rate_limit_burst: None,
            group_rate_limit_per_s: None,
        }
    }
}

/// The fields a change of a queue's settings names; `None` is a field
/// left out. Values are checked when the change is made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SettingsChange {
    /// Lease length when the consumer names none (ms).
    pub visibility_timeout_ms: Option<u64>,
    /// Failures after the first before an event is dead.
    pub max_retries: Option<u64>,
    /// Delay after the first failure (ms).
    pub base_backoff_ms: Option<u64>,
    /// Cap on any retry delay (ms).
    pub max_backoff_ms: Option<u64>,
    /// Growth of the delay per failure.
    pub backoff_multiplier: Option<f64>,
    /// Events not yet acked nor dead that the queue holds at most.
    pub max_size: Option<u64>,
    /// How long its events are to live (ms); `Some(None)` names none.
    pub message_ttl_ms: Option<Option<u64>>,
    /// Whether expired events are to go to the dead-letter queue.
    pub dead_letter_expired: Option<bool>,
    /// Whether leases are held back.
    pub paused: Option<bool>,
    /// Events of one group in flight at once; `Some(None)`: back to one.
    pub group_concurrency: Option<Option<u64>>,
    /// Events of the queue in flight at once; `Some(None)` names none.
    pub max_in_flight: Option<Option<u64>>,
    /// Deliveries per second; `Some(None)` names none.
    pub rate_limit_per_s: Option<Option<u64>>,
    /// Deliveries at once after a quiet spell; `Some(None)`: the rate.
    pub rate_limit_burst: Option<Option<u64>>,
    /// Deliveries per second of each group; `Some(None)` names none.
    pub group_rate_limit_per_s: Option<Option<u64>>,
}

impl SettingsChange {
    /// A change of `paused` alone: what pausing and resuming are.
    pub fn paused(paused: bool) -> Self {
        SettingsChange {
            paused: Some(paused),
            ..SettingsChange::default()
        }
    }

    /// `own` and `flow` with the fields named here set, each checked
    /// against the range of the broker-wide setting of its name, or its
    /// own; the first refused is named.
    fn applied_to(
        &self,
        (own, mut flow): (OwnSettings, Flow),
    ) -> Result<(OwnSettings, Flow), BrokerError> {
        let own = self.applied_to_own(own)?;
        let set =
            |rule: rules::Whole, field: &str, change: Option<Option<u64>>, to: &mut Option<u32>| {
                if let Some(n) = change {
                    // The rules' ranges are well within a u32.
                    *to = n
                        .map(|n| rule.check(field, n))
                        .transpose()?
                        .map(|n| n as u32);
                }
                Ok::<(), BrokerError>(())
            };
        set(
            rules::GROUP_CONCURRENCY,
            "group_concurrency",
            self.group_concurrency,
            &mut flow.group_concurrency,
        )?;
        set(
            rules::MAX_IN_FLIGHT,
            "max_in_flight",
            self.max_in_flight,
            &mut flow.max_in_flight,
        )?;
        set(
            rules::RATE,
            "rate_limit_per_s",
            self.rate_limit_per_s,
            &mut flow.rate_limit_per_s,
        )?;
        set(
            rules::RATE,
            "rate_limit_burst",
            self.rate_limit_burst,
            &mut flow.rate_limit_burst,
        )?;
        set(
            rules::RATE,
            "group_rate_limit_per_s",
            self.group_rate_limit_per_s,
            &mut flow.group_rate_limit_per_s,
        )?;
        // One is the default: kept as none, so that the record stays plain.
        if flow.group_concurrency == Some(1) {
            flow.group_concurrency = None;
        }
        Ok((own, flow))
    }

    fn applied_to_own(&self, mut own: OwnSettings) -> Result<OwnSettings, BrokerError> {
        let whole = |rule: rules::Whole, field: &str, n: Option<u64>| {
            n.map(|n| rule.check(field, n)).transpose()
        };
        let timeout = rules::VISIBILITY_TIMEOUT_MS;
        if let Some(ms) = whole(timeout, "visibility_timeout_ms", self.visibility_timeout_ms)? {
            own.visibility_timeout_ms = Some(ms);
        }
        if let Some(n) = whole(rules::MAX_RETRIES, "max_retries", self.max_retries)? {
            // The rule's range is well within a u32.
            own.max_retries = Some(n as u32);
        }
        if let Some(ms) = whole(rules::BACKOFF_MS, "base_backoff_ms", self.base_backoff_ms)? {
            own.base_backoff_ms = Some(ms);
        }
        if let Some(ms) = whole(rules::BACKOFF_MS, "max_backoff_ms", self.max_backoff_ms)? {
            own.max_backoff_ms = Some(ms);
        }
        if let Some(x) = self.backoff_multiplier {
            let x = rules::BACKOFF_MULTIPLIER.check("backoff_multiplier", x)?;
            own.backoff_multiplier = Some(Multiplier(x));
        }
        if let Some(n) = whole(rules::QUEUE_MAX_SIZE, "max_size", self.max_size)? {
            own.max_size = Some(n);
        }
        if let Some(ttl) = self.message_ttl_ms {
            own.message_ttl_ms = whole(rules::MESSAGE_TTL_MS, "message_ttl_ms", ttl)?;
        }
        if let Some(on) = self.dead_letter_expired {
            own.dead_letter_expired = on;
        }
        if let Some(on) = self.paused {
            own.paused = on;
        }
        Ok(own)
    }
}

impl Broker {
    /// Replaces the settings of `queue`, which is made if it does not
    /// exist: the fields `change` names, the broker-wide settings for the
    /// rest, not paused unless it says so. Answers the queue once the
    /// change is in the log.
    pub async fn put_settings(
        &self,
        queue: &str,
        change: &SettingsChange,
    ) -> Result<QueueStats, BrokerError> {
        self.configure(queue, change, true).await
    }

    /// Changes the settings `change` names of `queue`, keeping the others;
    /// [`BrokerError::UnknownQueue`] when the queue does not exist.
    pub async fn patch_settings(
        &self,
        queue: &str,
        change: &SettingsChange,
    ) -> Result<QueueStats, BrokerError> {
        self.configure(queue, change, false).await
    }

    async fn configure(
        &self,
        queue: &str,
        change: &SettingsChange,
        replace: bool,
    ) -> Result<QueueStats, BrokerError> {
        check_queue_name(queue)?;
        self.check_writable()?;
        // Held until the record is applied: cleanup copies no settings
        // forward meanwhile, and the next change starts from this one.
        let _one_at_a_time = self.forwarded.lock().await;
        let pending = {
            let mut core = self.shared.lock();
            let current = match core.state.queue_id(queue) {
                Some(q) => {
                    let queue = &core.state.queues[q as usize];
                    (queue.settings, queue.flow)
                }
                None if replace => Default::default(),
                None => return Err(BrokerError::UnknownQueue(queue.to_string())),
            };
            let (settings, flow) =
                change.applied_to(if replace { Default::default() } else { current })?;
            let record = Record::settings(Cow::Borrowed(queue), settings, flow);
            self.submit(&mut core, vec![record], Box::new(|_: &mut Core, r| r))
        };
        pending.result().await?;
        // A resumed queue may have events that fell due while it was paused:
        // its waiting polls look again.
        self.shared.wake(&[queue.into()]);
        self.queue(queue)
    }

    /// The settings in force of queue `q`.
    pub(super) fn settings_of(&self, core: &Core, q: u32) -> QueueSettings {
        let queue = &core.state.queues[q as usize];
        queue
            .settings
            .effective(&self.limits)
            .with_flow(&queue.flow)
    }
}

/// The settings records of the queues whose newest one is in `segment`:
/// what cleanup writes again before deleting it.
pub(super) fn settings_in(state: &State, segment: u64) -> Vec<Record<'static>> {
    state
        .queues
        .iter()
        .filter(|queue| queue.settings_at == Some(segment))
        .map(|queue| {
            Record::settings(
                Cow::Owned(queue.name.to_string()),
                queue.settings,
                queue.flow,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_left_out_follows_the_broker_wide_setting() {
        let limits = Limits::default();
        let own = OwnSettings {
            max_retries: Some(2),
            paused: true,
            ..OwnSettings::default()
        };
        let effective = own.effective(&limits);
        assert_eq!(effective.max_retries, 2);
        assert!(effective.paused);
        assert_eq!(effective.visibility_timeout(), limits.visibility_timeout);
        assert_eq!(effective.backoff(0), limits.backoff);
        assert_eq!(effective.max_size, limits.queue_max_size);
        assert_eq!(effective.message_ttl_ms, None);
    }

    #[test]
    fn a_change_sets_only_what_it_names_and_refuses_by_the_broker_wide_ranges() {
        let own = OwnSettings {
            max_size: Some(7),
            message_ttl_ms: Some(1_000),
            ..OwnSettings::default()
        };
        let paused = SettingsChange::paused(true).applied_to_own(own).unwrap();
        assert_eq!(
            paused,
            OwnSettings {
                paused: true,
                ..own
            }
        );
        let cleared = SettingsChange {
            message_ttl_ms: Some(None),
            ..SettingsChange::default()
        };
        assert_eq!(cleared.applied_to_own(own).unwrap().message_ttl_ms, None);
        for (change, message) in [
            (
                SettingsChange {
                    max_retries: Some(1_001),
                    ..SettingsChange::default()
                },
                "max_retries: expected a whole number from 0 to 1000, got 1001",
            ),
            (
                SettingsChange {
                    visibility_timeout_ms: Some(0),
                    ..SettingsChange::default()
                },
                "visibility_timeout_ms: expected a whole number of milliseconds from 1 to 43200000, got 0",
            ),
            (
                SettingsChange {
                    backoff_multiplier: Some(f64::INFINITY),
                    ..SettingsChange::default()
                },
                "backoff_multiplier: expected a number from 1.0 to 100.0, got inf",
            ),
            (
                SettingsChange {
                    message_ttl_ms: Some(Some(2_592_000_001)),
                    ..SettingsChange::default()
                },
                "message_ttl_ms: expected a whole number of milliseconds from 1 to 2592000000, got 2592000001",
            ),
            (
                SettingsChange {
                    max_size: Some(0),
                    ..SettingsChange::default()
                },
                "max_size: expected a whole number from 1 to 100000000, got 0",
            ),
        ] {
            let err = change.applied_to((own, Flow::default())).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }
}
