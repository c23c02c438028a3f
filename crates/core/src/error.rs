//! Errors of the broker layer. The HTTP layer maps each variant to one row
//! of the error table in API.md.

use std::sync::Arc;

use super::record::DecodeError;
use event_broker_wal::WalError;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A request field is out of range or malformed; `field` names it as the API does.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `queue` or `events[3].idempotency_key`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// One payload is over `MAX_PAYLOAD_BYTES`.
    #[error("{field}: payload of {len} bytes is over the limit of {max} bytes")]
    PayloadTooLarge {
        /// The payload's field, e.g. `events[2].payload`.
        field: String,
        /// Its size.
        len: usize,
        /// `MAX_PAYLOAD_BYTES`.
        max: usize,
    },
    /// The queue would hold more events not yet acked than its `max_size`
    /// (`QUEUE_MAX_SIZE` unless it sets its own).
    #[error("queue {queue} is full: {pending} events pending, {adding} more would pass the limit of {max}")]
    QueueFull {
        /// The queue.
        queue: String,
        /// Events it holds that count against the limit.
        pending: u64,
        /// Events the request would add.
        adding: u64,
        /// The queue's `max_size`.
        max: u64,
    },
    /// A batch holds more new events than the queue's `max_size`: unlike a
    /// full queue, waiting cannot help, so it is not worth a retry.
    #[error("events: a batch of {adding} new events can never be stored, as the queue holds at most {max} (its max_size, QUEUE_MAX_SIZE unless set); send at most {max} per request")]
    BatchOverQueueSize {
        /// New events in the batch (duplicates by idempotency key left out).
        adding: u64,
        /// The queue's `max_size`.
        max: u64,
    },
    /// The queue does not exist.
    #[error("queue {0} does not exist")]
    UnknownQueue(String),
    /// The queue holds no live event of this id.
    #[error("queue {queue} has no event {id}")]
    UnknownEvent {
        /// The queue.
        queue: String,
        /// The id asked for.
        id: u64,
    },
    /// The event is being acked, nacked, expired, redriven, purged or
    /// cancelled: a cancel would race that write.
    #[error("event {id} of queue {queue} is being changed; try again")]
    EventBusy {
        /// The queue.
        queue: String,
        /// The event.
        id: u64,
    },
    /// An event of the queue is being changed, or the queue is being
    /// deleted: a deletion would race that write.
    #[error("queue {0} has a change being written; try again")]
    QueueBusy(String),
    /// The log refused or failed the write; nothing of the request was stored.
    #[error(transparent)]
    Storage(#[from] WalError),
    /// The log failed earlier and refuses writes until restarted.
    #[error("storage failed earlier and refuses writes until restart: {0}")]
    StorageFailed(Arc<WalError>),
    /// A record in the log could not be read back.
    #[error("record at segment {segment} offset {offset}: {source}")]
    BadRecord {
        /// First sequence number of the segment.
        segment: u64,
        /// Frame offset in it.
        offset: u64,
        /// What was wrong.
        source: DecodeError,
    },
    /// The broker is closed.
    #[error("the broker is shut down")]
    Closed,
}

impl BrokerError {
    /// A field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        BrokerError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The disk is full: the request can be retried once space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, BrokerError::Storage(e) if e.is_disk_full())
    }

    /// The broker cannot take writes now (failed log or shutting down).
    pub fn is_unavailable(&self) -> bool {
        match self {
            BrokerError::Storage(e) => !e.is_disk_full(),
            BrokerError::StorageFailed(_) | BrokerError::Closed => true,
            _ => false,
        }
    }
}
