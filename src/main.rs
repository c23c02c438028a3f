//! The `event-broker` binary: parse the configuration, set up logging, open
//! the broker (recovering its log), then serve.

use std::hash::BuildHasher;
use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use event_broker::api::{self, ratelimit, AppParts, AppState};
use event_broker::config::{Config, ConfigError, LogFormat, RawAddr, RawConfig};
use event_broker::log_format::JsonLines;
use event_broker::log_writer::{buffered_stderr, FlushGuard};
use event_broker::metrics::Metrics;
use event_broker::shutdown;
use event_broker::tls::TlsConfig;
use event_broker::worker::WorkerPool;
use event_broker_bench::{self as bench, BenchArgs};
use event_broker_clock::{Clock, SystemClock};
use event_broker_core::WalOptions;
use event_broker_core::{inspect, Broker, BrokerOptions};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

mod cli;

// Many small allocations per request, across threads: mimalloc keeps them cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A durable event queue broker.
#[derive(Debug, Parser)]
#[command(
    name = "event-broker",
    version,
    about,
    // Settings before a subcommand belong to the default `serve`; given to
    // another command, they would be read by nothing, silently.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The settings of `serve`, for when no command is named.
    #[command(flatten, next_help_heading = "Options of serve (the default command)")]
    serve: RawConfig,
}

/// Each command reads only its own settings, from its flags and variables.
#[derive(Debug, Subcommand)]
enum Command {
    /// Recover the log in DATA_DIR and serve the HTTP API (the default command).
    Serve(Box<RawConfig>),
    /// Exit 0 when the broker on PORT answers ready, 1 otherwise (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// Check every frame of a log, read-only, and count its events per queue;
    /// exit 1 on damage. Safe on a data directory a broker is using.
    Verify {
        /// A data directory (holding wal/), a checkpoint (holding
        /// manifest.json), or an unpacked backup archive.
        #[arg(env = "DATA_DIR", default_value = "./data")]
        dir: PathBuf,
    },
    /// Drive a running broker over HTTP with a workload and report throughput and latency.
    Bench(BenchArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

/// The settings of `serve` that `healthcheck` reads: where the broker
/// listens, and whether it speaks TLS there.
#[derive(Debug, clap::Args)]
struct HealthcheckArgs {
    #[command(flatten)]
    addr: RawAddr,
    /// Set when the broker serves HTTPS (its TLS_CERT): the check then
    /// speaks TLS, without verifying the certificate, as it only asks this
    /// host's broker whether it is ready.
    #[arg(long, env = "TLS_CERT", hide_env_values = true)]
    tls_cert: Option<String>,
}

impl HealthcheckArgs {
    fn is_tls(&self) -> bool {
        self.tls_cert.as_deref().is_some_and(|c| !c.is_empty())
    }
}

/// Exit code of a setting that is not allowed, as for a usage error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve_command(&cli.serve),
        Some(Command::Serve(raw)) => serve_command(&raw),
        Some(Command::Healthcheck(args)) => match args.addr.validate() {
            Ok(addr) => tool(healthcheck(addr, args.is_tls())),
            Err(e) => refuse(&e),
        },
        Some(Command::Verify { dir }) => tool(verify(&dir)),
        Some(Command::Bench(args)) => run_bench(args),
        Some(Command::Client(command)) => cli::run(command),
    }
}

