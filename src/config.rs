//! Configuration: every setting is an environment variable and the flag of
//! the same name in kebab case; a flag wins over the variable. Values are
//! read as text and checked here, so a bad one is reported in one line that
//! names the variable, the value and what is allowed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use event_broker_core::rules::{self, Whole};
use event_broker_core::{Backoff, Limits};
use event_broker_core::{FsyncPolicy, RecoveryMode};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// A value that must never reach a log: `Debug` prints `<redacted>`, and
/// there is no `Display`; [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the broker listens, as given: the settings of `serve` that
/// `healthcheck` reads too.
#[derive(Debug, Clone, Args)]
pub struct RawAddr {
    /// TCP port of the HTTP API: 1..=65535.
    #[arg(long, env = "PORT", default_value = "3000")]
    pub port: String,
    /// IP address the HTTP API listens on: any IPv4 or IPv6 address.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: String,
}

impl RawAddr {
    /// Checks both values: `BIND_ADDR` and `PORT` as a socket address.
    pub fn validate(&self) -> Result<SocketAddr, ConfigError> {
        Ok(SocketAddr::new(
            ip_addr("BIND_ADDR", &self.bind_addr)?,
            in_range("PORT", &self.port, 1..=65_535)?,
        ))
    }
}

/// The settings of `serve` as given, before checking. Each flag's help
/// names its variable and default once (clap adds `[env: ...]` and
/// `[default: ...]`), so the doc lines say only what the value means and
/// what is allowed.
#[derive(Debug, Clone, Args)]
pub struct RawConfig {
    /// Where the HTTP API listens.
    #[command(flatten)]
    pub addr: RawAddr,
    /// Directory holding the log, checkpoints and the lock file.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: String,
    /// Events not yet acked per queue: 1..=100000000.
    #[arg(long, env = "QUEUE_MAX_SIZE", default_value = "100000")]
    pub queue_max_size: String,
    /// Push-delivery workers: 1..=1024.
    #[arg(long, env = "WORKER_COUNT", default_value = "8")]
    pub worker_count: String,
    /// Threads that serve HTTP (and run webhook deliveries and the reaper):
    /// `auto` (one per core but one, at least 1) or 1..=1024.
    #[arg(long, env = "HTTP_THREADS", default_value = "auto")]
    pub http_threads: String,
    /// Lease length for a lease that names none, in ms: 1..=43200000.
    #[arg(long, env = "VISIBILITY_TIMEOUT_MS", default_value = "30000")]
    pub visibility_timeout_ms: String,
    /// Failures after the first before an event is dead: 0..=1000.
    #[arg(long, env = "MAX_RETRIES", default_value = "10")]
    pub max_retries: String,
    /// How often expired leases are reclaimed, in ms: 10..=3600000.
    #[arg(long, env = "REAPER_INTERVAL_MS", default_value = "1000")]
    pub reaper_interval_ms: String,
    /// Delay after the first failure, in ms: 0..=86400000.
    #[arg(long, env = "BASE_BACKOFF_MS", default_value = "1000")]
    pub base_backoff_ms: String,
    /// Cap on any retry delay, in ms: BASE_BACKOFF_MS..=86400000.
    #[arg(long, env = "MAX_BACKOFF_MS", default_value = "60000")]
    pub max_backoff_ms: String,
    /// Growth of the delay per failure: 1.0..=100.0.
    #[arg(long, env = "BACKOFF_MULTIPLIER", default_value = "2")]
    pub backoff_multiplier: String,
    /// Size at which a new log segment starts, in bytes: 65536..=1073741824.
    #[arg(long, env = "WAL_SEGMENT_BYTES", default_value = "67108864")]
    pub wal_segment_bytes: String,
    /// When writes are made durable: always | interval:<ms> | never.
    #[arg(long, env = "WAL_FSYNC", default_value = "always")]
    pub wal_fsync: String,
    /// Recovery mode for damage that is not a torn tail: strict | skip-corrupt.
    #[arg(long, env = "RECOVER", default_value = "strict")]
    pub recover: String,
    /// Largest event payload, in bytes: 1..=16777216.
    #[arg(long, env = "MAX_PAYLOAD_BYTES", default_value = "1048576")]
    pub max_payload_bytes: String,
    /// Events per enqueue or lease, receipts per ack: 1..=10000.
    #[arg(long, env = "MAX_BATCH", default_value = "1000")]
    pub max_batch: String,
    /// Largest request body in bytes, larger ones get 413: 65536..=1073741824
    /// and at least MAX_PAYLOAD_BYTES + 65536.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value = "67108864")]
    pub max_request_bytes: String,
    /// How long idempotency keys last, in ms: 0..=604800000.
    #[arg(long, env = "IDEMPOTENCY_WINDOW_MS", default_value = "300000")]
    pub idempotency_window_ms: String,
    /// Bearer token of the API; unset or empty means no auth: visible ASCII, no spaces.
    #[arg(long, env = "BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: Option<Secret>,
    /// Bearer token that alone opens the admin routes (checkpoint, DLQ purge
    /// and redrive, subscription changes) and opens every other route too;
    /// unset or empty means BROKER_TOKEN guards them: visible ASCII, no spaces.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// CORS origins; unset means no CORS: a comma list of * or http(s)://host[:port].
    #[arg(long, env = "ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Limit requests per client address: true | false.
    #[arg(long, env = "ENABLE_RATE_LIMIT", default_value = "false")]
    pub enable_rate_limit: String,
    /// Requests per window and client: 1..=1000000.
    #[arg(long, env = "RATE_LIMIT_MAX", default_value = "100")]
    pub rate_limit_max: String,
    /// Length of the rate-limit window, in ms: 1..=86400000.
    #[arg(long, env = "RATE_LIMIT_WINDOW_MS", default_value = "60000")]
    pub rate_limit_window_ms: String,
    /// Let webhooks reach loopback, private, link-local and other
    /// addresses that are not public: true | false.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value = "false")]
    pub webhook_allow_private: String,
    /// Grace for in-flight work on shutdown, in ms: 0..=600000.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value = "10000")]
    pub shutdown_timeout_ms: String,
    /// Log filter: a level (off, error, warn, info, debug, trace) or tracing
    /// directives that each end in a level (event_broker=debug,tower_http=warn).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: json | pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: String,
    /// PEM file of the certificate chain to serve HTTPS with, with TLS_KEY;
    /// unset, the API is plain HTTP. Reloaded when it changes.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<String>,
    /// PEM file of the CAs whose client certificates are accepted: set, every
    /// client must present one (mutual TLS).
    #[arg(long, env = "TLS_CLIENT_CA")]
    pub tls_client_ca: Option<String>,
    /// How often the TLS files are read again for a change, in ms: 100..=3600000.
    #[arg(long, env = "TLS_RELOAD_INTERVAL_MS", default_value = "10000")]
    pub tls_reload_interval_ms: String,
}

