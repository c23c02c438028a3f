//! event-broker: named queues of events in a segmented write-ahead log on
//! local disk, served over HTTP.
//!
//! Layers, each a module; calls only go down:
//!
//! ```text
//! main / cli      commands: serve (default), healthcheck, verify, bench
//! bench           a load generator: a client of the HTTP API over a socket,
//!                 like any other; it calls no layer below
//! worker          webhook push delivery: tasks that lease, POST, ack or nack
//! broker          queues, leases, retries, dead letters, idempotency, cleanup;
//!                 a state machine applied from log records. Knows queues, not HTTP.
//! wal             segmented log: framing, group commit, recovery, reads,
//!                 deletion of old segments, checkpoints. Knows bytes, not queues.
//! config, clock, metrics, shutdown, log_*   shared by the layers above
//! ```

pub mod api;
pub mod bench;
pub mod broker;
pub mod clock;
pub mod config;
pub mod event_json;
pub mod log_format;
pub mod log_throttle;
pub mod log_writer;
pub mod metrics;
pub mod shutdown;
pub mod wal;
pub mod worker;
