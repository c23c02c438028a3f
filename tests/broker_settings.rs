//! Per-queue settings and pausing as the broker applies them: each setting
//! rules its own queue only, from the change on; `PUT` replaces and `PATCH`
//! changes; a paused queue takes events and settles leases but leases
//! nothing, and its long polls wait for the resume; settings survive
//! restarts and cleanup. Time moves only through the manual clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::broker::{block_on, event, limits, TestBroker, START_MS};
use event_broker_core::record::OwnSettings;
use event_broker_core::{
    BrokerError, NewEvent, QueueSettings, QueueStats, ReceiptStatus as S, SettingsChange,
    ViewStatus,
};
use event_broker_wal::FsyncPolicy;

const Q: &str = "orders";

fn put(t: &TestBroker, queue: &str, change: SettingsChange) -> QueueStats {
    block_on(t.broker.put_settings(queue, &change)).expect("settings set")
}

fn patch(t: &TestBroker, queue: &str, change: SettingsChange) -> QueueStats {
    block_on(t.broker.patch_settings(queue, &change)).expect("settings changed")
}

fn settings(t: &TestBroker, queue: &str) -> QueueSettings {
    t.broker.queue(queue).expect("queue exists").settings
}

/// When the only event of `queue` is visible again, after the clock's start.
fn visible_at(t: &TestBroker, queue: &str) -> u64 {
    let contents = t.broker.contents(queue);
    assert_eq!(contents.len(), 1, "{contents:?}");
    assert_eq!(contents[0].status, ViewStatus::Waiting, "{contents:?}");
    contents[0].time
}

#[test]
fn a_queue_without_settings_of_its_own_has_the_broker_wide_ones() {
    let t = TestBroker::new();
    t.enqueue(Q, event("1"));
    let s = settings(&t, Q);
    let l = &t.limits;
    assert_eq!(s.visibility_timeout(), l.visibility_timeout);
    assert_eq!(s.max_retries, l.max_retries);
    assert_eq!(s.backoff(l.backoff.seed), l.backoff);
    assert_eq!(s.max_size, l.queue_max_size);
    assert_eq!(
        (s.message_ttl_ms, s.dead_letter_expired, s.paused),
        (None, false, false)
    );
}

#[test]
fn a_queues_retries_and_backoff_rule_its_failures_and_no_other_queues() {
    let t = TestBroker::new();
    put(
        &t,
        "strict",
        SettingsChange {
            max_retries: Some(0),
            ..SettingsChange::default()
        },
    );
    t.enqueue("strict", event("1"));
    t.enqueue(Q, event("2"));
    let strict = t.lease("strict", 1).remove(0);
    let loose = t.lease(Q, 1).remove(0);
    assert_eq!(t.nack("strict", &strict, Some("no")), S::Ok);
    assert_eq!(t.nack(Q, &loose, Some("no")), S::Ok);
    assert_eq!(t.broker.queue("strict").unwrap().dead, 1, "no retry at all");
    // The broker-wide backoff: 1 s, less up to 20% jitter.
    let delay = visible_at(&t, Q) - START_MS;
    assert!((800..=1_000).contains(&delay), "{delay}");

    // A new schedule applies to the next failure.
    patch(
        &t,
        Q,
        SettingsChange {
            base_backoff_ms: Some(5_000),
            backoff_multiplier: Some(3.0),
            max_backoff_ms: Some(100_000),
            ..SettingsChange::default()
        },
    );
    t.advance(1_000);
    let again = t.lease(Q, 1).remove(0);
    assert_eq!(again.attempt, 2);
    t.nack(Q, &again, None);
    let delay = visible_at(&t, Q) - (START_MS + 1_000);
    assert!((12_000..=15_000).contains(&delay), "5 s x 3: {delay}");

    // A cap below the base caps every retry.
    patch(
        &t,
        Q,
        SettingsChange {
            max_backoff_ms: Some(300),
            ..SettingsChange::default()
        },
    );
    t.advance(15_000);
    let third = t.lease(Q, 1).remove(0);
    t.nack(Q, &third, None);
    let delay = visible_at(&t, Q) - (START_MS + 16_000);
    assert!((240..=300).contains(&delay), "capped at 300 ms: {delay}");
}