/// A setting with a value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {name}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable (and, in kebab case, the flag).
    pub name: &'static str,
    /// The value given (`<redacted>` for `BROKER_TOKEN` and `ADMIN_TOKEN`).
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT`, default 3000.
    pub port: u16,
    /// `BIND_ADDR`, default 0.0.0.0.
    pub bind_addr: IpAddr,
    /// `DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// `QUEUE_MAX_SIZE`, default 100000.
    pub queue_max_size: u64,
    /// `WORKER_COUNT`, default 8.
    pub worker_count: u32,
    /// `HTTP_THREADS`, default one per core but one (at least 1).
    pub http_threads: u32,
    /// `VISIBILITY_TIMEOUT_MS`, default 30 s.
    pub visibility_timeout: Duration,
    /// `MAX_RETRIES`, default 10.
    pub max_retries: u32,
    /// `REAPER_INTERVAL_MS`, default 1 s.
    pub reaper_interval: Duration,
    /// `BASE_BACKOFF_MS`, default 1000.
    pub base_backoff_ms: u64,
    /// `MAX_BACKOFF_MS`, default 60000; never below `base_backoff_ms`.
    pub max_backoff_ms: u64,
    /// `BACKOFF_MULTIPLIER`, default 2.
    pub backoff_multiplier: f64,
    /// `WAL_SEGMENT_BYTES`, default 64 MiB.
    pub wal_segment_bytes: u64,
    /// `WAL_FSYNC`, default `always`.
    pub wal_fsync: FsyncPolicy,
    /// `RECOVER` / `--recover`, default `strict`.
    pub recover: RecoveryMode,
    /// `MAX_PAYLOAD_BYTES`, default 1 MiB.
    pub max_payload_bytes: usize,
    /// `MAX_BATCH`, default 1000.
    pub max_batch: usize,
    /// `MAX_REQUEST_BYTES`, default 64 MiB; room for one largest payload at least.
    pub max_request_bytes: usize,
    /// `IDEMPOTENCY_WINDOW_MS`, default 300000.
    pub idempotency_window_ms: u64,
    /// `BROKER_TOKEN`, default none (no auth); an empty value is none.
    pub broker_token: Option<Secret>,
    /// `ADMIN_TOKEN`, default none (`BROKER_TOKEN` guards the admin routes
    /// too); an empty value is none; never the same as `BROKER_TOKEN`.
    pub admin_token: Option<Secret>,
    /// `ALLOWED_ORIGINS`, default empty (no CORS headers).
    pub allowed_origins: Vec<String>,
    /// `ENABLE_RATE_LIMIT`, default false.
    pub enable_rate_limit: bool,
    /// `RATE_LIMIT_MAX`, default 100.
    pub rate_limit_max: u32,
    /// `RATE_LIMIT_WINDOW_MS`, default 60 s.
    pub rate_limit_window: Duration,
    /// `WEBHOOK_ALLOW_PRIVATE`, default false: webhooks reach public addresses only.
    pub webhook_allow_private: bool,
    /// `SHUTDOWN_TIMEOUT_MS`, default 10 s.
    pub shutdown_timeout: Duration,
    /// `LOG_LEVEL`, default `info`.
    pub log_level: String,
    /// `LOG_FORMAT`, default `json`.
    pub log_format: LogFormat,
    /// `TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`, `TLS_RELOAD_INTERVAL_MS`:
    /// HTTPS when set, plain HTTP when not.
    pub tls: Option<TlsFiles>,
    /// `TLS_RELOAD_INTERVAL_MS`, default 10 s, also when TLS is off.
    pub tls_reload_interval: Duration,
}

/// The files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `TLS_CERT`: the certificate chain, PEM.
    pub cert: PathBuf,
    /// `TLS_KEY`: its private key, PEM.
    pub key: PathBuf,
    /// `TLS_CLIENT_CA`: the CAs of client certificates, when clients must present one.
    pub client_ca: Option<PathBuf>,
    /// `TLS_RELOAD_INTERVAL_MS`, default 10 s.
    pub reload_interval: Duration,
}

const DAY_MS: u64 = 86_400_000;

/// Bytes of a request beyond its largest payload: the least
/// `MAX_REQUEST_BYTES` may exceed `MAX_PAYLOAD_BYTES` by.
const REQUEST_ROOM: usize = 64 << 10;

