//! The broker's rules as users see them: backoff, the dead-letter threshold,
//! receipts, idempotency, delays, FIFO order, limits, extend, redrive and
//! purge, recovery and long polling. Time moves only through the manual clock.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::{block_on, event, limits, TestBroker};
use event_broker_core::{
    Backoff, BrokerError, DeadEvent, Delivery, Enqueued, Limits, NewEvent, ReceiptStatus as S,
    SubscriptionRequest,
};
use event_broker_wal::FsyncPolicy;

const Q: &str = "orders";

/// A broker with the test limits changed by `change`.
fn broker_with(change: impl FnOnce(&mut Limits)) -> TestBroker {
    let mut l = limits();
    change(&mut l);
    TestBroker::with(l, 1 << 20, FsyncPolicy::Never)
}

fn keyed(payload: &str, key: &str) -> NewEvent {
    NewEvent {
        idempotency_key: Some(key.to_string()),
        ..event(payload)
    }
}

fn delayed(payload: &str, delay_ms: u64) -> NewEvent {
    NewEvent {
        delay_ms,
        ..event(payload)
    }
}

/// `n` events with payloads `0`, `1`, ...
fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| event(&i.to_string())).collect()
}

fn enqueue_all(t: &TestBroker, queue: &str, events: &[NewEvent]) -> Result<Vec<u64>, BrokerError> {
    let got = t.broker.enqueue_blocking(queue, events)?;
    Ok(got.iter().map(|e| e.id).collect())
}

fn enqueue_keyed(t: &TestBroker, queue: &str, payload: &str, key: &str) -> Enqueued {
    let got = t.broker.enqueue_blocking(queue, &[keyed(payload, key)]);
    got.expect("enqueue")[0]
}

fn ids(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.id).collect()
}

fn ids_and_attempts(deliveries: &[Delivery]) -> Vec<(u64, u32)> {
    deliveries.iter().map(|d| (d.id, d.attempt)).collect()
}

/// Leases exactly one event.
fn lease_one(t: &TestBroker, queue: &str) -> Delivery {
    let mut got = t.lease(queue, 10);
    assert_eq!(got.len(), 1, "expected one event, got {:?}", ids(&got));
    got.remove(0)
}

/// Whether nothing of `Q` can be leased now (leases it otherwise).
fn nothing_ready(t: &TestBroker) -> bool {
    t.lease(Q, 10).is_empty()
}

/// (ready, delayed, in_flight, dead) of a queue.
fn counts(t: &TestBroker, queue: &str) -> (u64, u64, u64, u64) {
    let s = t.broker.queue(queue).expect("queue exists");
    (s.ready, s.delayed, s.in_flight, s.dead)
}

/// Acks one receipt given as text.
fn ack_text(t: &TestBroker, queue: &str, receipt: &str) -> S {
    let pending = t.broker.ack(queue, &[receipt.to_string()]);
    pending.expect("ack accepted").wait().expect("ack written")[0].status
}

/// Runs one reaper step; how many leases it expired.
fn reap(t: &TestBroker) -> usize {
    t.broker.reap().wait().expect("reap").expired
}

/// Moves past the default visibility timeout and reaps.
fn expire_lease(t: &TestBroker) -> usize {
    t.advance(t.limits.visibility_timeout.as_millis() as u64);
    reap(t)
}

/// The only event in `Q`'s dead-letter queue.
fn only_dead(t: &TestBroker) -> DeadEvent {
    let mut dead = t.broker.dlq(Q, None, 100).expect("dlq").events;
    assert_eq!(dead.len(), 1, "dead: {:?}", dead.iter().map(|d| d.id));
    dead.remove(0)
}

/// Leases and nacks every ready event of `Q`: with `max_retries` 0 they die.
fn kill_all(t: &TestBroker) {
    for d in t.lease(Q, 100) {
        assert_eq!(t.nack(Q, &d, Some("bad")), S::Ok);
    }
}

/// The shortest jittered delay: the nominal one less `JITTER` (0.2) of it.
fn low_bound(backoff: &Backoff, failures: u32) -> u64 {
    let nominal = backoff.nominal_ms(failures);
    nominal - (nominal as f64 * 0.2) as u64
}

