//! The broker against a small reference model: random sequences of every
//! operation, restarts and cleanups included, with every answer and every
//! queue's contents and settings equal after every step. Settings changes
//! (`PUT` and `PATCH` of lease length, retries, backoff, size bound, TTL
//! and pause) go into the model too: each rules its queue from the change
//! on. Events carry priorities and TTLs: leases follow priority, and
//! expired events are never leased and go, or go to the dead-letter
//! queue, when the reaper comes or their lease fails. Events carry
//! ordering groups: leases follow each group's id order and its
//! `group_concurrency`, take turns across groups, and keep within the
//! queue's `max_in_flight` and token-bucket rate limits; a closing drain
//! checks that every event still pending is delivered.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::broker::{block_on, limits, TestBroker, START_MS};
use event_broker_core::{
    Backoff, BrokerError, EventView, Limits, NewEvent, QueueSettings, ReceiptStatus,
    SettingsChange, ViewStatus,
};
use event_broker_wal::FsyncPolicy;
use proptest::prelude::*;

const QUEUES: [&str; 2] = ["alpha", "beta"];
const LEASE_EXPIRED: &str = "lease expired";
const TTL_EXPIRED: &str = "expired";

/// An event to enqueue: (payload length, delay ms, idempotency key,
/// priority, TTL ms, group).
type NewOne = (usize, u64, Option<u8>, u8, Option<u64>, Option<u8>);

/// The name of group `g`.
fn group_name(g: u8) -> String {
    format!("tenant-{g}")
}
/// Receipt picks: nine of those handed out, newest first (a made-up one
/// where there are fewer), and two forged from the newest (see
/// `Model::pick_receipt`).
const PICKS: usize = 11;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        queue: usize,
        events: Vec<NewOne>,
    },
    Lease {
        queue: usize,
        max: usize,
        /// `None`: the queue's own lease length.
        timeout_ms: Option<u64>,
    },
    Ack {
        queue: usize,
        picks: Vec<usize>,
    },
    Nack {
        queue: usize,
        pick: usize,
        delay_ms: Option<u64>,
    },
    Extend {
        queue: usize,
        pick: usize,
        timeout_ms: u64,
    },
    Advance(u64),
    Reap,
    Redrive {
        queue: usize,
        pick: Option<usize>,
    },
    Purge {
        queue: usize,
        pick: Option<usize>,
    },
    /// Cancels the queue's `pick`th event by id in any state (an id that
    /// is none of its events past the end).
    Cancel {
        queue: usize,
        pick: usize,
    },
    /// Deletes the queue with all its events and its settings.
    DeleteQueue {
        queue: usize,
    },
    Cleanup,
    Restart,
    /// An enqueue whose write a crash cuts short after `cut`/256 of its
    /// bytes (256: none cut), then a restart: the batch is kept whole or lost whole.
    CrashInEnqueue {
        queue: usize,
        events: Vec<NewOne>,
        cut: u64,
    },
    /// A `PUT` (`replace`) or `PATCH` of the queue's settings.
    Settings {
        queue: usize,
        replace: bool,
        change: Change,
    },
    /// The end of the drain: nothing is left but dead events.
    Drained,
}

/// The fields a settings change names; `max_size: Some(0)` is refused.
#[derive(Debug, Clone, Copy, Default)]
struct Change {
    visibility_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    base_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    backoff_multiplier: Option<f64>,
    max_size: Option<u64>,
    message_ttl_ms: Option<Option<u64>>,
    dead_letter_expired: Option<bool>,
    paused: Option<bool>,
    flow: FlowChange,
}

/// The group and flow fields of a settings change; `Some(None)` names none.
#[derive(Debug, Clone, Copy, Default)]
struct FlowChange {
    group_concurrency: Option<Option<u64>>,
    max_in_flight: Option<Option<u64>>,
    rate_limit_per_s: Option<Option<u64>>,
    rate_limit_burst: Option<Option<u64>>,
    group_rate_limit_per_s: Option<Option<u64>>,
}

/// A queue's own group and flow settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Flow {
    group_concurrency: Option<u64>,
    max_in_flight: Option<u64>,
    rate_limit_per_s: Option<u64>,
    rate_limit_burst: Option<u64>,
    group_rate_limit_per_s: Option<u64>,
}

impl Flow {
    fn concurrency(&self) -> usize {
        self.group_concurrency.unwrap_or(1) as usize
    }

    /// The rates the token buckets follow, if any.
    fn rates(&self) -> Option<Rates> {
        let rates = (
            self.rate_limit_per_s,
            self.rate_limit_burst,
            self.group_rate_limit_per_s,
        );
        (rates.0.is_some() || rates.2.is_some()).then_some(rates)
    }
}

/// A queue's rate, burst and group rate.
type Rates = (Option<u64>, Option<u64>, Option<u64>);

/// A turn in a lease: (priority, highest first; serial of the newest lease
/// of the group; visible time; id), and the group (`None`: no group).
type Turn = ((std::cmp::Reverse<u8>, u64, u64, u64), Option<u8>);

/// A token bucket as a theoretical arrival time: a delivery at `now` is
/// allowed unless the bucket's next free time, less its burst's worth, is
/// still to come; each delivery moves that time one interval on.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    next: Option<u128>,
}

impl Bucket {
    fn take(&mut self, now_ns: u128, per_s: u64, burst: u64) -> bool {
        let interval = 1_000_000_000u128 / u128::from(per_s);
        let tolerance = interval * u128::from(burst - 1);
        let next = self.next.unwrap_or(now_ns);
        if now_ns + tolerance < next {
            return false;
        }
        self.next = Some(next.max(now_ns) + interval);
        true
    }
}

impl Change {
    fn request(&self) -> SettingsChange {
        SettingsChange {
            visibility_timeout_ms: self.visibility_timeout_ms,
            max_retries: self.max_retries.map(u64::from),
            base_backoff_ms: self.base_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
            backoff_multiplier: self.backoff_multiplier,
            max_size: self.max_size,
            message_ttl_ms: self.message_ttl_ms,
            dead_letter_expired: self.dead_letter_expired,
            paused: self.paused,
            group_concurrency: self.flow.group_concurrency,
            max_in_flight: self.flow.max_in_flight,
            rate_limit_per_s: self.flow.rate_limit_per_s,
            rate_limit_burst: self.flow.rate_limit_burst,
            group_rate_limit_per_s: self.flow.group_rate_limit_per_s,
        }
    }
}