impl RawConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let base_backoff_ms = in_range(
            "BASE_BACKOFF_MS",
            &self.base_backoff_ms,
            range(rules::BACKOFF_MS),
        )?;
        let max_backoff_ms = in_range(
            "MAX_BACKOFF_MS",
            &self.max_backoff_ms,
            range(rules::BACKOFF_MS),
        )?;
        if max_backoff_ms < base_backoff_ms {
            return Err(invalid(
                "MAX_BACKOFF_MS",
                &self.max_backoff_ms,
                format!("must be at least BASE_BACKOFF_MS ({base_backoff_ms})"),
            ));
        }
        let max_payload_bytes =
            in_range("MAX_PAYLOAD_BYTES", &self.max_payload_bytes, 1..=16 << 20)?;
        let max_request_bytes = in_range(
            "MAX_REQUEST_BYTES",
            &self.max_request_bytes,
            REQUEST_ROOM..=1 << 30,
        )?;
        // A request must fit the largest payload the broker takes, with the
        // JSON around it (field names, headers, an idempotency key).
        if max_request_bytes < max_payload_bytes + REQUEST_ROOM {
            return Err(invalid(
                "MAX_REQUEST_BYTES",
                &self.max_request_bytes,
                format!(
                    "must be at least MAX_PAYLOAD_BYTES + {REQUEST_ROOM} ({})",
                    max_payload_bytes + REQUEST_ROOM
                ),
            ));
        }
        let addr = self.addr.validate()?;
        let broker_token = token("BROKER_TOKEN", self.broker_token.as_ref(), "no auth")?;
        let admin_token = token("ADMIN_TOKEN", self.admin_token.as_ref(), "none")?;
        if admin_token.is_some() && admin_token == broker_token {
            return Err(invalid(
                "ADMIN_TOKEN",
                "<redacted>",
                "must differ from BROKER_TOKEN, or every producer could use the admin routes",
            ));
        }
        Ok(Config {
            port: addr.port(),
            bind_addr: addr.ip(),
            data_dir: non_empty("DATA_DIR", &self.data_dir)?.into(),
            queue_max_size: in_range(
                "QUEUE_MAX_SIZE",
                &self.queue_max_size,
                range(rules::QUEUE_MAX_SIZE),
            )?,
            worker_count: in_range("WORKER_COUNT", &self.worker_count, 1..=1024)?,
            http_threads: http_threads(&self.http_threads)?,
            visibility_timeout: millis(
                "VISIBILITY_TIMEOUT_MS",
                &self.visibility_timeout_ms,
                range(rules::VISIBILITY_TIMEOUT_MS),
            )?,
            max_retries: in_range(
                "MAX_RETRIES",
                &self.max_retries,
                rules::MAX_RETRIES.min as u32..=rules::MAX_RETRIES.max as u32,
            )?,
            reaper_interval: millis(
                "REAPER_INTERVAL_MS",
                &self.reaper_interval_ms,
                10..=3_600_000,
            )?,
            base_backoff_ms,
            max_backoff_ms,
            backoff_multiplier: float_in_range(
                "BACKOFF_MULTIPLIER",
                &self.backoff_multiplier,
                rules::BACKOFF_MULTIPLIER.min..=rules::BACKOFF_MULTIPLIER.max,
            )?,
            wal_segment_bytes: in_range(
                "WAL_SEGMENT_BYTES",
                &self.wal_segment_bytes,
                65_536..=1 << 30,
            )?,
            wal_fsync: parsed("WAL_FSYNC", &self.wal_fsync)?,
            recover: parsed("RECOVER", &self.recover)?,
            max_payload_bytes,
            max_batch: in_range("MAX_BATCH", &self.max_batch, 1..=10_000)?,
            max_request_bytes,
            idempotency_window_ms: in_range(
                "IDEMPOTENCY_WINDOW_MS",
                &self.idempotency_window_ms,
                0..=7 * DAY_MS,
            )?,
            broker_token,
            admin_token,
            allowed_origins: allowed_origins(self.allowed_origins.as_deref())?,
            enable_rate_limit: boolean("ENABLE_RATE_LIMIT", &self.enable_rate_limit)?,
            rate_limit_max: in_range("RATE_LIMIT_MAX", &self.rate_limit_max, 1..=1_000_000)?,
            rate_limit_window: millis(
                "RATE_LIMIT_WINDOW_MS",
                &self.rate_limit_window_ms,
                1..=DAY_MS,
            )?,
            webhook_allow_private: boolean("WEBHOOK_ALLOW_PRIVATE", &self.webhook_allow_private)?,
            shutdown_timeout: millis(
                "SHUTDOWN_TIMEOUT_MS",
                &self.shutdown_timeout_ms,
                0..=600_000,
            )?,
            log_level: log_level(&self.log_level)?,
            log_format: match self.log_format.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => return Err(invalid("LOG_FORMAT", other, "expected json or pretty")),
            },
            tls: self.tls()?,
            tls_reload_interval: millis(
                "TLS_RELOAD_INTERVAL_MS",
                &self.tls_reload_interval_ms,
                100..=3_600_000,
            )?,
        })
    }
}

impl RawConfig {
    /// The TLS files: both of TLS_CERT and TLS_KEY, or neither; an empty
    /// value is unset.
    fn tls(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let path = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(PathBuf::from);
        let (cert, key, client_ca) = (
            path(&self.tls_cert),
            path(&self.tls_key),
            path(&self.tls_client_ca),
        );
        let reload_interval = millis(
            "TLS_RELOAD_INTERVAL_MS",
            &self.tls_reload_interval_ms,
            100..=3_600_000,
        )?;
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
                reload_interval,
            })),
            (Some(_), None) => Err(invalid(
                "TLS_KEY",
                "",
                "must be set with TLS_CERT: the certificate's private key",
            )),
            (None, Some(_)) => Err(invalid(
                "TLS_CERT",
                "",
                "must be set with TLS_KEY: the certificate chain",
            )),
            (None, None) => match client_ca {
                Some(ca) => Err(invalid(
                    "TLS_CLIENT_CA",
                    &ca.display().to_string(),
                    "needs TLS_CERT and TLS_KEY: client certificates are asked for over TLS only",
                )),
                None => Ok(None),
            },
        }
    }
}