// 1. Backoff

#[test]
fn nacked_event_stays_hidden_below_the_jitter_floor_and_returns_by_the_nominal_delay() {
    let t = TestBroker::new();
    let backoff = t.limits.backoff;
    let id = t.enqueue(Q, event("{}"));
    let schedule = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000];
    for (failures, nominal) in (1..).zip(schedule) {
        assert_eq!(backoff.nominal_ms(failures), nominal);
        let d = lease_one(&t, Q);
        assert_eq!((d.id, d.attempt), (id, failures));
        assert_eq!(t.nack(Q, &d, None), S::Ok);
        let low = low_bound(&backoff, failures);
        t.advance(low - 1);
        assert!(nothing_ready(&t), "failure {failures}");
        t.advance(nominal - (low - 1));
    }
    assert_eq!(lease_one(&t, Q).attempt, 9);
}

#[test]
fn retry_becomes_visible_exactly_at_its_jittered_delay() {
    let t = TestBroker::new();
    let backoff = t.limits.backoff;
    let id = t.enqueue(Q, event("{}"));
    for failures in 1..=4u32 {
        assert_eq!(t.nack(Q, &lease_one(&t, Q), None), S::Ok);
        let delay = backoff.delay_ms(id, failures);
        assert!((low_bound(&backoff, failures)..=backoff.nominal_ms(failures)).contains(&delay));
        t.advance(delay - 1);
        assert_eq!(counts(&t, Q), (0, 1, 0, 0));
        t.advance(1);
        assert_eq!(counts(&t, Q), (1, 0, 0, 0));
    }
}

#[test]
fn nack_with_its_own_delay_overrides_the_backoff() {
    let t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    let receipt = lease_one(&t, Q).receipt.to_string();
    let nacked = t.broker.nack(Q, &[receipt], Some(10_000), None);
    assert_eq!(nacked.unwrap().wait().unwrap()[0].status, S::Ok);
    t.advance(9_999);
    assert!(nothing_ready(&t));
    t.advance(1);
    assert_eq!(lease_one(&t, Q).attempt, 2);
}

// 2. Dead-letter threshold

