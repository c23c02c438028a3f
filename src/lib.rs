//! event-broker's server: the HTTP API, the webhook workers, the
//! configuration, the metrics and the process around them (logging,
//! signals). It serves the broker of `event-broker-core` and reaches the
//! log only through it.
//!
//! The workspace, each crate depending only on those below it:
//!
//! ```text
//! event-broker (this crate)   the binary: serve, healthcheck, verify, and the
//!                             client commands (produce, consume, queues, queue,
//!                             dlq) and bench, which are clients of the API
//!   ├── event-broker-bench    the load generator, over its own lean HTTP/1.1
//!   │     └── event-broker-client
//!   ├── event-broker-client   the API's client: typed calls, the Consumer loop,
//!   │                         webhook verification. Knows the API, not the server.
//!   └── event-broker-core     queues, leases, retries, dead letters, groups, flow
//!         │                   control: a state machine applied from log records.
//!         │                   Knows queues, not HTTP.
//!         └── event-broker-wal  the segmented log: framing, group commit, recovery,
//!                             checkpoints. Knows bytes, not queues.
//! event-broker-clock          the one place time is read, used by all of them
//! ```
//!
//! Within this crate: `api` (the routes and their layers) and `worker` (webhook
//! delivery) call the broker; `config`, `metrics`, `shutdown`, `event_json`
//! and `log_*` serve them.

pub mod api;
pub mod config;
pub mod event_json;
pub mod log_format;
pub mod log_writer;
pub mod metrics;
pub mod shutdown;
pub mod tls;
pub mod worker;