impl Config {
    /// The broker's limits and timings. The backoff seed is 0: the caller
    /// sets a random one.
    pub fn limits(&self) -> Limits {
        Limits {
            queue_max_size: self.queue_max_size,
            visibility_timeout: self.visibility_timeout,
            max_retries: self.max_retries,
            backoff: Backoff {
                base_ms: self.base_backoff_ms,
                max_ms: self.max_backoff_ms,
                multiplier: self.backoff_multiplier,
                seed: 0,
            },
            max_payload_bytes: self.max_payload_bytes,
            max_batch: self.max_batch,
            idempotency_window_ms: self.idempotency_window_ms,
            worker_count: self.worker_count,
            max_request_bytes: self.max_request_bytes,
            webhook_allow_private: self.webhook_allow_private,
        }
    }

    /// Where the HTTP API listens: `BIND_ADDR` and `PORT`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.port)
    }

    /// Whether anyone who can reach the port may use the API without a
    /// token: it listens beyond this host and `BROKER_TOKEN` is unset. That
    /// is the development default, so startup warns of it rather than refuse.
    pub fn is_open_beyond_this_host(&self) -> bool {
        // `::ffff:127.0.0.1` is loopback too, which `Ipv6Addr` alone does not say.
        self.broker_token.is_none() && !self.bind_addr.to_canonical().is_loopback()
    }

    /// Every setting's variable and effective value, for the startup log.
    /// `BROKER_TOKEN` and `ADMIN_TOKEN` show as `set` or `unset`, never their values.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let set = |token: &Option<Secret>| if token.is_some() { "set" } else { "unset" };
        let recover = match self.recover {
            RecoveryMode::Strict => "strict",
            RecoveryMode::SkipCorrupt => "skip-corrupt",
        };
        let log_format = match self.log_format {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        };
        // A path, not a secret: empty when unset.
        let tls_path = |which: fn(&TlsFiles) -> Option<&PathBuf>| {
            self.tls
                .as_ref()
                .and_then(which)
                .map_or(String::new(), |p| p.display().to_string())
        };
        vec![
            ("PORT", self.port.to_string()),
            ("BIND_ADDR", self.bind_addr.to_string()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            ("QUEUE_MAX_SIZE", self.queue_max_size.to_string()),
            ("WORKER_COUNT", self.worker_count.to_string()),
            ("HTTP_THREADS", self.http_threads.to_string()),
            ("VISIBILITY_TIMEOUT_MS", ms(self.visibility_timeout)),
            ("MAX_RETRIES", self.max_retries.to_string()),
            ("REAPER_INTERVAL_MS", ms(self.reaper_interval)),
            ("BASE_BACKOFF_MS", self.base_backoff_ms.to_string()),
            ("MAX_BACKOFF_MS", self.max_backoff_ms.to_string()),
            ("BACKOFF_MULTIPLIER", self.backoff_multiplier.to_string()),
            ("WAL_SEGMENT_BYTES", self.wal_segment_bytes.to_string()),
            ("WAL_FSYNC", self.wal_fsync.to_string()),
            ("RECOVER", recover.to_string()),
            ("MAX_PAYLOAD_BYTES", self.max_payload_bytes.to_string()),
            ("MAX_BATCH", self.max_batch.to_string()),
            ("MAX_REQUEST_BYTES", self.max_request_bytes.to_string()),
            (
                "IDEMPOTENCY_WINDOW_MS",
                self.idempotency_window_ms.to_string(),
            ),
            ("BROKER_TOKEN", set(&self.broker_token).to_string()),
            ("ADMIN_TOKEN", set(&self.admin_token).to_string()),
            ("ALLOWED_ORIGINS", self.allowed_origins.join(",")),
            ("ENABLE_RATE_LIMIT", self.enable_rate_limit.to_string()),
            ("RATE_LIMIT_MAX", self.rate_limit_max.to_string()),
            ("RATE_LIMIT_WINDOW_MS", ms(self.rate_limit_window)),
            (
                "WEBHOOK_ALLOW_PRIVATE",
                self.webhook_allow_private.to_string(),
            ),
            ("SHUTDOWN_TIMEOUT_MS", ms(self.shutdown_timeout)),
            ("LOG_LEVEL", self.log_level.clone()),
            ("LOG_FORMAT", log_format.to_string()),
            ("TLS_CERT", tls_path(|t| Some(&t.cert))),
            ("TLS_KEY", tls_path(|t| Some(&t.key))),
            ("TLS_CLIENT_CA", tls_path(|t| t.client_ca.as_ref())),
            ("TLS_RELOAD_INTERVAL_MS", ms(self.tls_reload_interval)),
        ]
    }
}

fn invalid(name: &'static str, value: &str, allowed: impl fmt::Display) -> ConfigError {
    ConfigError {
        name,
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn non_empty<'a>(name: &'static str, value: &'a str) -> Result<&'a str, ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(name, value, "must not be empty"));
    }
    Ok(value)
}

fn parsed<T: FromStr<Err = String>>(name: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|allowed| invalid(name, value, allowed))
}

/// One thread per core but one, which stays for the log writer: measured on
/// two cores with the bench client beside the broker, one HTTP thread
/// instead of two served 9–22% more single-event requests with 16–22% less
/// broker CPU each, and 7–34% fewer leased and acked events.
fn auto_http_threads() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, 1024) as u32
}

/// `HTTP_THREADS`: `auto` or a count.
fn http_threads(value: &str) -> Result<u32, ConfigError> {
    const NAME: &str = "HTTP_THREADS";
    if value.trim() == "auto" {
        return Ok(auto_http_threads());
    }
    in_range(NAME, value, 1..=1024).map_err(|_| {
        invalid(
            NAME,
            value,
            "expected auto or a whole number from 1 to 1024",
        )
    })
}