fn refuse(e: &ConfigError) -> ExitCode {
    eprintln!("event-broker: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// The daemon reports a failure once, in its log, where its other lines
/// go; on stderr only when the log would not show an error.
fn serve_command(raw: &RawConfig) -> ExitCode {
    let config = match raw.validate() {
        Ok(config) => config,
        Err(e) => return refuse(&e),
    };
    let _flush_logs_on_exit = init_tracing(&config);
    match serve(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if tracing::enabled!(tracing::Level::ERROR) => {
            tracing::error!(error = causes(&e), "event-broker stopped");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("event-broker: {}", causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// `healthcheck` and `verify` are tools run from a terminal or a script:
/// a failure is one plain line on stderr, and they log nothing.
fn tool(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("event-broker: {}", causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as `{:#}` writes them, but without
/// a cause whose text is shown already: the log's I/O errors name the OS
/// error in their own message and keep it as their source too.
fn causes(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn init_tracing(config: &Config) -> Option<FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let (writer, guard) = match buffered_stderr() {
        Ok((writer, guard)) => (BoxMakeWriter::new(writer), Some(guard)),
        Err(e) => {
            eprintln!("event-broker: logging unbuffered: no thread for the log writer: {e}");
            (BoxMakeWriter::new(std::io::stderr), None)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.event_format(JsonLines).init(),
        // Colour codes only for a person at a terminal, not in a file or a journal.
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    guard
}

fn serve(config: &Config) -> anyhow::Result<()> {
    check_data_dir(&config.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let wal = WalOptions {
        segment_bytes: config.wal_segment_bytes,
        fsync: config.wal_fsync,
        recovery: config.recover,
        observer: Some(metrics.clone()),
        ..WalOptions::new(&config.data_dir)
    };
    let mut limits = config.limits();
    limits.backoff.seed = std::hash::RandomState::new().hash_one(std::process::id());
    let options = BrokerOptions {
        wal,
        limits,
        clock: Arc::new(SystemClock),
    };
    let settings = config.summary();
    let fields: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone().into()))
        .collect();
    // Under `json.`, the JSON format writes it as an object, not a string.
    tracing::info!(json.config = %serde_json::Value::Object(fields), "starting");
    if config.is_open_beyond_this_host() {
        tracing::warn!(
            bind_addr = %config.bind_addr,
            "the API is open to anyone who can reach this address: set BROKER_TOKEN \
             (and ADMIN_TOKEN for the admin routes), or BIND_ADDR=127.0.0.1 to serve this host only"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.http_threads as usize)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Listen before recovering, so that readiness can answer "recovering"
    // while a large log is replayed.
    let tls = config
        .tls
        .as_ref()
        .map(TlsConfig::load)
        .transpose()
        .context("loading the TLS certificate")?;
    let addr = config.socket_addr();
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    listener.set_nonblocking(true)?;
    let recovered = CancellationToken::new();
    let early = runtime.spawn(serve_recovering(
        listener.try_clone()?,
        tls.clone(),
        recovered.clone(),
    ));
    let (broker, report) = Broker::open(options)
        .with_context(|| format!("opening the log in {}", config.data_dir.display()))?;
    recovered.cancel();
    runtime.block_on(early)??;
    let status = broker.log_status();
    tracing::info!(
        data_dir = %config.data_dir.display(),
        segments = report.wal.segments,
        records = report.records,
        bytes = status.bytes,
        torn_tail_bytes = report.wal.torn_tail.as_ref().map_or(0, |t| t.bytes),
        skipped_ranges = report.wal.skipped.len(),
        queues = report.queues,
        events = report.events,
        fsync = %status.fsync,
        "log recovered"
    );
    let broker = Arc::new(broker);
    let state = AppState::from(AppParts {
        broker: broker.clone(),
        shutdown: CancellationToken::new(),
        started: event_broker_clock::monotonic_now(),
        settings: Arc::new(settings),
        token: config.broker_token.as_ref().map(|t| Arc::from(t.expose())),
        admin_token: config.admin_token.as_ref().map(|t| Arc::from(t.expose())),
        origins: Arc::new(config.allowed_origins.clone()),
        metrics,
        limiter: config
            .enable_rate_limit
            .then(|| NonZeroU32::new(config.rate_limit_max))
            .flatten()
            .map(|max| Arc::new(ratelimit::limiter(max, config.rate_limit_window))),
    });
    runtime.block_on(run(config, state, listener, tls))?;
    drop(runtime);
    broker.close().context("flushing and closing the log")?;
    tracing::info!("stopped");
    Ok(())
}

/// A DATA_DIR that is a file, or inside one, would fail deep in the log's
/// setup with the bare "Not a directory" of the OS: name the path in the way.
fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    let found = dir
        .ancestors()
        .find_map(|path| Some((path, std::fs::metadata(path).ok()?)));
    match found {
        Some((path, meta)) if !meta.is_dir() && path == dir => {
            anyhow::bail!("DATA_DIR {} is a file, not a directory", dir.display())
        }
        Some((path, meta)) if !meta.is_dir() => anyhow::bail!(
            "DATA_DIR {}: {} is a file, not a directory",
            dir.display(),
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Serves until a signal, then shuts down in order: stop accepting, answer
/// long polls, let requests and webhook calls finish up to `SHUTDOWN_TIMEOUT_MS`,
/// stop the reaper.
async fn run(
    config: &Config,
    state: AppState,
    listener: std::net::TcpListener,
    tls: Option<TlsConfig>,
) -> anyhow::Result<()> {
    let shutdown = state.shutdown.clone();
    shutdown::cancel_on_signal(shutdown.clone()).context("installing signal handlers")?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "serving");
    if let Some(tls) = &tls {
        tokio::spawn(tls.clone().reload_until(shutdown.clone()));
    }
    let reaper = tokio::spawn(
        state
            .broker
            .clone()
            .run_reaper(config.reaper_interval, shutdown.clone()),
    );
    if let Some(limiter) = state.limiter.clone() {
        let every = ratelimit::sweep_interval(config.rate_limit_window);
        tokio::spawn(ratelimit::forget_idle_clients(
            limiter,
            every,
            shutdown.clone(),
        ));
    }
    let pool = WorkerPool::new(state.broker.clone(), Some(state.metrics.clone()))
        .context("starting the webhook client")?;
    let workers = tokio::spawn(pool.run(shutdown.clone()));
    // With each connection's address, for the request log and the rate limit.
    let app = api::ClientAddrs::new(api::router(state));
    let stop = shutdown.clone().cancelled_owned();
    let server = async move {
        match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
            Some(tls) => {
                axum::serve(tls.listen(listener)?, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        }
    };
    let drained = async {
        server.await.context("serving HTTP")?;
        workers.await.context("the webhook workers")
    };
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(config.shutdown_timeout).await;
    };
    tokio::select! {
        drained = drained => drained?,
        () = deadline => tracing::warn!(
            "shutdown timeout: closing the connections and webhook calls still open"
        ),
    }
    reaper.await.context("the reaper task")?;
    Ok(())
}

/// Answers on `listener` while the log is recovered: alive, not ready.
async fn serve_recovering(
    listener: std::net::TcpListener,
    tls: Option<TlsConfig>,
    recovered: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let stop = recovered.cancelled_owned();
    match tls {
        None => {
            axum::serve(listener, api::recovering_router())
                .with_graceful_shutdown(stop)
                .await
        }
        Some(tls) => {
            axum::serve(tls.listen(listener)?, api::recovering_router())
                .with_graceful_shutdown(stop)
                .await
        }
    }
    .context("serving HTTP while recovering")
}

fn healthcheck(addr: std::net::SocketAddr, tls: bool) -> anyhow::Result<()> {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    let url = format!(
        "{}://{}/api/health/ready",
        if tls { "https" } else { "http" },
        std::net::SocketAddr::new(host, addr.port())
    );
    // The certificate names the broker's public name, not this address.
    let answer = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .danger_accept_invalid_certs(tls)
        .build()?
        .get(&url)
        .send()
        .with_context(|| format!("asking {url}"))?;
    anyhow::ensure!(
        answer.status().is_success(),
        "{url} answered {}: {}",
        answer.status(),
        answer.text().unwrap_or_default()
    );
    println!("ready");
    Ok(())
}

/// A failed bench is reported on stderr only: it is a client run from a
/// terminal or a script, not a daemon whose log someone collects.
fn run_bench(args: BenchArgs) -> ExitCode {
    match bench::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("event-broker bench: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(dir.exists(), "{} does not exist", dir.display());
    let found = inspect(dir, SystemClock.unix_ms())
        .with_context(|| format!("verifying {}", dir.display()))?;
    print!("{found}");
    match found.first_damage() {
        None => Ok(()),
        Some((path, offset, defect)) => anyhow::bail!(
            "{} is damaged: {defect} at byte offset {offset} of {} ({} damaged range(s) in all)",
            dir.display(),
            path.display(),
            found.damage_count()
        ),
    }
}
