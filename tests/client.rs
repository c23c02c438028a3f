//! The Rust client against the real binary: every operation, the typed
//! errors, and the consumer loop through a slow handler, failures, groups,
//! a broker killed with SIGKILL and restarted, and SIGTERM to a consumer
//! process.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{command, Server};
use event_broker_client::{
    BrowseQuery, Client, Consumer, Error, ErrorCode, EventState, LeaseRequest, Nack, NewEvent,
    RetryPolicy, Selection, SettingsUpdate, SettleStatus, SubscriptionRequest,
};
use serde_json::json;

fn client(server: &Server) -> Client {
    Client::new(&server.base).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_round_trips_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("WEBHOOK_ALLOW_PRIVATE", "true")]);
    let c = client(&server);
    let q = "orders";

    let one = c
        .enqueue(
            q,
            &NewEvent::new(&json!({"order": 42}))
                .unwrap()
                .idempotency_key("o-42")
                .header("source", "web"),
        )
        .await
        .unwrap();
    assert!(!one.duplicate);
    let again = c
        .enqueue(
            q,
            &NewEvent::new(&json!({"order": 42}))
                .unwrap()
                .idempotency_key("o-42"),
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.duplicate), (one.id, true));
    let batch = c
        .enqueue_events(
            q,
            &[
                NewEvent::json("1")
                    .unwrap()
                    .priority(9)
                    .group("g")
                    .ttl(Duration::from_secs(60)),
                NewEvent::json("2").unwrap().delay(Duration::from_secs(60)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(batch.ids.len(), 2);
    assert!(batch.expires_at.as_ref().unwrap()[0].is_some());

    let leased = c
        .lease_events(
            q,
            &LeaseRequest {
                max: Some(10),
                visibility_timeout_ms: Some(30_000),
                wait_ms: Some(100),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        leased.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![batch.ids[0], one.id],
        "priority first"
    );
    assert_eq!(
        leased[1].headers.get("source").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        leased[1].payload_as::<serde_json::Value>().unwrap(),
        json!({"order": 42})
    );
    let receipts: Vec<String> = leased.iter().map(|e| e.receipt.clone()).collect();
    let extended = c
        .extend_leases(q, &receipts, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(extended.iter().all(|r| r.status == SettleStatus::Ok));
    let acked = c.ack_events(q, &receipts[..1]).await.unwrap();
    assert_eq!(acked[0].status, SettleStatus::Ok);
    let again = c.ack_events(q, &receipts[..1]).await.unwrap();
    assert_eq!(
        again[0].status,
        SettleStatus::LeaseLost,
        "an all-failed ack gives its results"
    );

    // Settings, pause and resume; a nack dead-letters at max_retries 0.
    let queue = c
        .put_queue_settings(
            q,
            &SettingsUpdate {
                max_retries: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(queue.settings.max_retries, 0);
    let queue = c
        .patch_queue_settings(
            q,
            &SettingsUpdate {
                max_in_flight: Some(Some(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (queue.settings.max_retries, queue.settings.max_in_flight),
        (0, Some(5))
    );
    assert!(c.pause_queue(q).await.unwrap().paused);
    assert!(!c.resume_queue(q).await.unwrap().paused);
    let nacked = c
        .nack_events(
            q,
            &Nack {
                receipts: receipts[1..].to_vec(),
                delay_ms: None,
                error: Some("downstream 503".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(nacked[0].status, SettleStatus::Ok);
    let dead = c.list_dead_letters(q, Some(10), None).await.unwrap();
    assert_eq!(dead.events.len(), 1);
    assert_eq!(dead.events[0].last_error.as_deref(), Some("downstream 503"));
    assert_eq!(
        c.redrive_dead_letters(q, &Selection::Ids(vec![one.id]))
            .await
            .unwrap(),
        1
    );
    let leased = c
        .lease_events(
            q,
            &LeaseRequest {
                max: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.nack_events(
        q,
        &Nack {
            receipts: vec![leased[0].receipt.clone()],
            delay_ms: None,
            error: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(c.purge_dead_letters(q, &Selection::All).await.unwrap(), 1);

    // Browse, get, cancel.
    let page = c
        .browse_events(
            q,
            &BrowseQuery {
                state: Some(EventState::Delayed),
                payload: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert!(page.events[0].payload.is_none());
    let delayed = c.get_event(q, batch.ids[1]).await.unwrap();
    assert_eq!(delayed.state, EventState::Delayed);
    c.cancel_event(q, batch.ids[1]).await.unwrap();
    assert_eq!(
        c.get_event(q, batch.ids[1]).await.unwrap_err().code(),
        Some(&ErrorCode::NotFound)
    );

    // Subscriptions.
    let sub = c
        .put_subscription(
            "hooked",
            &SubscriptionRequest {
                url: "http://127.0.0.1:9/hook".into(),
                concurrency: Some(2),
                timeout_ms: Some(1000),
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            },
        )
        .await
        .unwrap();
    assert!(sub.signed);
    assert_eq!(c.get_subscription("hooked").await.unwrap().concurrency, 2);
    c.delete_subscription("hooked").await.unwrap();
    assert_eq!(
        c.get_subscription("hooked").await.unwrap_err().code(),
        Some(&ErrorCode::NotFound)
    );

    // Operations.
    c.health().await.unwrap();
    assert!(c.ready().await.unwrap().is_ready());
    let status = c.status().await.unwrap();
    assert_eq!(status.wal.fsync, "always");
    assert!(status.queues.iter().any(|queue| queue.name == q));
    assert!(c.metrics().await.unwrap().contains("event_broker_"));
    assert_eq!(c.openapi().await.unwrap()["info"]["title"], "event-broker");
    assert_eq!(c.openapi30().await.unwrap()["openapi"], "3.0.3");
    let checkpoint = c.create_checkpoint(Some("nightly")).await.unwrap();
    assert_eq!(checkpoint.path, "checkpoints/nightly");
    assert!(c.create_checkpoint(None).await.is_ok());
    assert_eq!(
        c.list_queues().await.unwrap().len(),
        c.status().await.unwrap().queues.len()
    );
    c.delete_queue(q).await.unwrap();
    assert_eq!(
        c.get_queue(q).await.unwrap_err().code(),
        Some(&ErrorCode::NotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_code_the_field_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("BROKER_TOKEN", "right-token")]);
    let good = Client::builder()
        .url(&server.base)
        .token("right-token")
        .retry(RetryPolicy {
            retries: 0,
            max_wait: Duration::ZERO,
        })
        .build()
        .unwrap();

    let e = good
        .enqueue("bad name", &NewEvent::json("1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.field()),
        (Some(&ErrorCode::InvalidRequest), Some("queue")),
        "{e}"
    );
    let e = good
        .enqueue(
            "q",
            &NewEvent::json("1")
                .unwrap()
                .delay(Duration::from_secs(40 * 86_400)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("delay_ms"), "{e}");

    good.put_queue_settings(
        "small",
        &SettingsUpdate {
            max_size: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    good.enqueue("small", &NewEvent::json("1").unwrap())
        .await
        .unwrap();
    let e = good
        .enqueue("small", &NewEvent::json("2").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::QueueFull));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.is_transient() && !e.is_fatal());

    let wrong = Client::builder()
        .url(&server.base)
        .token("wrong")
        .build()
        .unwrap();
    let e = wrong.list_queues().await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::Unauthorized));
    assert!(e.is_fatal());

    let down = Client::new(&format!("http://127.0.0.1:{}", common::server::free_port())).unwrap();
    assert!(matches!(
        down.health().await.unwrap_err(),
        Error::Connect { .. }
    ));
    assert!(matches!(
        Client::new("ftp://x").unwrap_err(),
        Error::Config(_)
    ));
}

/// Enqueues `n` events numbered from 0 as their payload.
async fn fill(c: &Client, queue: &str, n: u64) {
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent::json(&i.to_string()).unwrap())
        .collect();
    for chunk in events.chunks(500) {
        c.enqueue_events(queue, chunk).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_taking_three_visibility_timeouts_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client(&server);
    fill(&c, "slow", 1).await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    let handled = Arc::new(tokio::sync::Notify::new());
    let done = Arc::clone(&handled);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer::new(c.clone(), "slow")
        .visibility_timeout(Duration::from_millis(900))
        .wait(Duration::from_millis(200));
    let run = tokio::spawn(consumer.run(
        move |event| {
            let (seen, done) = (Arc::clone(&seen), Arc::clone(&done));
            async move {
                seen.lock().unwrap().push((event.id, event.attempt));
                tokio::time::sleep(Duration::from_millis(2900)).await;
                done.notify_one();
                Ok::<(), String>(())
            }
        },
        async {
            stopped.await.ok();
        },
    ));
    // The handler's end, not a guess at how long it takes; a redelivery
    // would have come while it ran, at the first lease's expiry.
    handled.notified().await;
    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(
        *runs.lock().unwrap(),
        vec![(0, 1)],
        "delivered once, on its first attempt"
    );
    assert_eq!((report.succeeded, report.acked, report.lost), (1, 1, 0));
    let queue = c.get_queue("slow").await.unwrap();
    assert_eq!((queue.ready, queue.in_flight, queue.acked_total), (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_nack_with_their_text_and_groups_run_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client(&server);
    c.put_queue_settings(
        "jobs",
        &SettingsUpdate {
            max_retries: Some(0),
            group_concurrency: Some(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut events = vec![
        NewEvent::json("\"fail\"").unwrap(),
        NewEvent::json("\"panic\"").unwrap(),
    ];
    for i in 0..6 {
        events.push(NewEvent::json(&i.to_string()).unwrap().group("account-1"));
    }
    c.enqueue_events("jobs", &events).await.unwrap();

    let running: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let order = Arc::new(Mutex::new(Vec::new()));
    let overlap = Arc::new(Mutex::new(false));
    let (running2, order2, overlap2) = (running.clone(), order.clone(), overlap.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        Consumer::new(c.clone(), "jobs")
            .concurrency(8)
            .wait(Duration::from_millis(200))
            .run(
                move |event| {
                    let (running, order, overlap) =
                        (running2.clone(), order2.clone(), overlap2.clone());
                    async move {
                        let payload: serde_json::Value = event.payload_as().unwrap();
                        match payload.as_str() {
                            Some("fail") => return Err("downstream said 503".to_string()),
                            Some("panic") => panic!("boom"),
                            _ => {}
                        }
                        let group = event.group.clone().unwrap();
                        {
                            let mut r = running.lock().unwrap();
                            let n = r.entry(group.clone()).or_default();
                            *n += 1;
                            if *n > 1 {
                                *overlap.lock().unwrap() = true;
                            }
                        }
                        order.lock().unwrap().push(event.id);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        *running.lock().unwrap().get_mut(&group).unwrap() -= 1;
                        Ok(())
                    }
                },
                async {
                    stopped.await.ok();
                },
            ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while order.lock().unwrap().len() < 6 || c.get_queue("jobs").await.unwrap().dead < 2 {
        assert!(
            Instant::now() < deadline,
            "the consumer did not get through the queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert!(
        !*overlap.lock().unwrap(),
        "two events of one group ran at once"
    );
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        vec![2, 3, 4, 5, 6, 7],
        "a group's events run in id order"
    );
    assert_eq!((report.succeeded, report.failed), (6, 2));
    let dead = c.list_dead_letters("jobs", None, None).await.unwrap();
    let errors: BTreeMap<u64, String> = dead
        .events
        .iter()
        .map(|e| (e.id, e.last_error.clone().unwrap()))
        .collect();
    assert_eq!(errors[&0], "downstream said 503");
    assert_eq!(errors[&1], "handler panicked: boom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_carries_on_through_a_broker_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let port: u16 = server.port().parse().unwrap();
    let c = client(&server);
    const N: u64 = 3000;

    // Handlings of each id: when each ended.
    let handled: Arc<Mutex<HashMap<u64, Vec<Instant>>>> = Arc::default();
    let seen = handled.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = Consumer::new(c.clone(), "kill")
        .concurrency(8)
        .wait(Duration::from_millis(500));
    let run = tokio::spawn(consumer.run(
        move |event| {
            let seen = seen.clone();
            async move {
                let i: u64 = event.payload_as().unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                seen.lock()
                    .unwrap()
                    .entry(i)
                    .or_default()
                    .push(Instant::now());
                Ok::<(), String>(())
            }
        },
        async {
            stopped.await.ok();
        },
    ));

    // A producer of single events; an event is acknowledged when it answers 201.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let acks = acknowledged.clone();
    let producer_client = c.with_retry(RetryPolicy {
        retries: 0,
        max_wait: Duration::ZERO,
    });
    let producer = tokio::spawn(async move {
        let mut i = 0;
        while i < N {
            match producer_client
                .enqueue("kill", &NewEvent::json(&i.to_string()).unwrap())
                .await
            {
                Ok(_) => {
                    acks.lock().unwrap().push(i);
                    i += 1;
                }
                // Down: the same payload again once it is back (an answer lost
                // to the kill may have been stored: then it comes twice).
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });

    while acknowledged.lock().unwrap().len() < (N / 3) as usize {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _server = Server::spawn(command(dir.path(), port), port);
    producer.await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = {
            let h = handled.lock().unwrap();
            (0..N).all(|i| h.contains_key(&i))
        };
        let queue = c.get_queue("kill").await.unwrap();
        if all && queue.ready + queue.delayed + queue.in_flight == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every acknowledged event was handled: {queue:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    let handled = handled.lock().unwrap();
    // Delivered twice may be only what was in flight at the kill: handled
    // within the last moment before it, its ack not yet answered.
    let twice: Vec<u64> = handled
        .iter()
        .filter(|(_, t)| t.len() > 1)
        .map(|(i, _)| *i)
        .collect();
    for i in &twice {
        let first = handled[i][0];
        assert!(
            first + Duration::from_secs(1) > killed_at,
            "event {i} was handled {:?} before the kill and delivered again",
            killed_at - first
        );
    }
    assert!(twice.len() <= 64, "{} events delivered twice", twice.len());
    eprintln!(
        "acknowledged {N}, handled {}, delivered twice {}",
        handled.len(),
        twice.len()
    );
}

/// Run as a child process by the test below: a consumer that stops at SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_process() {
    let Ok(url) = std::env::var("CONSUMER_PROCESS_URL") else {
        return;
    };
    let c = Client::new(&url).unwrap();
    let consumer = Consumer::new(c, "term")
        .concurrency(3)
        .wait(Duration::from_millis(300));
    let report = consumer
        .run(
            |event| async move {
                println!("started {}", event.id);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                println!("finished {}", event.id);
                Ok::<(), String>(())
            },
            event_broker_client::shutdown_signal(),
        )
        .await
        .unwrap();
    println!("report {} {}", report.succeeded, report.acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_consumer_process_finishes_its_handlers_and_exits_0() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client(&server);
    fill(&c, "term", 10).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "consumer_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CONSUMER_PROCESS_URL", &server.base)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = 0;
    while started < 3 {
        let line = lines.next().expect("the consumer stopped early").unwrap();
        // libtest writes its own "test consumer_process ... " ahead of the first line.
        started += usize::from(line.contains("started "));
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {rest:?}");
    assert_eq!(
        rest.iter().filter(|l| l.starts_with("finished ")).count(),
        3,
        "{rest:?}"
    );
    assert!(rest.iter().any(|l| l.contains("report 3 3")), "{rest:?}");
    let queue = c.get_queue("term").await.unwrap();
    assert_eq!((queue.ready, queue.in_flight, queue.acked_total), (7, 0, 3));
}