/// The values a rule of the broker allows, which a queue's settings of
/// the same name allow too.
fn range(rule: Whole) -> std::ops::RangeInclusive<u64> {
    rule.min..=rule.max
}

fn in_range<T>(
    name: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let allowed = || {
        format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        )
    };
    match value.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(name, value, allowed())),
    }
}

/// A whole number of milliseconds in `range`, as a duration.
fn millis(
    name: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    in_range(name, value, range).map(Duration::from_millis)
}

fn float_in_range(
    name: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && range.contains(&x) => Ok(x),
        _ => Err(invalid(
            name,
            value,
            format!(
                "expected a number from {:.1} to {:.1}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn boolean(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

fn ip_addr(name: &'static str, value: &str) -> Result<IpAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        invalid(
            name,
            value,
            "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::",
        )
    })
}

/// Unset or empty means none (`empty_means` says what that is). A token must
/// be one HTTP token: visible ASCII without spaces. Errors never show the value.
fn token(
    name: &'static str,
    value: Option<&Secret>,
    empty_means: &str,
) -> Result<Option<Secret>, ConfigError> {
    match value {
        None => Ok(None),
        Some(token) if token.expose().is_empty() => Ok(None),
        Some(token) if token.expose().bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(token.clone()))
        }
        Some(_) => Err(invalid(
            name,
            "<redacted>",
            format!("expected visible ASCII characters without spaces, or empty for {empty_means}"),
        )),
    }
}

/// Unset or empty means no CORS. Otherwise a comma list of `*` or
/// `http(s)://host[:port]` (what browsers send as `Origin`: no path).
fn allowed_origins(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            if is_origin(entry) {
                Ok(entry.to_string())
            } else {
                Err(invalid(
                    "ALLOWED_ORIGINS",
                    value,
                    format!(
                        "entry {entry:?}: expected a comma list of * or origins \
                         http://host[:port] or https://host[:port], without path or empty entries"
                    ),
                ))
            }
        })
        .collect()
}

fn is_origin(entry: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let host = entry
        .strip_prefix("https://")
        .or_else(|| entry.strip_prefix("http://"));
    matches!(host, Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
}

/// `LOG_LEVEL`: what `EnvFilter` takes, but every directive must end in a
/// level. `EnvFilter` reads a bare word that is not a level (`warning`,
/// `loud`) as a target to log at every level, which leaves the broker's own
/// lines out: a typo would silence the log instead of being reported.
fn log_level(value: &str) -> Result<String, ConfigError> {
    let refused = |why: String| {
        invalid(
            "LOG_LEVEL",
            value,
            format!(
                "expected a level (off, error, warn, info, debug, trace) or comma-separated \
                 directives that each end in one, such as event_broker=debug,tower_http=warn{why}"
            ),
        )
    };
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(refused(String::new()));
    }
    if let Some(bad) = directives.iter().find(|d| !ends_in_level(d)) {
        return Err(refused(format!("; {bad:?} names no level")));
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_string())
        .map_err(|e| refused(format!(" ({e})")))
}

