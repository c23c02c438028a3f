//! Long polls on any names leave nothing behind: 200,000 of them on distinct
//! names (valid and not, of queues that exist and that do not, answered,
//! timed out and given up by their clients) leave no notification and no
//! memory once they are over. The waits run on tokio's paused clock, so
//! nothing sleeps. In a file of its own, so no other test shares the
//! process whose memory it reads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::broker::{event, TestBroker};
use event_broker_core::BrokerError;
use tokio::task::JoinSet;

const POLLS: usize = 200_000;
/// Polls waiting at once.
const AT_ONCE: usize = 1_000;
/// Queues that exist, each with events to hand out.
const LIVE: usize = 10;

/// The process's resident memory in bytes, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages in statm");
    // SAFETY: sysconf reads a constant of the system and has no other effect.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

/// Poll `i` of a round: its name and how it ends, mixed by its number.
async fn poll(t: Arc<TestBroker>, i: usize) {
    let live = format!("live-{}", i % LIVE);
    let missing = format!("missing-{i}");
    let broker = &t.broker;
    match i % 5 {
        // A name the API must refuse, in any of the ways one can be bad.
        0 => {
            let bad = match i % 3 {
                0 => format!("bad name {i}"),
                1 => format!("{}{i}", "x".repeat(128)),
                _ => format!("slash/{i}"),
            };
            let got = broker
                .lease_wait(&bad, 1, None, Duration::from_millis(5))
                .await;
            assert!(matches!(got, Err(BrokerError::Invalid { .. })), "{bad}");
        }
        // A queue that does not exist, polled without a wait and with one.
        1 => {
            let got = broker.lease_wait(&missing, 1, None, Duration::ZERO).await;
            assert!(got.unwrap().is_empty());
        }
        2 => {
            let got = broker.lease_wait(&missing, 1, None, Duration::from_millis(5));
            assert!(got.await.unwrap().is_empty());
        }
        // A client that goes away while its poll waits.
        3 => {
            let got = broker.lease_wait(&missing, 1, None, Duration::from_secs(30));
            let gave_up = tokio::time::timeout(Duration::from_millis(2), got).await;
            assert!(gave_up.is_err(), "the poll should still be waiting");
        }
        // A queue that exists: it answers at once while it has events.
        _ => {
            let got = broker.lease_wait(&live, 1, None, Duration::from_millis(5));
            got.await.unwrap();
        }
    }
}

/// `count` polls from number `first` on, `AT_ONCE` at a time.
async fn polls(t: &Arc<TestBroker>, first: usize, count: usize) {
    for round in (first..first + count).step_by(AT_ONCE) {
        let mut tasks = JoinSet::new();
        for i in round..(round + AT_ONCE).min(first + count) {
            tasks.spawn(poll(t.clone(), i));
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("poll task");
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn long_polls_on_200000_distinct_names_leave_no_notification_and_no_memory_behind() {
    let t = Arc::new(TestBroker::new());
    let batch = vec![event("{}"); POLLS / LIVE / 20];
    for q in 0..LIVE {
        t.broker
            .enqueue(&format!("live-{q}"), &batch)
            .await
            .unwrap();
    }
    // A first round warms the allocator and the runtime up before measuring.
    polls(&t, 0, 10 * AT_ONCE).await;
    assert_eq!(t.broker.long_polled_queues(), 0);
    let before = rss_bytes();

    polls(&t, 10 * AT_ONCE, POLLS).await;

    assert_eq!(
        t.broker.long_polled_queues(),
        0,
        "no poll waits, so no queue keeps a notification"
    );
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!("RSS before {before} bytes, after {after} bytes: {grown} bytes more");
    // A notification kept per name grows it by over 100 MiB here.
    assert!(
        grown < 8 << 20,
        "RSS grew by {grown} bytes over {POLLS} long polls"
    );

    // And the count is real: one poll waiting holds its queue's notification
    // until an enqueue wakes it. On the real clock from here, or the paused
    // one would jump to the end of the wait as soon as this task yields.
    tokio::time::resume();
    let waiter = {
        let t = t.clone();
        tokio::spawn(async move {
            let wait = Duration::from_secs(30);
            t.broker.lease_wait("late", 1, None, wait).await
        })
    };
    for _ in 0..100 {
        if t.broker.long_polled_queues() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(t.broker.long_polled_queues(), 1);
    t.broker.enqueue("late", &[event("1")]).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().len(), 1);
    assert_eq!(t.broker.long_polled_queues(), 0);
}
