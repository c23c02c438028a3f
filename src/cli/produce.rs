//! `produce QUEUE [PAYLOAD]`: one event given as an argument, or one event
//! per line of stdin (each line a JSON payload), sent in batches.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use event_broker_client::{Client, NewEvent};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::progress::Progress;
use super::{duration, Connection, Failure};

/// Flags of `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The queue.
    pub queue: String,
    /// The payload, JSON; without it, one payload per line of stdin.
    pub payload: Option<String>,
    /// Deliver no sooner than this from now (ms, or 30s, 5m).
    #[arg(long, value_parser = duration)]
    pub delay: Option<Duration>,
    /// Priority, 0 to 255.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Ordering group.
    #[arg(long)]
    pub group: Option<String>,
    /// Time to live (ms, or 1h).
    #[arg(long, value_parser = duration)]
    pub ttl: Option<Duration>,
    /// A header, NAME=VALUE; may be repeated.
    #[arg(long = "header", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// Idempotency key (with PAYLOAD only).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Events per request when reading stdin, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    #[command(flatten)]
    pub connection: Connection,
}

fn header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_owned(), value.to_owned()))
}

impl ProduceArgs {
    fn event(&self, payload: &str) -> Result<NewEvent, String> {
        let mut event = NewEvent::json(payload).map_err(|e| e.to_string())?;
        event.delay_ms = self.delay.map(|d| d.as_millis() as u64);
        event.priority = self.priority;
        event.group = self.group.clone();
        event.ttl_ms = self.ttl.map(|d| d.as_millis() as u64);
        for (name, value) in &self.headers {
            event = event.header(name, value);
        }
        Ok(event)
    }
}

pub async fn run(args: ProduceArgs) -> Result<(), Failure> {
    let client = args.connection.client()?;
    let mut out = std::io::stdout().lock();
    if let Some(payload) = &args.payload {
        let mut event = args.event(payload).map_err(Failure::Usage)?;
        event.idempotency_key = args.idempotency_key.clone();
        let answer = client.enqueue(&args.queue, &event).await?;
        writeln!(
            out,
            "{}",
            serde_json::to_string(&answer).expect("an answer serialises")
        )?;
        return Ok(());
    }
    if args.idempotency_key.is_some() {
        return Err(Failure::Usage(
            "--idempotency-key: only with one PAYLOAD, not with stdin".into(),
        ));
    }
    drop(out);
    from_stdin(&client, &args).await
}

async fn from_stdin(client: &Client, args: &ProduceArgs) -> Result<(), Failure> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut progress = Progress::new("events produced");
    let mut batch = Vec::with_capacity(usize::from(args.batch));
    let mut number = 0u64;
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
        if let Some(line) = &line {
            number += 1;
            if !line.trim().is_empty() {
                let event = args
                    .event(line)
                    .map_err(|e| Failure::Usage(format!("stdin line {number}: {e}")))?;
                batch.push(event);
            }
        }
        if batch.len() == usize::from(args.batch) || (line.is_none() && !batch.is_empty()) {
            let answer = client.enqueue_events(&args.queue, &batch).await?;
            let mut out = std::io::stdout().lock();
            for id in &answer.ids {
                writeln!(out, "{{\"id\":{id}}}")?;
            }
            out.flush()?;
            progress.add(batch.len() as u64);
            batch.clear();
        }
        if line.is_none() {
            break;
        }
    }
    progress.finish();
    Ok(())
}
