//! One named queue: the order in which its events become deliverable, and
//! how many it holds in each state.
//!
//! The orders hold `(time, id)` keys and are checked lazily: an entry whose
//! event has since moved on is skipped when it comes to the top, so no state
//! change ever has to search one.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use super::flow::Limiters;
use super::group::Groups;
use super::order::Order;
use super::ready::ReadyOrder;
use super::record::{Flow, OwnSettings};
use super::settings::QueueSettings;

/// Counts of a queue's events, and totals since the broker started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for their visible time (a delay or a retry backoff).
    pub delayed: u64,
    /// Leased and not yet acked, nacked or expired.
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// Events enqueued.
    pub enqueued_total: u64,
    /// Events acked.
    pub acked_total: u64,
    /// Events moved to the dead-letter queue.
    pub dead_lettered_total: u64,
    /// Deliveries (leases handed out).
    pub delivered_total: u64,
    /// Deliveries failed by a nack.
    pub nacked_total: u64,
    /// Deliveries failed by an expired lease.
    pub expired_total: u64,
    /// Dead events sent back to ready.
    pub redriven_total: u64,
    /// Events that expired before they were acked, dropped or dead-lettered.
    pub ttl_expired_total: u64,
    /// Leases held back by each flow limit.
    pub throttled: Throttled,
    /// The settings in force, the queue's own or the broker-wide ones.
    /// Worked out when the counts are read, as the age below is.
    pub settings: QueueSettings,
    /// How long the ready event that has waited longest has been visible
    /// (ms, by the broker's clock); 0 when none is ready. Worked out when the
    /// counts are read, so the copy a queue keeps always holds 0.
    pub oldest_ready_age_ms: u64,
}

/// Leases (a consumer's or a webhook worker's) that a flow limit cut
/// short while events were ready: counted once a lease per limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttled {
    /// By `max_in_flight`.
    pub max_in_flight: u64,
    /// By `rate_limit_per_s`.
    pub rate_limit: u64,
    /// By `group_rate_limit_per_s`.
    pub group_rate_limit: u64,
}

/// The status of an event, as its queue counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Visible now.
    Ready,
    /// Visible later.
    Delayed,
    /// Leased.
    InFlight,
    /// Leased, and an ack, nack or expiry of the lease is being written.
    Settling,
    /// In the dead-letter queue.
    Dead,
    /// Dead, and a redrive or purge is being written.
    DeadSettling,
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub name: Arc<str>,
    /// Ready events by priority, then (visible time, id): within a
    /// priority, FIFO order of becoming visible.
    pub ready: ReadyOrder,
    /// Delayed events by (visible time, id).
    pub delayed: Order<(u64, u64)>,
    /// Leases by (deadline, id, serial).
    pub deadlines: Order<(Instant, u64, u64)>,
    /// Waiting events with an expiry, by (expiry, id); checked lazily,
    /// like the other orders.
    pub expiring: Order<(u64, u64)>,
    /// Live events of the queue with an expiry.
    pub expiring_events: u64,
    /// Dead events, by id for paging.
    pub dead: BTreeSet<u64>,
    /// Events not yet applied whose enqueue is being written.
    pub reserved: u64,
    pub stats: QueueStats,
    /// The queue's own settings, from its newest settings record.
    pub settings: OwnSettings,
    /// Its own group and flow settings, from the same record.
    pub flow: Flow,
    /// The segment of that record; `None` while the queue has none.
    pub settings_at: Option<u64>,
    /// Its ordering groups.
    pub groups: Groups,
    /// Serial of the newest lease of an event without a group: their turn
    /// among the groups.
    pub ungrouped_served: u64,
    /// The rate limiters of its flow settings, made by the first lease
    /// that needs them.
    pub limiters: Option<Limiters>,
    /// When a rate limit that held back the last lease has room again.
    pub rate_wait: Option<Instant>,
    /// Deleted, and not named by a record since: the slot stays, empty, so
    /// that indexes into the queues keep their meaning.
    pub deleted: bool,
    /// A deletion of the queue is being written: cleanup copies none of its
    /// events forward, so that no copy lands after the deletion.
    pub deleting: bool,
    /// One past the highest id when the queue was last deleted, 0 if never:
    /// a receipt of a gone event below it is answered `not_found`.
    pub deleted_below: u64,
    /// How many times the queue was deleted: a long poll that sees it move
    /// answers empty.
    pub deletions: u64,
}

impl Queue {
    pub fn new(name: Arc<str>) -> Self {
        Queue {
            stats: QueueStats {
                name: name.to_string(),
                ..QueueStats::default()
            },
            name,
            ready: ReadyOrder::default(),
            delayed: Order::new(),
            deadlines: Order::new(),
            expiring: Order::new(),
            expiring_events: 0,
            dead: BTreeSet::new(),
            reserved: 0,
            settings: OwnSettings::default(),
            flow: Flow::default(),
            settings_at: None,
            groups: Groups::default(),
            ungrouped_served: 0,
            limiters: None,
            rate_wait: None,
            deleted: false,
            deleting: false,
            deleted_below: 0,
            deletions: 0,
        }
    }

    /// Events that count against `QUEUE_MAX_SIZE`: not yet acked, not dead.
    pub fn pending(&self) -> u64 {
        self.stats.ready + self.stats.delayed + self.stats.in_flight + self.reserved
    }

    /// Adjusts the counts for an event leaving `from` (if any) and entering `to` (if any).
    pub fn count(&mut self, from: Option<Status>, to: Option<Status>) {
        if let Some(from) = from {
            *self.counter(from) -= 1;
        }
        if let Some(to) = to {
            *self.counter(to) += 1;
        }
    }

    fn counter(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Ready => &mut self.stats.ready,
            Status::Delayed => &mut self.stats.delayed,
            Status::InFlight | Status::Settling => &mut self.stats.in_flight,
            Status::Dead | Status::DeadSettling => &mut self.stats.dead,
        }
    }

    /// Notes that a rate limit held back a lease until `at`.
    pub fn hold(&mut self, at: Instant) {
        self.rate_wait = Some(self.rate_wait.map_or(at, |w| w.min(at)));
    }

    /// Drops stale lease entries once they outnumber live leases, so a queue
    /// whose leases are acked long before their deadline keeps a small heap.
    pub fn compact_deadlines(&mut self, live: impl Fn(u64, u64) -> bool) {
        if self.deadlines.len() > 1024 && self.deadlines.len() as u64 > 4 * self.stats.in_flight {
            self.deadlines
                .retain(|Reverse((_, id, serial))| live(*id, *serial));
        }
    }
}