fn flow_change() -> impl Strategy<Value = FlowChange> {
    use proptest::option::weighted;
    let limit = |values: Vec<u64>| weighted(0.25, weighted(0.8, proptest::sample::select(values)));
    (
        limit(vec![1, 2, 3, 0]),
        limit(vec![1, 2, 4]),
        limit(vec![1, 2, 5]),
        limit(vec![1, 3]),
        limit(vec![1, 2]),
    )
        .prop_map(
            |(
                group_concurrency,
                max_in_flight,
                rate_limit_per_s,
                rate_limit_burst,
                group_rate_limit_per_s,
            )| FlowChange {
                group_concurrency,
                max_in_flight,
                rate_limit_per_s,
                rate_limit_burst,
                group_rate_limit_per_s,
            },
        )
}

fn change() -> impl Strategy<Value = Change> {
    use proptest::option::weighted;
    (
        weighted(0.3, prop_oneof![Just(500u64), Just(2_000), Just(30_000)]),
        weighted(0.4, 0..3u32),
        weighted(0.3, prop_oneof![Just(0u64), Just(100), Just(5_000)]),
        weighted(0.3, prop_oneof![Just(50u64), Just(10_000), Just(60_000)]),
        weighted(0.3, prop_oneof![Just(1.0f64), Just(2.0), Just(3.5)]),
        weighted(0.3, prop_oneof![8 => 1..20u64, 1 => Just(0)]),
        weighted(
            0.3,
            weighted(0.7, prop_oneof![Just(1_000u64), Just(20_000)]),
        ),
        weighted(0.3, proptest::bool::ANY),
        weighted(0.5, proptest::bool::ANY),
        flow_change(),
    )
        .prop_map(
            |(
                visibility_timeout_ms,
                max_retries,
                base_backoff_ms,
                max_backoff_ms,
                backoff_multiplier,
                max_size,
                message_ttl_ms,
                dead_letter_expired,
                paused,
                flow,
            )| Change {
                visibility_timeout_ms,
                max_retries,
                base_backoff_ms,
                max_backoff_ms,
                backoff_multiplier,
                max_size,
                message_ttl_ms,
                dead_letter_expired,
                paused,
                flow,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let queue = 0..QUEUES.len();
    let event = (
        0..200usize,
        prop_oneof![3 => Just(0u64), 1 => 1..3_000u64],
        proptest::option::weighted(0.3, 0..4u8),
        prop_oneof![3 => Just(0u8), 1 => 1..4u8, 1 => Just(255u8)],
        proptest::option::weighted(0.3, prop_oneof![1..3_000u64, Just(40_000)]),
        proptest::option::weighted(0.5, 0..3u8),
    );
    prop_oneof![
        4 => (queue.clone(), proptest::collection::vec(event.clone(), 1..4))
            .prop_map(|(queue, events)| Op::Enqueue { queue, events }),
        6 => (queue.clone(), 1..6usize, proptest::option::weighted(0.8, prop_oneof![Just(500u64), Just(2_000), Just(30_000)]))
            .prop_map(|(queue, max, timeout_ms)| Op::Lease { queue, max, timeout_ms }),
        6 => (queue.clone(), proptest::collection::vec(0..PICKS, 1..4))
            .prop_map(|(queue, picks)| Op::Ack { queue, picks }),
        4 => (queue.clone(), 0..PICKS, proptest::option::of(0..2_000u64))
            .prop_map(|(queue, pick, delay_ms)| Op::Nack { queue, pick, delay_ms }),
        1 => (queue.clone(), 0..PICKS, prop_oneof![Just(1_000u64), Just(5_000)])
            .prop_map(|(queue, pick, timeout_ms)| Op::Extend { queue, pick, timeout_ms }),
        4 => prop_oneof![0..1_500u64, 1_500..70_000u64].prop_map(Op::Advance),
        3 => Just(Op::Reap),
        1 => (queue.clone(), proptest::option::of(0..8usize))
            .prop_map(|(queue, pick)| Op::Redrive { queue, pick }),
        1 => (queue.clone(), proptest::option::of(0..8usize))
            .prop_map(|(queue, pick)| Op::Purge { queue, pick }),
        2 => (queue.clone(), 0..8usize).prop_map(|(queue, pick)| Op::Cancel { queue, pick }),
        1 => queue.clone().prop_map(|queue| Op::DeleteQueue { queue }),
        1 => Just(Op::Cleanup),
        1 => Just(Op::Restart),
        1 => (queue.clone(), proptest::collection::vec(event.clone(), 1..4), 0..=256u64)
            .prop_map(|(queue, events, cut)| Op::CrashInEnqueue { queue, events, cut }),
        2 => (queue.clone(), proptest::bool::weighted(0.3), change())
            .prop_map(|(queue, replace, change)| Op::Settings { queue, replace, change }),
        // Pause and resume: a change of `paused` alone.
        1 => (queue.clone(), proptest::bool::ANY).prop_map(|(queue, paused)| Op::Settings {
            queue,
            replace: false,
            change: Change { paused: Some(paused), ..Change::default() },
        }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Waiting,
    InFlight { receipt: String, deadline: u64 },
    Dead,
}

#[derive(Debug, Clone)]
struct Event {
    queue: usize,
    payload: Vec<u8>,
    status: Status,
    failures: u32,
    /// Visible time while waiting or in flight, death time when dead.
    time: u64,
    last_error: Option<String>,
    priority: u8,
    /// None once dead.
    expires_at: Option<u64>,
    group: Option<u8>,
}

/// A queue's own settings; `None` is the broker-wide one.
#[derive(Debug, Clone, Copy, Default)]
struct Own {
    visibility_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    base_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    backoff_multiplier: Option<f64>,
    max_size: Option<u64>,
    message_ttl_ms: Option<u64>,
    dead_letter_expired: bool,
    paused: bool,
    flow: Flow,
}

/// Why the model refuses an enqueue.
#[derive(Debug, PartialEq)]
enum Refused {
    /// The queue would pass its size bound.
    Full,
    /// The batch alone is larger than the bound.
    TooBig,
}

/// What the broker should do, written as plainly as possible.
#[derive(Clone)]
struct Model {
    limits: Limits,
    now: u64,
    events: BTreeMap<u64, Event>,
    next_id: u64,
    keys: HashMap<(usize, u8), (u64, u64)>,
    /// Every receipt handed out, with its queue.
    receipts: Vec<(usize, String)>,
    /// Each queue's own settings.
    own: [Own; QUEUES.len()],
    /// Whether a queue's settings were ever set: it exists from then on.
    configured: [bool; QUEUES.len()],
    /// Ids cancelled since the last restart: their receipts are `not_found`.
    cancelled: BTreeSet<u64>,
    /// Per queue, the next id when it was last deleted since the last
    /// restart: receipts of gone ids below it are `not_found`.
    deleted_below: [u64; QUEUES.len()],
    /// Deliveries since the last restart: each lease's place in time.
    serial: u64,
    /// Per queue and group (`None`: the events without one), the serial
    /// of its newest lease since the last restart, while it has events.
    served: HashMap<(usize, Option<u8>), u64>,
    /// Per queue, the rates its buckets were made for by a lease; `None`
    /// until a lease needs them.
    bucket_rates: [Option<Rates>; QUEUES.len()],
    /// Per queue, its bucket, and its groups' by group.
    buckets: [Bucket; QUEUES.len()],
    group_buckets: HashMap<(usize, u8), Bucket>,
}

impl Model {
    fn max_retries(&self, queue: usize) -> u32 {
        self.own[queue]
            .max_retries
            .unwrap_or(self.limits.max_retries)
    }

    fn backoff(&self, queue: usize) -> Backoff {
        let own = &self.own[queue];
        Backoff {
            base_ms: own.base_backoff_ms.unwrap_or(self.limits.backoff.base_ms),
            max_ms: own.max_backoff_ms.unwrap_or(self.limits.backoff.max_ms),
            multiplier: own
                .backoff_multiplier
                .unwrap_or(self.limits.backoff.multiplier),
            seed: self.limits.backoff.seed,
        }
    }

    fn visibility_timeout_ms(&self, queue: usize) -> u64 {
        let default = self.limits.visibility_timeout.as_millis() as u64;
        self.own[queue].visibility_timeout_ms.unwrap_or(default)
    }

    fn max_size(&self, queue: usize) -> usize {
        let own = self.own[queue].max_size;
        own.unwrap_or(self.limits.queue_max_size) as usize
    }

    /// The settings the broker should show for `queue`.
    fn settings(&self, queue: usize) -> QueueSettings {
        let backoff = self.backoff(queue);
        let flow = self.own[queue].flow;
        QueueSettings {
            visibility_timeout_ms: self.visibility_timeout_ms(queue),
            max_retries: self.max_retries(queue),
            base_backoff_ms: backoff.base_ms,
            max_backoff_ms: backoff.max_ms,
            backoff_multiplier: backoff.multiplier,
            max_size: self.max_size(queue) as u64,
            message_ttl_ms: self.own[queue].message_ttl_ms,
            dead_letter_expired: self.own[queue].dead_letter_expired,
            paused: self.own[queue].paused,
            group_concurrency: self.own[queue].flow.concurrency() as u32,
            max_in_flight: flow.max_in_flight.map(|n| n as u32),
            rate_limit_per_s: flow.rate_limit_per_s.map(|n| n as u32),
            rate_limit_burst: flow
                .rate_limit_burst
                .or(flow.rate_limit_per_s)
                .map(|n| n as u32),
            group_rate_limit_per_s: flow.group_rate_limit_per_s.map(|n| n as u32),
        }
    }

    /// A `PUT` (`replace`) or `PATCH` of `queue`'s settings; the field
    /// refused, if one is.
    fn configure(&mut self, queue: usize, replace: bool, c: &Change) -> Result<(), &'static str> {
        if c.max_size == Some(0) {
            return Err("max_size");
        }
        if c.flow.group_concurrency == Some(Some(0)) {
            return Err("group_concurrency");
        }
        let mut own = if replace {
            Own::default()
        } else {
            self.own[queue]
        };
        own.visibility_timeout_ms = c.visibility_timeout_ms.or(own.visibility_timeout_ms);
        own.max_retries = c.max_retries.or(own.max_retries);
        own.base_backoff_ms = c.base_backoff_ms.or(own.base_backoff_ms);
        own.max_backoff_ms = c.max_backoff_ms.or(own.max_backoff_ms);
        own.backoff_multiplier = c.backoff_multiplier.or(own.backoff_multiplier);
        own.max_size = c.max_size.or(own.max_size);
        own.message_ttl_ms = c.message_ttl_ms.unwrap_or(own.message_ttl_ms);
        own.dead_letter_expired = c.dead_letter_expired.unwrap_or(own.dead_letter_expired);
        own.paused = c.paused.unwrap_or(own.paused);
        let f = &c.flow;
        let flow = &mut own.flow;
        flow.group_concurrency = f.group_concurrency.unwrap_or(flow.group_concurrency);
        flow.max_in_flight = f.max_in_flight.unwrap_or(flow.max_in_flight);
        flow.rate_limit_per_s = f.rate_limit_per_s.unwrap_or(flow.rate_limit_per_s);
        flow.rate_limit_burst = f.rate_limit_burst.unwrap_or(flow.rate_limit_burst);
        flow.group_rate_limit_per_s = f
            .group_rate_limit_per_s
            .unwrap_or(flow.group_rate_limit_per_s);
        if flow.group_concurrency == Some(1) {
            flow.group_concurrency = None;
        }
        self.own[queue] = own;
        self.configured[queue] = true;
        Ok(())
    }

    fn pending(&self, queue: usize) -> usize {
        self.events
            .values()
            .filter(|e| e.queue == queue && e.status != Status::Dead)
            .count()
    }

    fn enqueue(
        &mut self,
        queue: usize,
        events: &[NewEvent],
        keys: &[Option<u8>],
    ) -> Result<Vec<(u64, bool, Option<u64>)>, Refused> {
        let mut answers = Vec::new();
        let mut fresh = Vec::new();
        let mut batch_keys: HashMap<u8, (u64, Option<u64>)> = HashMap::new();
        let ttl = self.own[queue].message_ttl_ms;
        for (event, key) in events.iter().zip(keys) {
            let id = self.next_id + fresh.len() as u64;
            let expires_at = event.ttl_ms.or(ttl).map(|t| self.now + t);
            if let Some(k) = key {
                let known = self.keys.get(&(queue, *k));
                if let Some(&(first, _)) = known.filter(|(_, expires)| *expires > self.now) {
                    let expires = self.events.get(&first).and_then(|e| e.expires_at);
                    answers.push((first, true, expires));
                    continue;
                }
                if let Some(&(first, expires)) = batch_keys.get(k) {
                    answers.push((first, true, expires));
                    continue;
                }
                batch_keys.insert(*k, (id, expires_at));
            }
            answers.push((id, false, expires_at));
            fresh.push((id, event.clone(), expires_at));
        }
        if fresh.is_empty() {
            return Ok(answers);
        }
        if fresh.len() > self.max_size(queue) {
            return Err(Refused::TooBig);
        }
        if self.pending(queue) + fresh.len() > self.max_size(queue) {
            return Err(Refused::Full);
        }
        for (id, event, expires_at) in fresh {
            self.events.insert(
                id,
                Event {
                    queue,
                    payload: event.payload,
                    status: Status::Waiting,
                    failures: 0,
                    time: self.now + event.delay_ms,
                    last_error: None,
                    priority: event.priority,
                    expires_at,
                    group: event
                        .group
                        .as_deref()
                        .map(|g| g.trim_start_matches("tenant-").parse().unwrap()),
                },
            );
        }
        for (k, (id, _)) in batch_keys {
            self.keys.insert(
                (queue, k),
                (id, self.now + self.limits.idempotency_window_ms),
            );
        }
        self.next_id += answers.iter().filter(|(_, dup, _)| !dup).count() as u64;
        Ok(answers)
    }

    fn expired(&self, e: &Event) -> bool {
        e.expires_at.is_some_and(|at| at <= self.now)
    }

    /// Ids the next lease of up to `max` hands out, in order, with their
    /// serials; the buckets pay for them. None while paused or past
    /// `max_in_flight`. Priority comes first; then turns go to whichever
    /// group (the events without one being one more) was served longest
    /// ago, then has the event visible first, then the lowest id. A
    /// group's next event is its lowest id waiting, which must be visible
    /// (above a concurrency of one, its lowest id visible), and none while
    /// that is past its expiry or the group has `group_concurrency` in
    /// flight. Events without a group past their expiry are skipped. A
    /// group out of its bucket sits out the lease; the queue's bucket
    /// empty ends it.
    fn lease_plan(&mut self, queue: usize, max: usize) -> Vec<u64> {
        let flow = self.own[queue].flow;
        if self.own[queue].paused {
            return Vec::new();
        }
        if self.bucket_rates[queue] != flow.rates() {
            self.bucket_rates[queue] = flow.rates();
            self.buckets[queue] = Bucket::default();
            self.group_buckets.retain(|(q, _), _| *q != queue);
        }
        let now_ns = u128::from(self.now) * 1_000_000;
        let in_flight = |m: &Model, group: Option<Option<u8>>| {
            m.events
                .values()
                .filter(|e| e.queue == queue && matches!(e.status, Status::InFlight { .. }))
                .filter(|e| group.is_none_or(|g| e.group == g))
                .count()
        };
        let want = match flow.max_in_flight {
            Some(most) => max.min((most as usize).saturating_sub(in_flight(self, None))),
            None => max,
        };
        let mut out: Vec<u64> = Vec::new();
        let mut sitting_out: BTreeSet<u8> = BTreeSet::new();
        while out.len() < want {
            let waiting = |id: &u64, e: &Event| {
                e.queue == queue && e.status == Status::Waiting && !out.contains(id)
            };
            let mut turns: Vec<Turn> = Vec::new();
            let ungrouped = self
                .events
                .iter()
                .filter(|(id, e)| waiting(id, e) && e.group.is_none())
                .filter(|(_, e)| e.time <= self.now && !self.expired(e))
                .map(|(id, e)| (std::cmp::Reverse(e.priority), e.time, *id))
                .min();
            if let Some((p, time, id)) = ungrouped {
                let served = self.served.get(&(queue, None)).copied().unwrap_or(0);
                turns.push(((p, served, time, id), None));
            }
            let groups: BTreeSet<u8> = self
                .events
                .values()
                .filter(|e| e.queue == queue)
                .filter_map(|e| e.group)
                .collect();
            for g in groups.difference(&sitting_out) {
                let flying = in_flight(self, Some(Some(*g)))
                    + out
                        .iter()
                        .filter(|id| self.events[id].group == Some(*g))
                        .count();
                if flying >= flow.concurrency() {
                    continue;
                }
                let mut mine = self
                    .events
                    .iter()
                    .filter(|(id, e)| waiting(id, e) && e.group == Some(*g));
                let next = if flow.concurrency() == 1 {
                    mine.next().filter(|(_, e)| e.time <= self.now)
                } else {
                    mine.find(|(_, e)| e.time <= self.now)
                };
                let Some((id, e)) = next.filter(|(_, e)| !self.expired(e)) else {
                    continue;
                };
                let served = self.served.get(&(queue, Some(*g))).copied().unwrap_or(0);
                turns.push((
                    (std::cmp::Reverse(e.priority), served, e.time, *id),
                    Some(*g),
                ));
            }
            let Some(((_, _, _, id), group)) = turns.into_iter().min() else {
                break;
            };
            if let (Some(g), Some(per_s)) = (group, flow.group_rate_limit_per_s) {
                let bucket = self.group_buckets.entry((queue, g)).or_default();
                if !bucket.take(now_ns, per_s, per_s) {
                    sitting_out.insert(g);
                    continue;
                }
            }
            if let Some(per_s) = flow.rate_limit_per_s {
                let burst = flow.rate_limit_burst.unwrap_or(per_s);
                if !self.buckets[queue].take(now_ns, per_s, burst) {
                    break;
                }
            }
            self.serial += 1;
            self.served.insert((queue, group), self.serial);
            out.push(id);
        }
        out
    }

    /// Forgets the turns of groups with no event left.
    fn forget_empty_groups(&mut self) {
        let live: BTreeSet<(usize, u8)> = self
            .events
            .values()
            .filter_map(|e| e.group.map(|g| (e.queue, g)))
            .collect();
        self.served
            .retain(|(q, g), _| g.is_none_or(|g| live.contains(&(*q, g))));
    }

    /// An event past its expiry goes, or dies when its queue says so.
    fn expire(&mut self, id: u64) {
        let queue = self.events[&id].queue;
        if !self.own[queue].dead_letter_expired {
            self.events.remove(&id);
            return;
        }
        let now = self.now;
        let e = self.events.get_mut(&id).unwrap();
        e.status = Status::Dead;
        e.time = now;
        e.last_error = Some(TTL_EXPIRED.to_string());
        e.expires_at = None;
    }

    /// Only the receipt the broker handed out for an event's current lease
    /// is `Ok`: a forged one (the right id with another serial or tag) names
    /// no lease, and is answered like a receipt of a lease that is over.
    fn receipt_status(&self, queue: usize, receipt: &str) -> ReceiptStatus {
        let Some(id) = receipt
            .split('.')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
        else {
            return ReceiptStatus::NotFound;
        };
        match self.events.get(&id) {
            Some(e) if e.queue != queue => ReceiptStatus::NotFound,
            Some(Event {
                status:
                    Status::InFlight {
                        receipt: current, ..
                    },
                ..
            }) if current == receipt => ReceiptStatus::Ok,
            Some(_) => ReceiptStatus::LeaseLost,
            None if self.cancelled.contains(&id) => ReceiptStatus::NotFound,
            None if id < self.deleted_below[queue] => ReceiptStatus::NotFound,
            None if id < self.next_id => ReceiptStatus::LeaseLost,
            None => ReceiptStatus::NotFound,
        }
    }

    /// A failed delivery, by the rules of the event's queue now; an expiry
    /// once the event is past it.
    fn fail(&mut self, id: u64, delay_ms: Option<u64>, error: Option<&str>) {
        if self.expired(&self.events[&id]) {
            return self.expire(id);
        }
        let queue = self.events[&id].queue;
        let backoff = self.backoff(queue);
        let max_retries = self.max_retries(queue);
        let now = self.now;
        let e = self.events.get_mut(&id).expect("failing a live event");
        e.failures += 1;
        e.last_error = error.map(str::to_string);
        if e.failures > max_retries {
            e.status = Status::Dead;
            e.time = now;
            e.expires_at = None;
        } else {
            e.status = Status::Waiting;
            e.time = now + delay_ms.unwrap_or_else(|| backoff.delay_ms(id, e.failures));
        }
    }

    fn reap(&mut self) {
        let expired: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, e)| matches!(e.status, Status::InFlight { deadline, .. } if deadline <= self.now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.fail(id, None, Some(LEASE_EXPIRED));
        }
        let past: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, e)| e.status == Status::Waiting && self.expired(e))
            .map(|(id, _)| *id)
            .collect();
        for id in past {
            self.expire(id);
        }
        self.keys.retain(|_, (_, expires)| *expires > self.now);
    }

    fn dead(&self, queue: usize) -> Vec<u64> {
        self.events
            .iter()
            .filter(|(_, e)| e.queue == queue && e.status == Status::Dead)
            .map(|(id, _)| *id)
            .collect()
    }

    fn restart(&mut self) {
        // The broker remembers cancelled ids in memory only; receipts of
        // before a restart name no lease of after it anyway.
        self.cancelled.clear();
        self.deleted_below = [0; QUEUES.len()];
        self.serial = 0;
        self.served.clear();
        self.bucket_rates = [None; QUEUES.len()];
        self.buckets = [Bucket::default(); QUEUES.len()];
        self.group_buckets.clear();
        for e in self.events.values_mut() {
            if matches!(e.status, Status::InFlight { .. }) {
                e.status = Status::Waiting;
            }
        }
    }

    fn contents(&self, queue: usize) -> Vec<EventView> {
        self.events
            .iter()
            .filter(|(_, e)| e.queue == queue)
            .map(|(&id, e)| EventView {
                id,
                status: match e.status {
                    Status::Waiting => ViewStatus::Waiting,
                    Status::InFlight { .. } => ViewStatus::InFlight,
                    Status::Dead => ViewStatus::Dead,
                },
                failures: e.failures,
                time: match e.status {
                    Status::InFlight { .. } => 0,
                    _ => e.time,
                },
                priority: e.priority,
                expires_at: e.expires_at,
            })
            .collect()
    }

    /// The receipt a pick names: the newest receipts handed out for the
    /// queue first, older (often stale) ones further back, and a made-up one
    /// past the end. The last two picks forge the newest receipt: one bit of
    /// its tag flipped, or the next serial (the next lease's) with its tag.
    fn pick_receipt(&self, queue: usize, pick: usize) -> String {
        let mine: Vec<&String> = self
            .receipts
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, r)| r)
            .collect();
        let made_up = || format!("{}.1.{}", self.next_id + 5, "0".repeat(32));
        if pick >= PICKS - 2 {
            let Some(newest) = mine.last() else {
                return made_up();
            };
            let mut parts: Vec<String> = newest.split('.').map(str::to_string).collect();
            if pick == PICKS - 2 {
                let tag = &mut parts[2];
                let last = if tag.ends_with('0') { '1' } else { '0' };
                tag.pop();
                tag.push(last);
            } else {
                parts[1] = (parts[1].parse::<u64>().unwrap() + 1).to_string();
            }
            return parts.join(".");
        }
        match mine.len().checked_sub(pick + 1).map(|i| mine[i]) {
            Some(r) => (*r).clone(),
            None => made_up(),
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut limits = limits();
    limits.queue_max_size = 16;
    limits.max_retries = 1;
    limits.idempotency_window_ms = 20_000;
    let mut t = TestBroker::with(limits.clone(), 1024, FsyncPolicy::Never);
    let mut m = Model {
        limits,
        now: START_MS,
        events: BTreeMap::new(),
        next_id: 0,
        keys: HashMap::new(),
        receipts: Vec::new(),
        own: [Own::default(); QUEUES.len()],
        configured: [false; QUEUES.len()],
        cancelled: BTreeSet::new(),
        deleted_below: [0; QUEUES.len()],
        serial: 0,
        served: HashMap::new(),
        bucket_rates: [None; QUEUES.len()],
        buckets: [Bucket::default(); QUEUES.len()],
        group_buckets: HashMap::new(),
    };
    for (step, op) in ops.into_iter().chain(drain()).enumerate() {
        apply(&mut t, &mut m, &op)
            .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
        m.forget_empty_groups();
        for (q, name) in QUEUES.iter().enumerate() {
            let got = t.broker.contents(name);
            let want = m.contents(q);
            prop_assert_eq!(got, want, "queue {} after step {} {:?}", name, step, op);
            match t.broker.queue(name) {
                Ok(stats) => prop_assert_eq!(
                    stats.settings,
                    m.settings(q),
                    "settings of {} after step {} {:?}",
                    name,
                    step,
                    op
                ),
                Err(e) => prop_assert!(!m.configured[q], "{} after step {}: {}", name, step, e),
            }
        }
    }
    Ok(())
}

