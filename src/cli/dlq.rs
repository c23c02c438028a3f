//! `dlq QUEUE`: the dead letters as JSON lines, or `--redrive` or `--purge`
//! of every one (or of `--id`s). A purge loses events for good, so it asks
//! first, on the terminal, unless `--yes`; with no terminal to ask on it
//! needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use event_broker_client::Selection;

use super::{Connection, Failure};

/// Flags of `dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The queue.
    pub queue: String,
    /// Put the dead letters back to ready, attempts reset.
    #[arg(long, conflicts_with = "purge")]
    pub redrive: bool,
    /// Delete the dead letters for good.
    #[arg(long)]
    pub purge: bool,
    /// Only these ids (with --redrive or --purge); may be repeated.
    #[arg(long = "id")]
    pub ids: Vec<u64>,
    /// Purge without asking.
    #[arg(long)]
    pub yes: bool,
    /// List at most this many.
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn run(args: DlqArgs) -> Result<(), Failure> {
    let client = args.connection.client()?;
    let which = if args.ids.is_empty() {
        Selection::All
    } else {
        Selection::Ids(args.ids.clone())
    };
    if args.redrive {
        let n = client.redrive_dead_letters(&args.queue, &which).await?;
        println!("{{\"redriven\":{n}}}");
        return Ok(());
    }
    if args.purge {
        if !args.yes {
            let dead = client.get_queue(&args.queue).await?.dead;
            let count = match &which {
                Selection::All => dead,
                Selection::Ids(ids) => ids.len() as u64,
            };
            confirm(&format!(
                "purge {count} dead letter(s) of queue {} for good?",
                args.queue
            ))?;
        }
        let n = client.purge_dead_letters(&args.queue, &which).await?;
        println!("{{\"purged\":{n}}}");
        return Ok(());
    }
    let mut after = None;
    let mut listed = 0u64;
    while listed < args.limit {
        let want = (args.limit - listed).min(1000) as u32;
        let page = client
            .list_dead_letters(&args.queue, Some(want), after)
            .await?;
        let mut out = std::io::stdout().lock();
        for event in &page.events {
            writeln!(
                out,
                "{}",
                serde_json::to_string(event).expect("an event serialises")
            )?;
        }
        listed += page.events.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// Asks `question` on the terminal; anything but y or yes declines.
fn confirm(question: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{question} Not asked, as stdin is not a terminal: add --yes"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::Usage("not purged".into()))
    }
}