#[test]
fn a_lease_given_keeps_its_deadline_and_the_next_lease_takes_the_new_timeout() {
    let t = TestBroker::new();
    put(
        &t,
        Q,
        SettingsChange {
            visibility_timeout_ms: Some(5_000),
            ..SettingsChange::default()
        },
    );
    t.enqueue(Q, event("1"));
    t.enqueue(Q, event("2"));
    let first = t.lease(Q, 1).remove(0);
    assert_eq!(first.lease_expires_at, START_MS + 5_000);
    patch(
        &t,
        Q,
        SettingsChange {
            visibility_timeout_ms: Some(60_000),
            ..SettingsChange::default()
        },
    );
    let second = t.lease(Q, 1).remove(0);
    assert_eq!(second.lease_expires_at, START_MS + 60_000);
    // An extend without a length takes the queue's too.
    let extended = t
        .broker
        .extend(Q, &[second.receipt.to_string()], None)
        .unwrap();
    assert_eq!(extended[0].status, S::Ok);

    t.advance(5_000);
    let report = t.broker.reap().wait().unwrap();
    assert_eq!(report.expired, 1, "only the first lease ran out");
    assert_eq!(t.ack(Q, &first), S::LeaseLost);
    assert_eq!(t.ack(Q, &second), S::Ok);
}

