//! What stops a bench run, or fails it at its end. A failed request is not
//! among them: it is counted and the run goes on; these end the run, after
//! its summary once its timed phase has begun.

use std::time::Duration;

/// Why a bench run stopped or failed its check.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--url` is not an `http://host[:port]` address.
    #[error("invalid --url {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token holds characters that an HTTP header cannot carry.
    #[error("the token cannot be sent in an Authorization header")]
    Token,
    /// A connection to the broker could not be opened: it is not running,
    /// or not at that address.
    #[error("connecting to {addr}")]
    Connect {
        /// `host:port` of the broker.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange broke: the connection closed or reset, or the
    /// answer was not HTTP/1.1 framed by `Content-Length`. Within a run it is
    /// counted as a failed request; it ends the run only during setup.
    #[error("HTTP exchange with the broker")]
    Http(#[from] std::io::Error),
    /// A request was answered 429 for longer than the workload waits: the
    /// queue stays full because nothing drains it fast enough.
    #[error("{what}: the broker answered 429 for {waited:?}: {body}; raise the broker's QUEUE_MAX_SIZE or lower the load")]
    Throttled {
        /// The request.
        what: String,
        /// How long it was retried.
        waited: Duration,
        /// The last answer's body.
        body: String,
    },
    /// The broker's status route did not answer as an event-broker's does:
    /// `--url` names something else, or the token is missing or wrong.
    #[error("{url} does not answer as an event-broker: GET {path} answered {status}: {body}")]
    NotABroker {
        /// The broker's base URL as the bench uses it.
        url: String,
        /// The path asked for.
        path: String,
        /// The status of the answer.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The broker refuses the queue's name.
    #[error("the broker refuses the queue {queue:?}: {body}")]
    Queue {
        /// The name.
        queue: String,
        /// The broker's answer.
        body: String,
    },
    /// The run would put more events in the queue than the broker lets it
    /// hold, with nothing draining it until the run ends.
    #[error("{flag} {asked} is more than the broker's QUEUE_MAX_SIZE of {max}, and nothing consumes the queue before the run ends: lower {flag} or raise QUEUE_MAX_SIZE")]
    OverQueueMax {
        /// The flag that asks for the events.
        flag: &'static str,
        /// How many it asks for.
        asked: u64,
        /// The broker's `QUEUE_MAX_SIZE`.
        max: u64,
    },
    /// The same with the events spread over several queues: the largest
    /// share of one queue is over the limit.
    #[error("{flag} {asked} over {queues} queues puts {share} events in one, more than the broker's QUEUE_MAX_SIZE of {max}, and nothing consumes the queues before the run ends: lower {flag} or raise QUEUE_MAX_SIZE")]
    OverQueueMaxEach {
        /// The flag that asks for the events.
        flag: &'static str,
        /// How many it asks for in all.
        asked: u64,
        /// `--queues`.
        queues: u32,
        /// The largest share of one queue.
        share: u64,
        /// The broker's `QUEUE_MAX_SIZE`.
        max: u64,
    },
    /// `--queues` is more than the workers that would load or drain them.
    #[error("--queues {queues} needs at least {queues} {flag}, one for each queue; {workers} were asked for")]
    FewerWorkersThanQueues {
        /// The flag that sets the workers.
        flag: &'static str,
        /// How many it asks for.
        workers: u32,
        /// `--queues`.
        queues: u32,
    },
    /// Not one request of the run succeeded; the first few failures are
    /// printed as they happen.
    #[error("every request failed ({failed} in all; the first are shown above)")]
    AllFailed {
        /// Requests that failed.
        failed: u64,
    },
    /// The run was interrupted with Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// Filling the queue before a timed phase failed; the phase would
    /// measure the wrong thing.
    #[error("prefill: {failed} request(s) failed")]
    Prefill {
        /// Requests that failed.
        failed: u64,
    },
    /// Events were enqueued but never acknowledged back by the consumers.
    #[error("{missing} of {expected} events were never acked")]
    Missing {
        /// Events not acked.
        missing: u64,
        /// Events that should have been.
        expected: u64,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A worker task panicked.
    #[error("a bench task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The summary could not be written to standard output.
    #[error("writing the summary")]
    Output(#[source] std::io::Error),
}
