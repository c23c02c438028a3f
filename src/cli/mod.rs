//! The client commands of the binary: `produce`, `consume`, `queues`,
//! `queue` and `dlq`, built on `event-broker-client` like any other program
//! would be. They reach the broker at `--url` only and share nothing with
//! the server but the binary.
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the broker refused (an error answer) or answered what the API does not |
//! | 2 | a usage error: a flag, a setting, or input that is not JSON |
//! | 3 | the broker could not be reached: down, a timeout, or TLS refused |

mod consume;
mod dlq;
mod produce;
mod progress;
mod queues;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use event_broker_client::{Client, Error};

pub use consume::ConsumeArgs;
pub use dlq::DlqArgs;
pub use produce::ProduceArgs;
pub use queues::{QueueArgs, QueuesArgs};

/// Where the broker is and how to reach it: the flags of every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The broker's base URL, http(s)://host[:port][/prefix].
    #[arg(long, env = "EVENT_BROKER_URL", default_value = event_broker_client::DEFAULT_URL)]
    pub url: String,
    /// Bearer token (the broker's BROKER_TOKEN or ADMIN_TOKEN).
    #[arg(long, env = "EVENT_BROKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the broker's certificate, for https.
    #[arg(long, env = "EVENT_BROKER_CA")]
    pub ca: Option<PathBuf>,
    /// PEM file of this client's certificate and key, for a broker that
    /// asks for one (TLS_CLIENT_CA).
    #[arg(long, env = "EVENT_BROKER_IDENTITY")]
    pub identity: Option<PathBuf>,
}

impl Connection {
    fn client(&self) -> Result<Client, Failure> {
        let mut builder = Client::builder().url(&self.url);
        if let Some(token) = &self.token {
            builder = builder.token(token.as_str());
        }
        if let Some(ca) = &self.ca {
            builder = builder.ca_file(ca);
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity_file(identity);
        }
        builder.build().map_err(Failure::from)
    }
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Enqueue one event (PAYLOAD), or JSON lines from stdin in batches.
    Produce(ProduceArgs),
    /// Lease events and print them as JSON lines, acking as it goes.
    Consume(ConsumeArgs),
    /// List the queues with their counts.
    Queues(QueuesArgs),
    /// Show one queue's counts and settings.
    Queue(QueueArgs),
    /// List a queue's dead letters, or redrive or purge them.
    Dlq(DlqArgs),
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// A usage error (2).
    Usage(String),
    /// A call that failed (1 or 3).
    Call(Error),
    /// Writing the output failed: a closed pipe ends the command quietly.
    Output(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(text) => Failure::Usage(text),
            e => Failure::Call(e),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Output(e)
    }
}

/// Runs a client command on a runtime of its own.
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("event-broker: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match command {
            ClientCommand::Produce(args) => produce::run(args).await,
            ClientCommand::Consume(args) => consume::run(args).await,
            ClientCommand::Queues(args) => queues::list(args).await,
            ClientCommand::Queue(args) => queues::one(args).await,
            ClientCommand::Dlq(args) => dlq::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(text)) => {
            eprintln!("event-broker: {text}");
            ExitCode::from(2)
        }
        Err(Failure::Call(e)) => {
            eprintln!("event-broker: {e}");
            match e {
                Error::Connect { .. } | Error::Timeout { .. } => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("event-broker: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A duration flag in milliseconds or with a unit (`500ms`, `20s`).
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_millis(ms));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}: give milliseconds or a duration such as 500ms or 20s"))
}