#[test]
fn a_queues_max_size_bounds_its_enqueues_only() {
    let t = TestBroker::new();
    put(
        &t,
        Q,
        SettingsChange {
            max_size: Some(2),
            ..SettingsChange::default()
        },
    );
    let three: Vec<NewEvent> = (0..3).map(|i| event(&i.to_string())).collect();
    match t.broker.enqueue_blocking(Q, &three) {
        Err(BrokerError::BatchOverQueueSize { adding: 3, max: 2 }) => {}
        other => panic!("{other:?}"),
    }
    t.broker.enqueue_blocking(Q, &three[..2]).unwrap();
    match t.broker.enqueue_blocking(Q, &three[..1]) {
        Err(BrokerError::QueueFull { max: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    t.broker.enqueue_blocking("other", &three).unwrap();
}

#[test]
fn put_replaces_every_setting_and_patch_only_those_it_names() {
    let t = TestBroker::new();
    let s = put(
        &t,
        Q,
        SettingsChange {
            max_retries: Some(2),
            message_ttl_ms: Some(Some(60_000)),
            paused: Some(true),
            ..SettingsChange::default()
        },
    );
    assert_eq!(
        (s.name.as_str(), s.ready, s.settings.max_retries),
        (Q, 0, 2),
        "a queue made by its settings, with no event"
    );
    let s = patch(&t, Q, SettingsChange::paused(false)).settings;
    assert_eq!(
        (s.max_retries, s.message_ttl_ms, s.paused),
        (2, Some(60_000), false)
    );
    let cleared = SettingsChange {
        message_ttl_ms: Some(None),
        dead_letter_expired: Some(true),
        ..SettingsChange::default()
    };
    let s = patch(&t, Q, cleared).settings;
    assert_eq!((s.message_ttl_ms, s.dead_letter_expired), (None, true));
    let s = put(
        &t,
        Q,
        SettingsChange {
            max_size: Some(3),
            ..SettingsChange::default()
        },
    )
    .settings;
    assert_eq!(
        s,
        QueueSettings {
            max_size: 3,
            ..OwnSettings::default().effective(&t.limits)
        },
        "everything else back to the broker-wide settings"
    );
}

#[test]
fn a_patch_of_an_unknown_queue_or_a_bad_field_changes_nothing() {
    let t = TestBroker::new();
    for change in [SettingsChange::default(), SettingsChange::paused(true)] {
        match block_on(t.broker.patch_settings("nowhere", &change)) {
            Err(BrokerError::UnknownQueue(name)) => assert_eq!(name, "nowhere"),
            other => panic!("{other:?}"),
        }
    }
    let bad = SettingsChange {
        max_retries: Some(5),
        base_backoff_ms: Some(86_400_001),
        ..SettingsChange::default()
    };
    match block_on(t.broker.put_settings(Q, &bad)) {
        Err(BrokerError::Invalid { field, .. }) => assert_eq!(field, "base_backoff_ms"),
        other => panic!("{other:?}"),
    }
    assert!(t.broker.queue(Q).is_err(), "no queue was made");
    assert!(t.broker.queues().is_empty());
}

#[test]
fn a_paused_queue_takes_events_and_settles_leases_but_leases_nothing() {
    let mut l = limits();
    l.max_retries = 0;
    let t = TestBroker::with(l, 1 << 20, FsyncPolicy::Never);
    for i in 0..3 {
        t.enqueue(Q, event(&i.to_string()));
    }
    let leased = t.lease(Q, 3);
    let s = patch(&t, Q, SettingsChange::paused(true));
    assert!(s.settings.paused);
    assert!(t.lease(Q, 10).is_empty(), "leased while paused");
    t.enqueue(Q, event("3"));
    assert_eq!(t.ack(Q, &leased[0]), S::Ok);
    assert_eq!(t.nack(Q, &leased[1], Some("no")), S::Ok);
    let receipts = [leased[2].receipt.to_string()];
    let extended = t.broker.extend(Q, &receipts, None).unwrap();
    assert_eq!(extended[0].status, S::Ok);
    // The extended lease still runs out, and fails by the usual rules.
    t.advance(t.limits.visibility_timeout.as_millis() as u64);
    assert_eq!(t.broker.reap().wait().unwrap().expired, 1);
    let s = t.broker.queue(Q).unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead), (1, 0, 2));
    assert!(t.lease(Q, 10).is_empty(), "leased while paused");

    patch(&t, Q, SettingsChange::paused(false));
    let after = t.lease(Q, 10);
    let payloads: Vec<&[u8]> = after.iter().map(|d| d.payload()).collect();
    assert_eq!(payloads, [b"3".as_slice()]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_poll_on_a_paused_queue_waits_for_the_resume_then_gets_the_events() {
    let t = Arc::new(TestBroker::new());
    t.broker.enqueue(Q, &[event("1")]).await.unwrap();
    let delayed = NewEvent {
        delay_ms: 1_000,
        ..event("2")
    };
    t.broker.enqueue(Q, &[delayed]).await.unwrap();
    t.broker
        .patch_settings(Q, &SettingsChange::paused(true))
        .await
        .unwrap();
    let poll = t.clone();
    let waiter = tokio::spawn(async move {
        poll.broker
            .lease_wait(Q, 10, None, Duration::from_secs(30))
            .await
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "the poll should be waiting");
    // Neither an enqueue nor the delayed event falling due wakes it.
    t.broker.enqueue(Q, &[event("3")]).await.unwrap();
    t.advance(2_000);
    t.broker.reap().result().await.unwrap();
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "the poll answered while paused");

    t.broker
        .patch_settings(Q, &SettingsChange::paused(false))
        .await
        .unwrap();
    let got = waiter.await.unwrap().unwrap();
    let payloads: Vec<&[u8]> = got.iter().map(|d| d.payload()).collect();
    assert_eq!(payloads, [b"1".as_slice(), b"3", b"2"]);
}

#[test]
fn settings_survive_restarts_and_cleanup_and_keep_an_empty_queue() {
    let mut t = TestBroker::with(limits(), 4096, FsyncPolicy::Never);
    let change = SettingsChange {
        max_retries: Some(3),
        backoff_multiplier: Some(1.5),
        message_ttl_ms: Some(Some(3_600_000)),
        paused: Some(true),
        ..SettingsChange::default()
    };
    let set = put(&t, Q, change).settings;
    t.restart();
    assert_eq!(settings(&t, Q), set);

    // Cleanup deletes the segment holding the settings once they are
    // written again.
    t.churn_and_clean_up("other");
    t.restart();
    let queue = t.broker.queue(Q).expect("a queue of settings only");
    assert_eq!((queue.ready, queue.settings), (0, set));
    assert!(t.broker.queues().iter().any(|q| q.name == Q));
}