fn apply(t: &mut TestBroker, m: &mut Model, op: &Op) -> Result<(), String> {
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    match op {
        Op::Enqueue { queue, events } => {
            let new: Vec<NewEvent> = events
                .iter()
                .enumerate()
                .map(
                    |(i, (len, delay_ms, key, priority, ttl_ms, group))| NewEvent {
                        payload: format!("\"{}\"", "x".repeat(*len + i)).into_bytes(),
                        headers: Vec::new(),
                        delay_ms: *delay_ms,
                        idempotency_key: key.map(|k| format!("key-{k}")),
                        priority: *priority,
                        ttl_ms: *ttl_ms,
                        group: group.map(group_name),
                    },
                )
                .collect();
            let keys: Vec<Option<u8>> = events.iter().map(|e| e.2).collect();
            let got = t.broker.enqueue_blocking(QUEUES[*queue], &new);
            let want = m.enqueue(*queue, &new, &keys);
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    let got: Vec<(u64, bool, Option<u64>)> = got
                        .iter()
                        .map(|e| (e.id, e.duplicate, e.expires_at))
                        .collect();
                    check(
                        got == want,
                        format!("enqueue answered {got:?}, model {want:?}"),
                    )
                }
                (Err(BrokerError::QueueFull { .. }), Err(Refused::Full)) => Ok(()),
                (Err(BrokerError::BatchOverQueueSize { .. }), Err(Refused::TooBig)) => Ok(()),
                (got, want) => Err(format!("enqueue answered {got:?}, model {want:?}")),
            }
        }
        Op::Lease {
            queue,
            max,
            timeout_ms,
        } => {
            let asked = timeout_ms.map(std::time::Duration::from_millis);
            let timeout_ms = timeout_ms.unwrap_or(m.visibility_timeout_ms(*queue));
            let got = t
                .broker
                .lease(QUEUES[*queue], *max, asked)
                .map_err(|e| e.to_string())?;
            let want = m.lease_plan(*queue, *max);
            let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
            check(ids == want, format!("leased {ids:?}, model {want:?}"))?;
            check_group_rules(m, *queue, &ids)?;
            for d in &got {
                let e = m.events.get_mut(&d.id).expect("leased event exists");
                check(
                    d.payload() == e.payload,
                    format!("payload of {} differs", d.id),
                )?;
                check(
                    d.attempt == e.failures + 1,
                    format!("attempt {} of {}", d.attempt, d.id),
                )?;
                check(
                    (d.priority, d.expires_at) == (e.priority, e.expires_at),
                    format!("priority and expiry of {}", d.id),
                )?;
                check(
                    d.group() == e.group.map(group_name).as_deref(),
                    format!("group of {}: {:?}", d.id, d.group()),
                )?;
                let receipt = d.receipt.to_string();
                e.status = Status::InFlight {
                    receipt: receipt.clone(),
                    deadline: m.now + timeout_ms,
                };
                m.receipts.push((*queue, receipt));
            }
            Ok(())
        }
        Op::Ack { queue, picks } => {
            let receipts: Vec<String> = picks.iter().map(|p| m.pick_receipt(*queue, *p)).collect();
            let got = t
                .broker
                .ack(QUEUES[*queue], &receipts)
                .and_then(|p| p.wait())
                .map_err(|e| e.to_string())?;
            for (result, receipt) in got.iter().zip(&receipts) {
                let want = m.receipt_status(*queue, receipt);
                check(
                    result.status == want,
                    format!("ack {receipt}: {:?}, model {want:?}", result.status),
                )?;
                if want == ReceiptStatus::Ok {
                    m.events
                        .remove(&result.receipt.split('.').next().unwrap().parse().unwrap());
                }
            }
            Ok(())
        }
        Op::Nack {
            queue,
            pick,
            delay_ms,
        } => {
            let receipt = m.pick_receipt(*queue, *pick);
            let got = t
                .broker
                .nack(
                    QUEUES[*queue],
                    std::slice::from_ref(&receipt),
                    *delay_ms,
                    Some("boom"),
                )
                .and_then(|p| p.wait())
                .map_err(|e| e.to_string())?;
            let want = m.receipt_status(*queue, &receipt);
            check(
                got[0].status == want,
                format!("nack {receipt}: {:?}, model {want:?}", got[0].status),
            )?;
            if want == ReceiptStatus::Ok {
                m.fail(
                    receipt.split('.').next().unwrap().parse().unwrap(),
                    *delay_ms,
                    Some("boom"),
                );
            }
            Ok(())
        }
        Op::Extend {
            queue,
            pick,
            timeout_ms,
        } => {
            let receipt = m.pick_receipt(*queue, *pick);
            let timeout = std::time::Duration::from_millis(*timeout_ms);
            let got = t
                .broker
                .extend(
                    QUEUES[*queue],
                    std::slice::from_ref(&receipt),
                    Some(timeout),
                )
                .map_err(|e| e.to_string())?;
            let want = m.receipt_status(*queue, &receipt);
            check(
                got[0].status == want,
                format!("extend {receipt}: {:?}, model {want:?}", got[0].status),
            )?;
            if want == ReceiptStatus::Ok {
                let id: u64 = receipt.split('.').next().unwrap().parse().unwrap();
                let now = m.now;
                if let Some(Event {
                    status: Status::InFlight { deadline, .. },
                    ..
                }) = m.events.get_mut(&id)
                {
                    *deadline = now + timeout_ms;
                }
            }
            Ok(())
        }
        Op::Advance(ms) => {
            t.advance(*ms);
            m.now += ms;
            Ok(())
        }
        Op::Reap => {
            t.broker.reap().wait().map_err(|e| e.to_string())?;
            m.reap();
            Ok(())
        }
        Op::Redrive { queue, pick } | Op::Purge { queue, pick } => {
            let dead = m.dead(*queue);
            let ids: Option<Vec<u64>> = pick.map(|p| {
                dead.get(p)
                    .copied()
                    .into_iter()
                    .chain([m.next_id + 3])
                    .collect()
            });
            let redrive = matches!(op, Op::Redrive { .. });
            let name = QUEUES[*queue];
            let answer = if redrive {
                t.broker.redrive(name, ids.as_deref())
            } else {
                t.broker.purge(name, ids.as_deref())
            };
            let exists =
                m.events.values().any(|e| e.queue == *queue) || t.broker.queue(name).is_ok();
            let got = match answer.and_then(|p| p.wait()) {
                Ok(n) => n,
                Err(BrokerError::UnknownQueue(_)) if !exists => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            let chosen: Vec<u64> = match &ids {
                Some(ids) => ids.iter().copied().filter(|id| dead.contains(id)).collect(),
                None => dead,
            };
            check(
                got == chosen.len() as u64,
                format!(
                    "{} answered {got}, model {}",
                    if redrive { "redrive" } else { "purge" },
                    chosen.len()
                ),
            )?;
            for id in chosen {
                if redrive {
                    let now = m.now;
                    let e = m.events.get_mut(&id).unwrap();
                    e.status = Status::Waiting;
                    e.failures = 0;
                    e.time = now;
                    e.last_error = None;
                } else {
                    m.events.remove(&id);
                }
            }
            Ok(())
        }
        Op::Cancel { queue, pick } => {
            let name = QUEUES[*queue];
            let mine: Vec<u64> = m
                .events
                .iter()
                .filter(|(_, e)| e.queue == *queue)
                .map(|(id, _)| *id)
                .collect();
            let id = mine.get(*pick).copied().unwrap_or(m.next_id + 3);
            let exists = !mine.is_empty() || t.broker.queue(name).is_ok();
            match t.broker.cancel(name, id).and_then(|p| p.wait()) {
                Ok(()) => {
                    check(mine.contains(&id), format!("cancelled {id}, not an event"))?;
                    m.events.remove(&id);
                    m.cancelled.insert(id);
                }
                Err(BrokerError::UnknownQueue(_)) if !exists => {}
                Err(BrokerError::UnknownEvent { .. }) if !mine.contains(&id) && exists => {}
                Err(e) => return Err(format!("cancel of {id}: {e}")),
            }
            Ok(())
        }
        Op::DeleteQueue { queue } => {
            let name = QUEUES[*queue];
            // As for a cancel, a queue whose events were all acked may or
            // may not be there; one with settings or events is.
            let must_exist = m.configured[*queue] || m.events.values().any(|e| e.queue == *queue);
            let exists = must_exist || t.broker.queue(name).is_ok();
            match block_on(t.broker.delete_queue(name)) {
                Ok(()) => {
                    check(exists, format!("deleted {name}, which is not there"))?;
                    m.events.retain(|_, e| e.queue != *queue);
                    m.keys.retain(|(q, _), _| *q != *queue);
                    m.own[*queue] = Own::default();
                    m.configured[*queue] = false;
                    m.served.retain(|(q, _), _| *q != *queue);
                    m.bucket_rates[*queue] = None;
                    m.deleted_below[*queue] = m.next_id;
                    Ok(())
                }
                Err(BrokerError::UnknownQueue(_)) if !exists => Ok(()),
                Err(e) => Err(format!("delete of {name}: {e}")),
            }
        }
        Op::Cleanup => t.broker.cleanup().map(|_| ()).map_err(|e| e.to_string()),
        Op::Drained => {
            let left: Vec<u64> = m
                .events
                .iter()
                .filter(|(_, e)| e.status != Status::Dead)
                .map(|(id, _)| *id)
                .collect();
            check(left.is_empty(), format!("never delivered: {left:?}"))
        }
        Op::Restart => {
            t.restart();
            m.restart();
            Ok(())
        }
        Op::Settings {
            queue,
            replace,
            change,
        } => {
            let name = QUEUES[*queue];
            let request = change.request();
            let got = block_on(async {
                if *replace {
                    t.broker.put_settings(name, &request).await
                } else {
                    t.broker.patch_settings(name, &request).await
                }
            });
            // A queue the model cannot tell exists (its events all acked)
            // may or may not be there; one with settings or events is.
            let must_exist = m.configured[*queue] || m.events.values().any(|e| e.queue == *queue);
            match got {
                Err(BrokerError::UnknownQueue(_)) if !replace && !must_exist => Ok(()),
                Err(BrokerError::Invalid { field, .. }) => {
                    let want = m.configure(*queue, *replace, change);
                    check(
                        want == Err(field.as_str()),
                        format!("refused {field}, model {want:?}"),
                    )
                }
                Ok(stats) => {
                    m.configure(*queue, *replace, change)?;
                    check(
                        stats.settings == m.settings(*queue),
                        format!(
                            "answered {:?}, model {:?}",
                            stats.settings,
                            m.settings(*queue)
                        ),
                    )
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Op::CrashInEnqueue { queue, events, cut } => {
            let before = m.clone();
            let (first, from) = log_end(t);
            apply(
                t,
                m,
                &Op::Enqueue {
                    queue: *queue,
                    events: events.clone(),
                },
            )?;
            let (segment, end) = log_end(t);
            // A batch that does not fit starts a segment of its own.
            let start = if segment == first { from } else { 24 };
            let cut_at = start + (end - start) * cut / 256;
            t.restart_after(|dir| {
                let path = dir.join("wal").join(format!("{segment:020}.seg"));
                let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                file.set_len(cut_at).unwrap();
            });
            if cut_at < end {
                *m = before;
            }
            m.restart();
            Ok(())
        }
    }
}

/// The rules a lease must keep, checked apart from the plan: each grouped
/// event leased had room in its group, and at a concurrency of one was the
/// lowest id of its group still pending.
fn check_group_rules(m: &Model, queue: usize, leased: &[u64]) -> Result<(), String> {
    let concurrency = m.own[queue].flow.concurrency();
    for (i, id) in leased.iter().enumerate() {
        let Some(g) = m.events[id].group else {
            continue;
        };
        let mine = || {
            m.events
                .iter()
                .filter(move |(_, e)| e.queue == queue && e.group == Some(g))
        };
        let before = mine()
            .filter(|(other, e)| {
                matches!(e.status, Status::InFlight { .. }) || leased[..i].contains(other)
            })
            .count();
        if before >= concurrency {
            return Err(format!("{id} leased with {before} of {g} in flight"));
        }
        let first = mine()
            .find(|(_, e)| e.status != Status::Dead)
            .map(|(id, _)| *id);
        if concurrency == 1 && first != Some(*id) {
            return Err(format!("{id} leased before {first:?} of its group {g}"));
        }
    }
    Ok(())
}

/// Ops that deliver what is left once the limits are lifted: every event
/// still pending must be leased in the end.
fn drain() -> Vec<Op> {
    let mut ops: Vec<Op> = (0..QUEUES.len())
        .map(|queue| Op::Settings {
            queue,
            replace: true,
            change: Change::default(),
        })
        .collect();
    for _ in 0..40 {
        ops.push(Op::Advance(70_000));
        ops.push(Op::Reap);
        for queue in 0..QUEUES.len() {
            ops.push(Op::Lease {
                queue,
                max: 5,
                timeout_ms: None,
            });
            ops.push(Op::Ack {
                queue,
                picks: (0..5).collect(),
            });
        }
    }
    ops.push(Op::Drained);
    ops
}

/// Where the log ends now: (active segment, its bytes).
fn log_end(t: &TestBroker) -> (u64, u64) {
    let active = *t.broker.wal().segments().last().unwrap();
    (active.first_seq, active.bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn broker_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..160)) {
        run(ops)?;
    }
}

#[test]
fn a_batch_cut_after_its_first_frame_leaves_none_of_its_events() {
    // Shrunk from the model test run against frames without the batch bit:
    // the first event of the batch was kept.
    run(vec![Op::CrashInEnqueue {
        queue: 0,
        events: vec![(0, 0, None, 0, None, None), (7, 0, None, 0, None, None)],
        cut: 115,
    }])
    .unwrap();
}

#[test]
fn dead_letters_keep_their_last_error_through_restarts_and_cleanup() {
    // A fixed sequence the model test can only hit by chance: an event dies,
    // its old segment is cleaned up, and a restart still shows it dead.
    let mut limits = limits();
    limits.max_retries = 0;
    let mut t = TestBroker::with(limits, 4096, FsyncPolicy::Never);
    let id = t.enqueue("alpha", common::broker::event("\"doomed\""));
    let d = t.lease("alpha", 1).remove(0);
    t.nack("alpha", &d, Some("bad input"));
    for i in 0..200 {
        let e = t.enqueue(
            "beta",
            common::broker::event(&format!("\"filler {i} {}\"", "y".repeat(40))),
        );
        let d = t.lease("beta", 1).remove(0);
        assert_eq!(d.id, e);
        t.ack("beta", &d);
    }
    let report = t.broker.cleanup().unwrap();
    assert!(report.deleted > 0 && report.relocated > 0, "{report:?}");
    t.restart();
    let page = t.broker.dlq("alpha", None, 10).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].id, id);
    assert_eq!(page.events[0].attempts, 1);
    assert_eq!(page.events[0].last_error.as_deref(), Some("bad input"));
    assert_eq!(page.events[0].payload(), b"\"doomed\"");
}

