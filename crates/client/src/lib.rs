//! An async client of event-broker's HTTP API (`docs/API.md`), on reqwest
//! with rustls and one connection pool per [`Client`].
//!
//! # Calls
//!
//! [`Client`] has one method per operation of the broker's OpenAPI
//! document, named after its `operationId` (`leaseEvents` is
//! [`Client::lease_events`]), taking and giving the types of [`types`].
//! Every error answer becomes [`Error::Api`] with the API's [`ErrorCode`],
//! the field the message names and the `Retry-After` asked for; a broker
//! that cannot be reached, a TLS failure, a timeout or an answer that does
//! not parse each have a variant of their own, so nothing from the HTTP
//! stack reaches the caller unnamed. Answers 429 and 503 are tried again
//! as the [`RetryPolicy`] says (twice by default, waiting what
//! `Retry-After` asks, at most 5 s).
//!
//! # Consuming
//!
//! [`Consumer`] is the loop every queue user needs: a bounded number of
//! handlers at once, leases extended while they run, ack on `Ok`, nack with
//! the error on `Err` or a panic, no two events of one group at once,
//! backoff when the broker is busy or down, and a shutdown that finishes
//! what runs and hands back the rest. Its module documentation is the
//! specification.
//!
//! # Webhooks
//!
//! [`WebhookVerifier`] checks, on the receiving side, the Standard
//! Webhooks signature and timestamp of a call the broker pushed.
//!
//! This crate knows the API and nothing of the server: it depends on no
//! other crate of the workspace.

mod backoff;
mod client;
mod consumer;
mod error;
mod ops;
mod settle;
mod token;
pub mod types;
mod webhook;

pub use client::{
    Client, ClientBuilder, RetryPolicy, DEFAULT_URL, ENV_CA, ENV_IDENTITY, ENV_TOKEN, ENV_URL,
};
pub use consumer::{shutdown_signal, Consumer, ConsumerOptions, ConsumerReport};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use token::Token;
pub use types::*;
pub use webhook::{WebhookError, WebhookVerifier, DEFAULT_TOLERANCE};
