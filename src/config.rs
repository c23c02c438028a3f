//! Configuration: every setting is an environment variable and the flag of
//! the same name in kebab case; a flag wins over the variable. Values are
//! read as text and checked here, so a bad one is reported in one line that
//! names the variable, the value and what is allowed.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

use crate::wal::{FsyncPolicy, RecoveryMode};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The settings as given, before checking.
#[derive(Debug, Clone, Args)]
pub struct RawConfig {
    /// Directory holding the log, checkpoints and the lock file.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: String,
    /// Size at which a new log segment starts, in bytes (65536..=1073741824).
    #[arg(long, env = "WAL_SEGMENT_BYTES", default_value = "67108864")]
    pub wal_segment_bytes: String,
    /// When writes are made durable: always | interval:<ms> | never.
    #[arg(long, env = "WAL_FSYNC", default_value = "always")]
    pub wal_fsync: String,
    /// Recovery mode for damage that is not a torn tail: strict | skip-corrupt.
    #[arg(long, env = "RECOVER", default_value = "strict")]
    pub recover: String,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: json | pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

/// A setting with a value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {name}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable (and, in kebab case, the flag).
    pub name: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// `WAL_SEGMENT_BYTES`, default 64 MiB.
    pub wal_segment_bytes: u64,
    /// `WAL_FSYNC`, default `always`.
    pub wal_fsync: FsyncPolicy,
    /// `RECOVER` / `--recover`, default `strict`.
    pub recover: RecoveryMode,
    /// `LOG_LEVEL`, default `info`.
    pub log_level: String,
    /// `LOG_FORMAT`, default `json`.
    pub log_format: LogFormat,
}

impl RawConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        Ok(Config {
            data_dir: non_empty("DATA_DIR", &self.data_dir)?.into(),
            wal_segment_bytes: in_range(
                "WAL_SEGMENT_BYTES",
                &self.wal_segment_bytes,
                65_536..=1 << 30,
            )?,
            wal_fsync: parsed("WAL_FSYNC", &self.wal_fsync)?,
            recover: parsed("RECOVER", &self.recover)?,
            log_level: log_level(&self.log_level)?,
            log_format: match self.log_format.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => return Err(invalid("LOG_FORMAT", other, "expected json or pretty")),
            },
        })
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

fn log_level(value: &str) -> Result<String, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_string())
        .map_err(|e| {
            invalid(
                "LOG_LEVEL",
                value,
                format!("expected a level or tracing directives ({e})"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: RawConfig,
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["event-broker"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).config.validate()
    }

    #[test]
    fn defaults_are_those_of_the_design() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.wal_segment_bytes, 64 << 20);
        assert_eq!(c.wal_fsync, FsyncPolicy::Always);
        assert_eq!(c.recover, RecoveryMode::Strict);
        assert_eq!(c.log_format, LogFormat::Json);
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
    fn interval_policy_parses() {
        let c = parse(&["--wal-fsync", "interval:5"]).unwrap();
        assert_eq!(
            c.wal_fsync,
            FsyncPolicy::Interval(std::time::Duration::from_millis(5))
        );
    }
}
