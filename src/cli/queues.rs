//! `queues` (a table of every queue) and `queue QUEUE` (one queue's
//! counts and settings), or their JSON with `--json`.

use std::io::Write;

use clap::Args;
use event_broker_client::Queue;

use super::{Connection, Failure};

/// Flags of `queues`.
#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Print the queues as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags of `queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue.
    pub queue: String,
    /// Print the queue as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn list(args: QueuesArgs) -> Result<(), Failure> {
    let queues = args.connection.client()?.list_queues().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&queues).expect("queues serialise")
        )?;
        return Ok(());
    }
    let width = queues
        .iter()
        .map(|q| q.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>10}  paused",
        "QUEUE", "READY", "DELAYED", "IN_FLIGHT", "DEAD"
    )?;
    for q in &queues {
        writeln!(
            out,
            "{:<width$}  {:>10}  {:>10}  {:>10}  {:>10}  {}",
            q.name,
            q.ready,
            q.delayed,
            q.in_flight,
            q.dead,
            if q.paused { "yes" } else { "no" }
        )?;
    }
    Ok(())
}

pub async fn one(args: QueueArgs) -> Result<(), Failure> {
    let queue = args.connection.client()?.get_queue(&args.queue).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&queue).expect("a queue serialises")
        )?;
    } else {
        write_queue(&mut out, &queue)?;
    }
    Ok(())
}

/// A queue as `name: value` lines, the counts then the settings.
fn write_queue(out: &mut impl Write, queue: &Queue) -> std::io::Result<()> {
    let as_json = serde_json::to_value(queue).expect("a queue serialises");
    for (key, value) in as_json.as_object().into_iter().flatten() {
        if key != "settings" {
            writeln!(out, "{key}: {value}")?;
        }
    }
    writeln!(out, "settings:")?;
    for (key, value) in as_json["settings"].as_object().into_iter().flatten() {
        writeln!(out, "  {key}: {value}")?;
    }
    Ok(())
}