#[test]
fn a_deleted_queue_stays_deleted_through_cleanup_and_restarts_and_comes_back_fresh() {
    // A fixed sequence the model test can only hit by chance: the segments
    // holding the queue's events and settings are cleaned up before and
    // after the deletion's own, with restarts in between.
    let mut limits = limits();
    limits.max_retries = 0;
    let mut t = TestBroker::with(limits, 4096, FsyncPolicy::Never);
    let paused = SettingsChange {
        max_retries: Some(5),
        paused: Some(true),
        ..SettingsChange::default()
    };
    let dead = t.enqueue("alpha", common::broker::event("\"dead\""));
    let d = t.lease("alpha", 1).remove(0);
    t.nack("alpha", &d, Some("bad input"));
    t.enqueue("alpha", common::broker::event("\"leased\""));
    let leased = t.lease("alpha", 1).remove(0);
    let last = t.enqueue("alpha", common::broker::event("\"ready\""));
    block_on(t.broker.patch_settings("alpha", &paused)).unwrap();
    assert!(dead < last);

    block_on(t.broker.delete_queue("alpha")).unwrap();
    assert_eq!(t.ack("alpha", &leased), ReceiptStatus::NotFound);
    for round in 0..3 {
        t.churn_and_clean_up("beta");
        t.restart();
        assert!(t.broker.queue("alpha").is_err(), "round {round}");
        assert_eq!(t.broker.contents("alpha"), vec![], "round {round}");
    }
    let fresh = t.enqueue("alpha", common::broker::event("\"fresh\""));
    assert!(fresh > last, "ids are never reused");
    let stats = t.broker.queue("alpha").unwrap();
    assert_eq!(stats.settings, t.broker.queue("beta").unwrap().settings);
    assert!(!stats.settings.paused);
    t.restart();
    let ids: Vec<u64> = t.broker.contents("alpha").iter().map(|e| e.id).collect();
    assert_eq!(ids, [fresh]);
}