/// `info`, `event_broker=debug`, `event_broker[request]=trace`.
fn ends_in_level(directive: &str) -> bool {
    let level = match directive.rsplit_once('=') {
        Some((target, level)) if !target.is_empty() => level,
        Some(_) => return false,
        None => directive,
    };
    level
        .trim()
        .parse::<tracing_subscriber::filter::LevelFilter>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: RawConfig,
    }

    const TOKEN: &str = "s3cr3t-T0ken-do-not-log";

    /// Parses flags only: the environment variables are taken off every
    /// argument, so the process environment cannot change the outcome.
    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["event-broker"];
        argv.extend_from_slice(args);
        let matches = Cli::command()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(argv)
            .expect("flags parse");
        let raw = Cli::from_arg_matches(&matches).expect("flags parse");
        raw.config.validate()
    }

    /// Parses settings given by variable name: `("MAX_BATCH", "7")` is
    /// passed as `--max-batch=7`.
    fn with(settings: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let flags: Vec<String> = settings
            .iter()
            .map(|(name, value)| format!("--{}={value}", name.to_lowercase().replace('_', "-")))
            .collect();
        parse(&flags.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn rejected(settings: &[(&str, &str)]) -> ConfigError {
        match with(settings) {
            Ok(c) => panic!("{settings:?} was accepted: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_are_those_of_the_design() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.bind_addr, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.queue_max_size, 100_000);
        assert_eq!(c.worker_count, 8);
        assert_eq!(c.http_threads, auto_http_threads());
        assert_eq!(c.visibility_timeout, Duration::from_millis(30_000));
        assert_eq!(c.max_retries, 10);
        assert_eq!(c.reaper_interval, Duration::from_millis(1_000));
        assert_eq!(c.base_backoff_ms, 1_000);
        assert_eq!(c.max_backoff_ms, 60_000);
        assert_eq!(c.backoff_multiplier, 2.0);
        assert_eq!(c.wal_segment_bytes, 64 << 20);
        assert_eq!(c.wal_fsync, FsyncPolicy::Always);
        assert_eq!(c.recover, RecoveryMode::Strict);
        assert_eq!(c.max_payload_bytes, 1 << 20);
        assert_eq!(c.max_batch, 1_000);
        assert_eq!(c.max_request_bytes, 64 << 20);
        assert_eq!(c.idempotency_window_ms, 300_000);
        assert_eq!(c.broker_token, None);
        assert_eq!(c.admin_token, None);
        assert!(c.allowed_origins.is_empty());
        assert!(!c.enable_rate_limit);
        assert_eq!(c.rate_limit_max, 100);
        assert_eq!(c.rate_limit_window, Duration::from_millis(60_000));
        assert_eq!(c.shutdown_timeout, Duration::from_millis(10_000));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.socket_addr(), "0.0.0.0:3000".parse().unwrap());
    }

    #[test]
    fn bad_value_names_variable_value_and_what_is_allowed() {
        let err = parse(&["--wal-fsync", "sometimes"]).unwrap_err();
        assert_eq!(err.name, "WAL_FSYNC");
        assert_eq!(
            err.to_string(),
            "invalid WAL_FSYNC=\"sometimes\": expected always, never or interval:<ms> with 1 <= ms <= 60000"
        );
        let err = parse(&["--wal-segment-bytes", "12"]).unwrap_err();
        assert_eq!(err.name, "WAL_SEGMENT_BYTES");
        assert!(err.allowed.contains("65536"), "{}", err.allowed);
    }

    #[test]
    fn http_threads_are_auto_or_a_count() {
        assert_eq!(with(&[("HTTP_THREADS", "3")]).unwrap().http_threads, 3);
        for value in ["0", "1025", "many"] {
            let err = rejected(&[("HTTP_THREADS", value)]);
            assert_eq!(err.name, "HTTP_THREADS");
            assert_eq!(
                err.allowed,
                "expected auto or a whole number from 1 to 1024"
            );
        }
    }

    #[test]
    fn an_integer_out_of_range_or_not_a_number_names_its_variable_and_the_range() {
        let cases = [
            ("PORT", "0", "1 to 65535"),
            ("PORT", "65536", "1 to 65535"),
            ("PORT", "http", "1 to 65535"),
            ("QUEUE_MAX_SIZE", "0", "1 to 100000000"),
            ("WORKER_COUNT", "1025", "1 to 1024"),
            ("WORKER_COUNT", "-1", "1 to 1024"),
            ("VISIBILITY_TIMEOUT_MS", "0", "1 to 43200000"),
            ("MAX_RETRIES", "1001", "0 to 1000"),
            ("REAPER_INTERVAL_MS", "9", "10 to 3600000"),
            ("BASE_BACKOFF_MS", "1.5", "0 to 86400000"),
            ("MAX_BACKOFF_MS", "86400001", "0 to 86400000"),
            ("MAX_PAYLOAD_BYTES", "16777217", "1 to 16777216"),
            ("MAX_BATCH", "10001", "1 to 10000"),
            ("IDEMPOTENCY_WINDOW_MS", "604800001", "0 to 604800000"),
            ("RATE_LIMIT_MAX", "0", "1 to 1000000"),
            ("RATE_LIMIT_WINDOW_MS", "", "1 to 86400000"),
            ("SHUTDOWN_TIMEOUT_MS", "600001", "0 to 600000"),
        ];
        for (name, value, range) in cases {
            let err = rejected(&[(name, value)]);
            assert_eq!((err.name, err.value.as_str()), (name, value));
            assert_eq!(err.allowed, format!("expected a whole number from {range}"));
        }
    }

    #[test]
    fn range_bounds_are_accepted() {
        let c = with(&[
            ("PORT", "65535"),
            ("MAX_RETRIES", "0"),
            ("REAPER_INTERVAL_MS", "10"),
            ("BASE_BACKOFF_MS", "0"),
            ("MAX_BACKOFF_MS", "0"),
            ("BACKOFF_MULTIPLIER", "100"),
            ("MAX_PAYLOAD_BYTES", "16777216"),
            ("SHUTDOWN_TIMEOUT_MS", "0"),
        ])
        .unwrap();
        assert_eq!(c.port, 65535);
        assert_eq!(c.max_retries, 0);
        assert_eq!(c.reaper_interval, Duration::from_millis(10));
        assert_eq!((c.base_backoff_ms, c.max_backoff_ms), (0, 0));
        assert_eq!(c.backoff_multiplier, 100.0);
        assert_eq!(c.max_payload_bytes, 16 << 20);
        assert_eq!(c.shutdown_timeout, Duration::ZERO);
    }

    #[test]
    fn the_request_limit_leaves_room_for_the_largest_payload() {
        let err = rejected(&[("MAX_REQUEST_BYTES", "65535")]);
        assert_eq!(err.name, "MAX_REQUEST_BYTES");
        assert_eq!(
            err.allowed,
            "expected a whole number from 65536 to 1073741824"
        );
        let err = rejected(&[
            ("MAX_PAYLOAD_BYTES", "1048576"),
            ("MAX_REQUEST_BYTES", "1048576"),
        ]);
        assert_eq!(err.name, "MAX_REQUEST_BYTES");
        assert_eq!(
            err.allowed,
            "must be at least MAX_PAYLOAD_BYTES + 65536 (1114112)"
        );
        let c = with(&[
            ("MAX_PAYLOAD_BYTES", "1000"),
            ("MAX_REQUEST_BYTES", "66536"),
        ])
        .unwrap();
        assert_eq!(c.limits().max_request_bytes, 66_536);
    }

    #[test]
    fn a_bad_bind_address_is_reported() {
        for value in ["localhost", "0.0.0.0:3000", "256.0.0.1", ""] {
            let err = rejected(&[("BIND_ADDR", value)]);
            assert_eq!(err.name, "BIND_ADDR");
            assert!(err.allowed.contains("IP address"), "{}", err.allowed);
        }
        let c = with(&[("BIND_ADDR", "::1"), ("PORT", "8080")]).unwrap();
        assert_eq!(c.socket_addr(), "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn a_bad_bool_is_reported() {
        for value in ["yes", "1", "TRUE", ""] {
            let err = rejected(&[("ENABLE_RATE_LIMIT", value)]);
            assert_eq!(err.name, "ENABLE_RATE_LIMIT");
            assert_eq!(err.allowed, "expected true or false");
        }
        assert!(
            with(&[("ENABLE_RATE_LIMIT", "true")])
                .unwrap()
                .enable_rate_limit
        );
    }

    #[test]
    fn webhooks_reach_private_addresses_only_when_allowed() {
        assert!(!parse(&[]).unwrap().limits().webhook_allow_private);
        let allowed = with(&[("WEBHOOK_ALLOW_PRIVATE", "true")]).unwrap();
        assert!(allowed.limits().webhook_allow_private);
        let err = rejected(&[("WEBHOOK_ALLOW_PRIVATE", "yes")]);
        assert_eq!(err.name, "WEBHOOK_ALLOW_PRIVATE");
    }

    #[test]
    fn a_bad_multiplier_is_reported() {
        for value in ["0.5", "100.5", "NaN", "inf", "two", ""] {
            let err = rejected(&[("BACKOFF_MULTIPLIER", value)]);
            assert_eq!(err.name, "BACKOFF_MULTIPLIER");
            assert_eq!(err.allowed, "expected a number from 1.0 to 100.0");
        }
        let c = with(&[("BACKOFF_MULTIPLIER", "1.5")]).unwrap();
        assert_eq!(c.backoff_multiplier, 1.5);
    }

    #[test]
    fn max_backoff_below_base_backoff_is_reported_on_max_backoff() {
        let err = rejected(&[("BASE_BACKOFF_MS", "5000"), ("MAX_BACKOFF_MS", "4999")]);
        assert_eq!((err.name, err.value.as_str()), ("MAX_BACKOFF_MS", "4999"));
        assert_eq!(err.allowed, "must be at least BASE_BACKOFF_MS (5000)");
        let c = with(&[("BASE_BACKOFF_MS", "5000"), ("MAX_BACKOFF_MS", "5000")]).unwrap();
        assert_eq!((c.base_backoff_ms, c.max_backoff_ms), (5000, 5000));
    }

    #[test]
    fn origins_are_trimmed_and_checked() {
        let list = " https://app.example.com , http://localhost:5173,*";
        let c = with(&[("ALLOWED_ORIGINS", list)]).unwrap();
        let expected = ["https://app.example.com", "http://localhost:5173", "*"];
        assert_eq!(c.allowed_origins, expected);
        let c = with(&[("ALLOWED_ORIGINS", " ")]).unwrap();
        assert!(c.allowed_origins.is_empty());
        for (value, entry) in [
            ("example.com", "example.com"),
            ("https://a.com,,https://b.com", ""),
            ("https://a.com,", ""),
            ("https://a.com/", "https://a.com/"),
            ("ftp://a.com", "ftp://a.com"),
            ("https://", "https://"),
            ("**", "**"),
        ] {
            let err = rejected(&[("ALLOWED_ORIGINS", value)]);
            assert_eq!((err.name, err.value.as_str()), ("ALLOWED_ORIGINS", value));
            let start = format!("entry {entry:?}: expected");
            assert!(err.allowed.starts_with(&start), "{}", err.allowed);
            assert!(
                err.allowed.contains("https://host[:port]"),
                "{}",
                err.allowed
            );
        }
    }

    #[test]
    fn an_empty_token_means_no_auth() {
        assert_eq!(with(&[("BROKER_TOKEN", "")]).unwrap().broker_token, None);
        let c = with(&[("BROKER_TOKEN", TOKEN)]).unwrap();
        assert_eq!(c.broker_token.as_ref().map(Secret::expose), Some(TOKEN));
    }

    #[test]
    fn the_token_never_shows_in_debug_summary_errors_or_help() {
        let c = with(&[("BROKER_TOKEN", TOKEN)]).unwrap();
        for debug in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!debug.contains(TOKEN), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
        }
        let summary = c.summary();
        assert!(summary.iter().all(|(_, value)| !value.contains(TOKEN)));
        assert!(summary.contains(&("BROKER_TOKEN", "set".to_string())));
        let unset = parse(&[]).unwrap().summary();
        assert!(unset.contains(&("BROKER_TOKEN", "unset".to_string())));

        let err = rejected(&[("BROKER_TOKEN", &format!("{TOKEN} with spaces"))]);
        assert_eq!(err.name, "BROKER_TOKEN");
        assert!(!err.to_string().contains(TOKEN), "{err}");

        let raw = Cli::try_parse_from(["event-broker", "--broker-token", TOKEN]).unwrap();
        assert!(!format!("{:?}", raw.config).contains(TOKEN));
        let command = Cli::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == "broker_token");
        assert!(
            arg.unwrap().is_hide_env_values_set(),
            "--help would show it"
        );
    }

    #[test]
    fn the_admin_token_has_the_rules_of_the_broker_token_and_never_shows() {
        assert_eq!(with(&[("ADMIN_TOKEN", "")]).unwrap().admin_token, None);
        let c = with(&[("ADMIN_TOKEN", TOKEN)]).unwrap();
        assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some(TOKEN));
        assert!(!format!("{c:?}").contains(TOKEN));
        let summary = c.summary();
        assert!(summary.iter().all(|(_, value)| !value.contains(TOKEN)));
        assert!(summary.contains(&("ADMIN_TOKEN", "set".to_string())));
        assert!(summary.contains(&("BROKER_TOKEN", "unset".to_string())));

        let err = rejected(&[("ADMIN_TOKEN", &format!("{TOKEN}\t"))]);
        assert_eq!(
            (err.name, err.value.as_str()),
            ("ADMIN_TOKEN", "<redacted>")
        );
        assert!(
            err.allowed.ends_with("or empty for none"),
            "{}",
            err.allowed
        );
        let command = Cli::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == "admin_token");
        assert!(
            arg.unwrap().is_hide_env_values_set(),
            "--help would show it"
        );
    }

    #[test]
    fn an_admin_token_equal_to_the_broker_token_is_refused() {
        let err = rejected(&[("BROKER_TOKEN", TOKEN), ("ADMIN_TOKEN", TOKEN)]);
        assert_eq!(
            (err.name, err.value.as_str()),
            ("ADMIN_TOKEN", "<redacted>")
        );
        assert!(!err.to_string().contains(TOKEN), "{err}");
        let c = with(&[("BROKER_TOKEN", TOKEN), ("ADMIN_TOKEN", "other")]).unwrap();
        assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("other"));
    }

    #[test]
    fn only_a_non_loopback_address_without_broker_token_is_open_beyond_this_host() {
        let open = |settings: &[(&str, &str)]| with(settings).unwrap().is_open_beyond_this_host();
        assert!(open(&[]), "the default 0.0.0.0");
        assert!(open(&[("BIND_ADDR", "::")]));
        assert!(open(&[("BIND_ADDR", "192.168.1.10")]));
        // The admin routes are guarded then, but producers and consumers are not.
        assert!(open(&[("ADMIN_TOKEN", TOKEN)]));
        assert!(!open(&[("BROKER_TOKEN", TOKEN)]));
        for loopback in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(!open(&[("BIND_ADDR", loopback)]), "{loopback}");
        }
    }

    #[test]
    fn summary_names_every_setting_once_with_its_value() {
        let c = with(&[("ALLOWED_ORIGINS", "https://a.com,*"), ("PORT", "8080")]).unwrap();
        let summary = c.summary();
        let mut names: Vec<&str> = summary.iter().map(|(name, _)| *name).collect();
        let command = Cli::command();
        let mut variables: Vec<&str> = command
            .get_arguments()
            .filter_map(|a| a.get_env()?.to_str())
            .collect();
        names.sort_unstable();
        variables.sort_unstable();
        assert_eq!(names, variables);
        let value = |name| &summary.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(value("PORT"), "8080");
        assert_eq!(value("ALLOWED_ORIGINS"), "https://a.com,*");
        assert_eq!(value("VISIBILITY_TIMEOUT_MS"), "30000");
        assert_eq!(value("BACKOFF_MULTIPLIER"), "2");
        assert_eq!(value("WAL_FSYNC"), "always");
        assert_eq!(value("RECOVER"), "strict");
        assert_eq!(value("LOG_FORMAT"), "json");
    }

    #[test]
    fn limits_carry_the_broker_settings() {
        let defaults = parse(&[]).unwrap().limits();
        let expected = Limits::default();
        assert_eq!(defaults.queue_max_size, expected.queue_max_size);
        assert_eq!(defaults.visibility_timeout, expected.visibility_timeout);
        assert_eq!(defaults.max_retries, expected.max_retries);
        assert_eq!(defaults.backoff, expected.backoff);
        assert_eq!(defaults.max_payload_bytes, expected.max_payload_bytes);
        assert_eq!(defaults.max_batch, expected.max_batch);
        assert_eq!(
            defaults.idempotency_window_ms,
            expected.idempotency_window_ms
        );
        assert_eq!(defaults.worker_count, expected.worker_count);
        assert_eq!(defaults.max_request_bytes, expected.max_request_bytes);

        let limits = with(&[
            ("QUEUE_MAX_SIZE", "42"),
            ("VISIBILITY_TIMEOUT_MS", "1500"),
            ("MAX_RETRIES", "3"),
            ("BASE_BACKOFF_MS", "250"),
            ("MAX_BACKOFF_MS", "9000"),
            ("BACKOFF_MULTIPLIER", "1.5"),
            ("MAX_PAYLOAD_BYTES", "4096"),
            ("MAX_BATCH", "7"),
            ("IDEMPOTENCY_WINDOW_MS", "0"),
        ])
        .unwrap()
        .limits();
        assert_eq!(limits.queue_max_size, 42);
        assert_eq!(limits.visibility_timeout, Duration::from_millis(1500));
        assert_eq!(limits.max_retries, 3);
        let backoff = Backoff {
            base_ms: 250,
            max_ms: 9000,
            multiplier: 1.5,
            seed: 0,
        };
        assert_eq!(limits.backoff, backoff);
        assert_eq!(limits.max_payload_bytes, 4096);
        assert_eq!(limits.max_batch, 7);
        assert_eq!(limits.idempotency_window_ms, 0);
    }

    #[test]
    fn a_log_level_that_names_no_level_is_refused() {
        let cases = [
            ("warning", "\"warning\" names no level"),
            ("loud", "\"loud\" names no level"),
            ("event_broker=loud", "\"event_broker=loud\" names no level"),
            ("=debug", "\"=debug\" names no level"),
            ("info,verbose", "\"verbose\" names no level"),
            (" , ", "such as event_broker=debug,tower_http=warn"),
        ];
        for (value, why) in cases {
            let err = rejected(&[("LOG_LEVEL", value)]);
            assert_eq!((err.name, err.value.as_str()), ("LOG_LEVEL", value));
            assert!(
                err.allowed
                    .starts_with("expected a level (off, error, warn, info, debug, trace)"),
                "{}",
                err.allowed
            );
            assert!(err.allowed.ends_with(why), "{value}: {}", err.allowed);
        }
        for value in [
            "info",
            "WARN",
            "off",
            "event_broker=debug,tower_http=warn",
            "warn,event_broker::api=trace",
        ] {
            assert_eq!(with(&[("LOG_LEVEL", value)]).unwrap().log_level, value);
        }
    }

    #[test]
    fn interval_policy_parses() {
        let c = parse(&["--wal-fsync", "interval:5"]).unwrap();
        assert_eq!(
            c.wal_fsync,
            FsyncPolicy::Interval(std::time::Duration::from_millis(5))
        );
    }
}
