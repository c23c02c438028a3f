//! `consume QUEUE`: leases events and prints each as a JSON line (the event
//! as the lease gave it, receipt included), acking each batch once it is
//! written out, so an event is acked only after it reached stdout.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use event_broker_client::LeaseRequest;

use super::progress::Progress;
use super::{duration, Connection, Failure};

/// Flags of `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The queue.
    pub queue: String,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Leave the events leased instead of acking them; they come back when
    /// the lease ends.
    #[arg(long)]
    pub no_ack: bool,
    /// How long each lease waits for an event (ms, or 20s); 0 drains what
    /// is ready (with --follow, 0 means 20s). Without --follow, the command ends at the first lease that
    /// finds nothing.
    #[arg(long, default_value = "0", value_parser = duration)]
    pub wait: Duration,
    /// Keep leasing when the queue is empty, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Events per lease, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max: u32,
    /// The lease length (default the queue's).
    #[arg(long, value_parser = duration)]
    pub visibility_timeout: Option<Duration>,
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn run(args: ConsumeArgs) -> Result<(), Failure> {
    if args.wait > Duration::from_secs(60) {
        return Err(Failure::Usage("--wait: at most 60s".into()));
    }
    // Following with no wait would ask the broker again at once, forever.
    let wait = if args.follow && args.wait.is_zero() {
        Duration::from_secs(20)
    } else {
        args.wait
    };
    let client = args.connection.client()?;
    let mut progress = Progress::new("events consumed");
    let mut consumed = 0u64;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let left = args.count.map_or(u64::MAX, |c| c - consumed);
        if left == 0 {
            break;
        }
        let request = LeaseRequest {
            max: Some(args.max.min(u32::try_from(left).unwrap_or(u32::MAX))),
            visibility_timeout_ms: args.visibility_timeout.map(|d| d.as_millis() as u64),
            wait_ms: Some(wait.as_millis() as u64),
        };
        let events = tokio::select! {
            events = client.lease_events(&args.queue, &request) => events?,
            _ = &mut interrupted => break,
        };
        if events.is_empty() {
            if args.follow {
                continue;
            }
            break;
        }
        {
            let mut out = std::io::stdout().lock();
            for event in &events {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(event).expect("an event serialises")
                )?;
            }
            out.flush()?;
        }
        if !args.no_ack {
            let receipts: Vec<String> = events.iter().map(|e| e.receipt.clone()).collect();
            client.ack_events(&args.queue, &receipts).await?;
        }
        consumed += events.len() as u64;
        progress.add(events.len() as u64);
    }
    progress.finish();
    Ok(())
}
