//! Measures the `Consumer` with its default settings: drains COUNT events
//! from QUEUE with a handler that does nothing, and prints events a second
//! as one JSON line. For docs/BENCHMARKS.md, beside `event-broker bench
//! consume` on the same broker.
//!
//!     cargo run --release -p event-broker-client --example consume_rate -- QUEUE COUNT
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use event_broker_client::{Client, Consumer, LeasedEvent};

#[tokio::main]
async fn main() -> Result<(), event_broker_client::Error> {
    let mut args = std::env::args().skip(1);
    let queue = args.next().expect("QUEUE");
    let count: u64 = args.next().and_then(|c| c.parse().ok()).expect("COUNT");
    let client = Client::builder().from_env().build()?;
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (seen, finished) = (handled.clone(), done.clone());
    let handle = move |_: LeasedEvent| {
        if seen.fetch_add(1, Ordering::Relaxed) + 1 == count {
            finished.notify_one();
        }
        async { Ok::<(), String>(()) }
    };
    let started = Instant::now();
    let report = Consumer::new(client, queue)
        .run(handle, async move { done.notified().await })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"events\":{},\"seconds\":{seconds:.3},\"events_per_s\":{:.0},\"acked\":{}}}",
        handled.load(Ordering::Relaxed),
        handled.load(Ordering::Relaxed) as f64 / seconds,
        report.acked
    );
    Ok(())
}