#[test]
fn third_nack_with_two_retries_moves_the_event_to_the_dlq_with_its_error() {
    let t = broker_with(|l| l.max_retries = 2);
    let id = t.enqueue(Q, event(r#"{"n":1}"#));
    for attempt in 1..=3 {
        let d = lease_one(&t, Q);
        assert_eq!(d.attempt, attempt, "retried before the threshold");
        assert_eq!(counts(&t, Q).3, 0);
        assert_eq!(t.nack(Q, &d, Some(&format!("boom {attempt}"))), S::Ok);
        t.advance(60_000);
    }
    assert!(nothing_ready(&t));
    let dead = only_dead(&t);
    assert_eq!((dead.id, dead.attempts), (id, 3));
    assert_eq!(dead.last_error.as_deref(), Some("boom 3"));
    assert_eq!(dead.payload(), br#"{"n":1}"#);
    assert_eq!(counts(&t, Q), (0, 0, 0, 1));
    assert_eq!(t.broker.queue(Q).unwrap().dead_lettered_total, 1);
}

#[test]
fn lease_expired_event_is_redelivered_with_the_next_attempt_and_dies_as_lease_expired() {
    let t = broker_with(|l| l.max_retries = 2);
    let id = t.enqueue(Q, event("{}"));
    for attempt in 1..=3 {
        assert_eq!(lease_one(&t, Q).attempt, attempt);
        t.advance(t.limits.visibility_timeout.as_millis() as u64 - 1);
        assert_eq!(reap(&t), 0, "expired early");
        t.advance(1);
        assert_eq!(reap(&t), 1);
        t.advance(60_000);
    }
    let dead = only_dead(&t);
    assert_eq!((dead.id, dead.attempts), (id, 3));
    assert_eq!(dead.last_error.as_deref(), Some("lease expired"));
    assert_eq!(t.broker.queue(Q).unwrap().expired_total, 3);
}

// 3. Receipts

#[test]
fn receipt_of_an_expired_lease_is_lost_once_the_event_is_leased_again() {
    let t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    let first = lease_one(&t, Q);
    assert_eq!(expire_lease(&t), 1);
    t.advance(1_000);
    let second = lease_one(&t, Q);
    assert_ne!(first.receipt, second.receipt);
    assert_eq!(t.ack(Q, &first), S::LeaseLost);
    assert_eq!(t.nack(Q, &first, None), S::LeaseLost);
    assert_eq!(t.ack(Q, &second), S::Ok);
    assert_eq!(t.ack(Q, &second), S::LeaseLost, "acked twice");
    assert_eq!(counts(&t, Q), (0, 0, 0, 0));
}

#[test]
fn receipt_of_another_queue_or_malformed_is_not_found() {
    let t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    t.enqueue("other", event("{}"));
    let theirs = lease_one(&t, "other");
    let receipt = theirs.receipt.to_string();
    assert_eq!(ack_text(&t, Q, &receipt), S::NotFound);
    assert_eq!(ack_text(&t, "never-made", &receipt), S::NotFound);
    for bad in ["garbage", "17", "1.x", "", "99999999.1"] {
        assert_eq!(ack_text(&t, Q, bad), S::NotFound, "{bad:?}");
    }
    assert_eq!(t.ack("other", &theirs), S::Ok, "the owner still holds it");
}

#[test]
fn receipt_from_before_a_restart_is_lost_after_it_even_when_the_event_is_leased_again() {
    let mut t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    let before = lease_one(&t, Q);
    // The clock stands still: a restart within the same millisecond.
    t.restart();
    let after = lease_one(&t, Q);
    assert_eq!(after.id, before.id);
    assert_eq!(t.ack(Q, &before), S::LeaseLost);
    assert_eq!(t.ack(Q, &after), S::Ok);
}

#[test]
fn a_forged_receipt_for_the_next_lease_of_an_event_is_refused() {
    // Serials count up by one per lease: without the tag, one consumer
    // could name the lease the broker hands another one next.
    let t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    let mine = lease_one(&t, Q);
    t.enqueue(Q, event("{}"));
    let theirs = lease_one(&t, Q);
    assert_eq!(theirs.receipt.serial, mine.receipt.serial + 1);
    let forged = event_broker_core::Receipt {
        id: theirs.id,
        ..mine.receipt
    };
    let forged_next = event_broker_core::Receipt {
        id: theirs.id,
        serial: theirs.receipt.serial,
        ..mine.receipt
    };
    let mut flipped = theirs.receipt;
    flipped.tag[0] ^= 0x80;
    for receipt in [forged, forged_next, flipped] {
        let text = receipt.to_string();
        assert_eq!(ack_text(&t, Q, &text), S::LeaseLost, "ack {text}");
        let nacked = t.broker.nack(Q, std::slice::from_ref(&text), None, None);
        assert_eq!(nacked.unwrap().wait().unwrap()[0].status, S::LeaseLost);
        let extended = t.broker.extend(Q, std::slice::from_ref(&text), None);
        assert_eq!(extended.unwrap()[0].status, S::LeaseLost);
    }
    assert_eq!(counts(&t, Q), (0, 0, 2, 0), "both leases still held");
    assert_eq!(t.ack(Q, &theirs), S::Ok, "the owner still holds it");
    assert_eq!(t.ack(Q, &mine), S::Ok);
}

#[test]
fn a_receipt_written_by_another_broker_is_refused() {
    // Two brokers that lease the same event (same id, and the same serial
    // once their counters are lined up) still write different receipts.
    let one = TestBroker::new();
    let two = TestBroker::new();
    for t in [&one, &two] {
        t.enqueue(Q, event("{}"));
    }
    let theirs = lease_one(&two, Q);
    let mine = lease_one(&one, Q);
    assert_eq!(theirs.id, mine.id);
    let foreign = event_broker_core::Receipt {
        serial: mine.receipt.serial,
        ..theirs.receipt
    };
    assert_ne!(foreign, mine.receipt, "the tags differ");
    assert_eq!(ack_text(&one, Q, &foreign.to_string()), S::LeaseLost);
    assert_eq!(ack_text(&one, Q, &theirs.receipt.to_string()), S::LeaseLost);
    assert_eq!(one.ack(Q, &mine), S::Ok);
}

// 4. Idempotency

#[test]
fn same_key_on_the_same_queue_returns_the_first_id_and_stores_nothing() {
    let t = TestBroker::new();
    let first = enqueue_keyed(&t, Q, "1", "k");
    assert!(!first.duplicate);
    t.advance(t.limits.idempotency_window_ms - 1);
    let again = enqueue_keyed(&t, Q, "2", "k");
    assert_eq!((again.id, again.duplicate), (first.id, true));
    assert_eq!(counts(&t, Q), (1, 0, 0, 0));
    assert_eq!(lease_one(&t, Q).payload(), b"1");
    let elsewhere = enqueue_keyed(&t, "other", "3", "k");
    assert!(!elsewhere.duplicate);
    assert_ne!(elsewhere.id, first.id);
}

#[test]
fn key_is_new_again_once_the_window_has_passed() {
    let t = TestBroker::new();
    let first = enqueue_keyed(&t, Q, "1", "k");
    t.advance(t.limits.idempotency_window_ms);
    reap(&t);
    let later = enqueue_keyed(&t, Q, "2", "k");
    assert!(!later.duplicate);
    assert!(later.id > first.id);
    assert_eq!(counts(&t, Q), (2, 0, 0, 0));
}

#[test]
fn duplicate_keys_in_one_batch_get_the_first_id() {
    let t = TestBroker::new();
    let batch = [keyed("1", "a"), keyed("2", "b"), keyed("3", "a")];
    let got = t.broker.enqueue_blocking(Q, &batch).unwrap();
    let flags: Vec<bool> = got.iter().map(|e| e.duplicate).collect();
    assert_eq!(flags, [false, false, true]);
    assert_eq!(got[2].id, got[0].id);
    assert_eq!(counts(&t, Q), (2, 0, 0, 0));
    let leased = t.lease(Q, 10);
    assert_eq!([leased[0].payload(), leased[1].payload()], [b"1", b"2"]);
}

#[test]
fn key_survives_a_restart_within_the_window_even_after_its_event_was_acked() {
    let mut t = TestBroker::new();
    let id = enqueue_keyed(&t, Q, "1", "k").id;
    assert_eq!(t.ack(Q, &lease_one(&t, Q)), S::Ok);
    t.restart();
    t.advance(1_000);
    let again = enqueue_keyed(&t, Q, "2", "k");
    assert_eq!((again.id, again.duplicate), (id, true));
    assert!(nothing_ready(&t));
}

// 5. Delayed visibility

#[test]
fn delayed_event_is_hidden_until_its_delay_has_passed() {
    let t = TestBroker::new();
    let id = t.enqueue(Q, delayed("{}", 5_000));
    assert_eq!(counts(&t, Q), (0, 1, 0, 0));
    t.advance(4_999);
    assert!(nothing_ready(&t));
    assert_eq!(counts(&t, Q), (0, 1, 0, 0));
    t.advance(1);
    assert_eq!(counts(&t, Q), (1, 0, 0, 0));
    let d = lease_one(&t, Q);
    assert_eq!((d.id, d.attempt), (id, 1));
    assert_eq!(counts(&t, Q), (0, 0, 1, 0));
}

#[test]
fn delay_survives_a_restart() {
    let mut t = TestBroker::new();
    t.enqueue(Q, delayed("{}", 5_000));
    t.advance(1_000);
    t.restart();
    assert_eq!(counts(&t, Q), (0, 1, 0, 0));
    t.advance(3_999);
    assert!(nothing_ready(&t));
    t.advance(1);
    lease_one(&t, Q);
}

// 6. FIFO

#[test]
fn events_come_in_order_of_visible_time_then_id() {
    let t = TestBroker::new();
    let first = enqueue_all(&t, Q, &events(3)).unwrap();
    t.advance(1);
    let last = t.enqueue(Q, event("4"));
    assert_eq!(ids(&t.lease(Q, 2)), first[..2]);
    assert_eq!(ids(&t.lease(Q, 10)), [first[2], last]);
}

#[test]
fn retried_event_comes_after_events_visible_before_its_backoff_ended_and_before_later_ones() {
    let t = TestBroker::new();
    let retried = t.enqueue(Q, event("r"));
    assert_eq!(t.nack(Q, &lease_one(&t, Q), None), S::Ok);
    let earlier = t.enqueue(Q, event("e"));
    t.advance(t.limits.backoff.nominal_ms(1));
    let later = t.enqueue(Q, event("l"));
    t.advance(10);
    let got = ids_and_attempts(&t.lease(Q, 10));
    assert_eq!(got, [(earlier, 1), (retried, 2), (later, 1)]);
}

#[test]
fn delayed_event_visible_earlier_comes_before_later_enqueued_events() {
    let t = TestBroker::new();
    let d = t.enqueue(Q, delayed("d", 2_000));
    t.advance(1_000);
    let before = t.enqueue(Q, event("b"));
    t.advance(1_500);
    let after = t.enqueue(Q, event("a"));
    let also_delayed = t.enqueue(Q, delayed("x", 1));
    t.advance(1);
    assert_eq!(ids(&t.lease(Q, 10)), [before, d, after, also_delayed]);
}

// 7. Queue size limit

fn full(result: Result<Vec<u64>, BrokerError>) -> bool {
    matches!(result, Err(BrokerError::QueueFull { max: 3, .. }))
}

#[test]
fn fourth_enqueue_on_a_queue_of_three_is_refused_and_a_batch_is_all_or_nothing() {
    let t = broker_with(|l| l.queue_max_size = 3);
    enqueue_all(&t, Q, &events(2)).unwrap();
    assert!(full(enqueue_all(&t, Q, &events(2))));
    assert_eq!(counts(&t, Q), (2, 0, 0, 0), "stored nothing");
    t.enqueue(Q, delayed("3", 1_000));
    assert!(full(enqueue_all(&t, Q, &events(1))), "delayed events count");
    let d = t.lease(Q, 1).remove(0);
    assert!(full(enqueue_all(&t, Q, &events(1))), "in flight counts");
    assert_eq!(t.ack(Q, &d), S::Ok);
    enqueue_all(&t, Q, &events(1)).expect("acking freed room");
    assert!(full(enqueue_all(&t, Q, &events(1))));
    enqueue_all(&t, "other", &events(3)).expect("the limit is per queue");
}

#[test]
fn dead_events_do_not_count_against_the_queue_size() {
    let t = broker_with(|l| {
        l.queue_max_size = 3;
        l.max_retries = 0;
    });
    enqueue_all(&t, Q, &events(3)).unwrap();
    kill_all(&t);
    assert_eq!(counts(&t, Q), (0, 0, 0, 3));
    enqueue_all(&t, Q, &events(3)).expect("dead events do not count");
    assert!(full(enqueue_all(&t, Q, &events(1))));
}

// 8. Validation

fn invalid_field(result: Result<Vec<u64>, BrokerError>) -> String {
    match result {
        Err(BrokerError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn batch_with_one_payload_too_large_fails_naming_it_and_stores_nothing() {
    let t = broker_with(|l| l.max_payload_bytes = 8);
    t.enqueue(Q, event("1"));
    let batch = [event("2"), event("3"), event(r#""1234567""#)];
    match enqueue_all(&t, Q, &batch) {
        Err(BrokerError::PayloadTooLarge { field, len, max }) => {
            assert_eq!((field.as_str(), len, max), ("events[2].payload", 9, 8));
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert_eq!(counts(&t, Q), (1, 0, 0, 0));
    enqueue_all(&t, Q, &[event(r#""123456""#)]).expect("exactly the limit is fine");
}

#[test]
fn empty_or_oversized_batch_and_bad_queue_names_are_invalid() {
    let t = broker_with(|l| l.max_batch = 4);
    t.enqueue(Q, event("1"));
    assert_eq!(invalid_field(enqueue_all(&t, Q, &[])), "events");
    assert_eq!(invalid_field(enqueue_all(&t, Q, &events(5))), "events");
    enqueue_all(&t, Q, &events(4)).expect("max_batch itself is fine");
    let long = "q".repeat(129);
    for bad in ["", "has space", "slash/name", "é", long.as_str()] {
        let field = invalid_field(enqueue_all(&t, bad, &events(1)));
        assert_eq!(field, "queue", "{bad:?}");
    }
    enqueue_all(&t, &long[1..], &events(1)).expect("128 characters are fine");
    assert_eq!(counts(&t, Q), (5, 0, 0, 0));
}

// 9. Extend

#[test]
fn extended_lease_outlives_its_original_timeout_and_expires_at_the_new_one() {
    let t = TestBroker::new();
    t.enqueue(Q, event("{}"));
    let ten_s = Some(Duration::from_secs(10));
    let d = t.broker.lease(Q, 1, ten_s).unwrap().remove(0);
    let receipt = [d.receipt.to_string()];
    t.advance(8_000);
    let extended = t.broker.extend(Q, &receipt, ten_s).unwrap();
    assert_eq!(extended[0].status, S::Ok);
    t.advance(3_000);
    assert_eq!(reap(&t), 0, "expired at the original deadline");
    assert_eq!(counts(&t, Q), (0, 0, 1, 0));
    t.advance(6_999);
    assert_eq!(reap(&t), 0);
    t.advance(1);
    assert_eq!(reap(&t), 1);
    assert_eq!(t.ack(Q, &d), S::LeaseLost);
    let again = t.broker.extend(Q, &receipt, None).unwrap();
    assert_eq!(again[0].status, S::LeaseLost, "extended after expiry");
}

// 10. Redrive and purge

/// A broker whose queue `Q` holds `n` dead events; their ids.
fn dead_broker(n: usize) -> (TestBroker, Vec<u64>) {
    let t = broker_with(|l| l.max_retries = 0);
    let ids = enqueue_all(&t, Q, &events(n)).unwrap();
    kill_all(&t);
    assert_eq!(counts(&t, Q), (0, 0, 0, n as u64));
    (t, ids)
}

#[test]
fn dlq_listing_pages_with_after_and_next() {
    let (t, ids) = dead_broker(5);
    let page = |after, limit| {
        let page = t.broker.dlq(Q, after, limit).unwrap();
        let got: Vec<u64> = page.events.iter().map(|e| e.id).collect();
        (got, page.next)
    };
    assert_eq!(page(None, 2), (ids[..2].to_vec(), Some(ids[1])));
    assert_eq!(page(Some(ids[1]), 2), (ids[2..4].to_vec(), Some(ids[3])));
    assert_eq!(page(Some(ids[3]), 2), (vec![ids[4]], None));
    assert_eq!(page(None, 5), (ids.clone(), None), "a full last page");
}

#[test]
fn redrive_by_ids_and_all_sends_events_back_with_attempt_1() {
    let (t, ids) = dead_broker(4);
    let redrive = |some: Option<&[u64]>| t.broker.redrive(Q, some).unwrap().wait().unwrap();
    let n = redrive(Some(&[ids[0], ids[2], 424_242]));
    assert_eq!(n, 2, "unknown ids are ignored");
    assert_eq!(counts(&t, Q), (2, 0, 0, 2));
    let back = ids_and_attempts(&t.lease(Q, 10));
    assert_eq!(back, [(ids[0], 1), (ids[2], 1)]);
    assert_eq!(redrive(Some(&[ids[0]])), 0, "not dead any more");
    assert_eq!(redrive(None), 2);
    assert_eq!(counts(&t, Q), (2, 0, 2, 0));
    let back = ids_and_attempts(&t.lease(Q, 10));
    assert_eq!(back, [(ids[1], 1), (ids[3], 1)]);
    assert_eq!(t.broker.queue(Q).unwrap().redriven_total, 4);
}

#[test]
fn purge_by_ids_and_all_deletes_dead_events() {
    let (mut t, ids) = dead_broker(4);
    let purge = |some: Option<&[u64]>| t.broker.purge(Q, some).unwrap().wait().unwrap();
    assert_eq!(purge(Some(&[ids[1], ids[1], 424_242])), 1);
    assert_eq!(counts(&t, Q), (0, 0, 0, 3));
    assert_eq!(purge(None), 3);
    assert_eq!(purge(None), 0);
    assert_eq!(counts(&t, Q), (0, 0, 0, 0));
    t.restart();
    assert!(t.broker.dlq(Q, None, 10).unwrap().events.is_empty());
    assert!(nothing_ready(&t));
}

// 11. Recovery

#[test]
fn acked_events_never_come_back_and_in_flight_ones_are_ready_after_restart() {
    let mut t = TestBroker::new();
    let sent = enqueue_all(&t, Q, &events(3)).unwrap();
    let got = t.lease(Q, 3);
    assert_eq!(t.ack(Q, &got[0]), S::Ok);
    assert_eq!(t.ack(Q, &got[2]), S::Ok);
    t.restart();
    assert_eq!(counts(&t, Q), (1, 0, 0, 0));
    assert_eq!(ids(&t.lease(Q, 10)), [sent[1]]);
    t.restart();
    t.advance(60_000);
    assert_eq!(ids(&t.lease(Q, 10)), [sent[1]]);
}

#[test]
fn dead_events_stay_dead_with_attempts_and_last_error_after_restart() {
    let mut t = broker_with(|l| l.max_retries = 1);
    let id = t.enqueue(Q, event(r#"{"x":1}"#));
    t.nack(Q, &lease_one(&t, Q), Some("first"));
    t.advance(1_000);
    t.nack(Q, &lease_one(&t, Q), Some("second"));
    t.restart();
    assert_eq!(counts(&t, Q), (0, 0, 0, 1));
    let dead = only_dead(&t);
    assert_eq!((dead.id, dead.attempts), (id, 2));
    assert_eq!(dead.last_error.as_deref(), Some("second"));
    assert_eq!(dead.payload(), br#"{"x":1}"#);
    t.advance(3_600_000);
    assert!(nothing_ready(&t));
}

#[test]
fn failure_count_and_retry_time_survive_a_restart() {
    let mut t = TestBroker::new();
    let id = t.enqueue(Q, event("{}"));
    t.nack(Q, &lease_one(&t, Q), Some("one"));
    t.advance(1_000);
    t.nack(Q, &lease_one(&t, Q), Some("two"));
    t.restart();
    assert_eq!(counts(&t, Q), (0, 1, 0, 0));
    t.advance(t.limits.backoff.delay_ms(id, 2) - 1);
    assert!(nothing_ready(&t));
    t.advance(1);
    assert_eq!(lease_one(&t, Q).attempt, 3);
}

#[test]
fn ids_keep_increasing_after_restart_when_cleanup_dropped_every_acked_event() {
    let mut t = TestBroker::with(limits(), 4096, FsyncPolicy::Never);
    let pad = "x".repeat(64);
    let batch: Vec<NewEvent> = (0..100)
        .map(|i| event(&format!(r#"["{pad}",{i}]"#)))
        .collect();
    let last = *enqueue_all(&t, Q, &batch).unwrap().last().unwrap();
    // Acks one by one, so that the newest segments hold acks only.
    while let Some(d) = t.lease(Q, 1).pop() {
        assert_eq!(t.ack(Q, &d), S::Ok);
    }
    assert!(t.broker.wal().segments().len() >= 2);
    t.broker.cleanup().expect("cleanup");
    t.restart();
    let next = t.enqueue(Q, event("{}"));
    assert!(next > last, "id {next} handed out again (last was {last})");
    assert_eq!(t.ack(Q, &lease_one(&t, Q)), S::Ok);
    let report = t.broker.cleanup().expect("cleanup");
    assert!(report.deleted > 0, "old segments kept: {report:?}");
}

#[test]
fn cleanup_copies_thousands_of_live_events_forward_in_slices_and_a_restart_keeps_them() {
    let mut limits = limits();
    limits.queue_max_size = 100_000;
    let mut t = TestBroker::with(limits, 512 << 10, FsyncPolicy::Never);
    let pad = "x".repeat(40);
    let mut all = Vec::new();
    for chunk in 0..20 {
        let batch: Vec<NewEvent> = (0..1_000)
            .map(|i| event(&format!(r#"["{pad}",{}]"#, chunk * 1_000 + i)))
            .collect();
        all.extend(enqueue_all(&t, Q, &batch).unwrap());
    }
    let oldest = t.broker.wal().segments()[0].first_seq;
    assert!(t.broker.wal().segments().len() >= 3);
    // Leases every event, keeping the payloads of those `keep` picks and
    // acking the others.
    let drain = |t: &TestBroker, keep: fn(u64) -> bool| {
        let mut kept = std::collections::BTreeMap::new();
        loop {
            let leased = t.lease(Q, 1_000);
            if leased.is_empty() {
                return kept;
            }
            for d in leased {
                if keep(d.id) {
                    kept.insert(d.id, d.payload().to_vec());
                } else {
                    assert_eq!(t.ack(Q, &d), S::Ok);
                }
            }
        }
    };
    // Acks three of every four, so that a quarter stays live everywhere:
    // the oldest segment's share is worth copying, in several slices.
    let kept = drain(&t, |id| id % 4 == 0);
    let report = t.broker.cleanup().expect("cleanup");
    assert!(report.relocated > 1_000, "{report:?}");
    assert!(report.deleted > 0, "{report:?}");
    assert!(t.broker.wal().segments()[0].first_seq > oldest);
    t.restart();
    let back = drain(&t, |_| true);
    assert_eq!(back.len(), all.len() / 4);
    assert_eq!(
        back, kept,
        "every live event, with its payload, and no other"
    );
}

#[test]
fn subscriptions_survive_restarts_and_cleanup() {
    let mut t = TestBroker::with(limits(), 4096, FsyncPolicy::Never);
    let request = SubscriptionRequest {
        url: "http://hooks.example.com:9000/hook".into(),
        concurrency: None,
        timeout_ms: Some(2500),
        secret: Some("whsec_KioqKioqKioqKioqKioqKioqKioqKioq".into()),
    };
    let set = block_on(t.broker.subscribe(Q, request)).unwrap();
    assert_eq!(
        (set.concurrency, set.timeout_ms),
        (t.limits.worker_count, 2500)
    );
    t.restart();
    assert_eq!(t.broker.subscription(Q).unwrap(), Some(set.clone()));

    // Cleanup deletes the segment holding the subscription once it is
    // written again.
    t.churn_and_clean_up("other");
    t.restart();
    assert_eq!(t.broker.subscriptions(), vec![set]);

    assert!(block_on(t.broker.unsubscribe(Q)).unwrap());
    assert!(!block_on(t.broker.unsubscribe(Q)).unwrap());
    t.restart();
    assert_eq!(t.broker.subscription(Q).unwrap(), None);
}

// 12. Long polling

#[tokio::test(flavor = "current_thread")]
async fn long_poll_returns_the_event_enqueued_while_it_waits() {
    let t = Arc::new(TestBroker::new());
    let started = Instant::now();
    let poll = t.clone();
    let waiter = tokio::spawn(async move {
        poll.broker
            .lease_wait(Q, 10, None, Duration::from_secs(10))
            .await
    });
    // Lets the poll run until it waits.
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "the poll should be waiting");
    let producer = t.clone();
    let produced = tokio::spawn(async move { producer.broker.enqueue(Q, &[event("7")]).await });
    let id = produced.await.unwrap().unwrap()[0].id;
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(ids(&got), [id]);
    assert_eq!(got[0].payload(), b"7");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// Tokio's clock is paused: the wait passes without sleeping.
#[tokio::test(start_paused = true)]
async fn long_poll_returns_empty_after_its_wait_when_nothing_comes() {
    let t = TestBroker::new();
    t.broker.enqueue(Q, &[delayed("{}", 60_000)]).await.unwrap();
    for queue in [Q, "never-made"] {
        let started = tokio::time::Instant::now();
        let wait = Duration::from_secs(20);
        let got = t.broker.lease_wait(queue, 10, None, wait).await.unwrap();
        assert!(got.is_empty());
        assert_eq!(started.elapsed(), wait);
    }
}
