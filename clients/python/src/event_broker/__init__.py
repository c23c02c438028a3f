"""Python client of event-broker, a durable queue of events over HTTP.

- :class:`Client` and :class:`AsyncClient`: one method per operation of the
  HTTP API (``docs/API.md`` of the broker), named the snake_case of its
  OpenAPI operationId, with typed answers (:mod:`event_broker.models`) and
  typed errors (:mod:`event_broker.errors`).
- :class:`Consumer` (threads) and :class:`AsyncConsumer` (asyncio): lease,
  run a handler, ack or nack, keeping leases alive, ordering groups and
  shutting down cleanly.
- :mod:`event_broker.webhooks`: verify the signatures of webhook deliveries.

Example::

    from event_broker import Client

    with Client("http://127.0.0.1:3000") as broker:
        broker.enqueue("orders", {"order": 42}, idempotency_key="order-42")
        for event in broker.lease_events("orders", max=10, wait_ms=1000):
            broker.ack_events("orders", [event.receipt])
"""

from ._ops import UNSET
from .client import DEFAULT_URL, AsyncClient, Client
from .consumer import AsyncConsumer, Consumer, ConsumerStats
from .errors import (
    BadAnswer,
    BrokerError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidJson,
    InvalidRequest,
    LeaseLost,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    StorageFull,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from .models import (
    BrowsedEvent,
    BrowsePage,
    Checkpoint,
    DeadEvent,
    DeadLetterPage,
    Enqueued,
    EnqueuedBatch,
    EventState,
    Health,
    JsonValue,
    LeasedEvent,
    NewEvent,
    Queue,
    QueueSettings,
    ReceiptResult,
    ReceiptStatus,
    Results,
    Status,
    Subscription,
    WalStatus,
)
from .webhooks import WebhookVerificationError

__version__ = "0.1.0"

#: The result of an ack, nack or extend (another name of :class:`Results`).
SettleResult = Results

__all__ = [
    "UNSET",
    "DEFAULT_URL",
    "AsyncClient",
    "Client",
    "AsyncConsumer",
    "Consumer",
    "ConsumerStats",
    "BadAnswer",
    "BrokerError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "InvalidJson",
    "InvalidRequest",
    "LeaseLost",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "QueueFull",
    "RateLimited",
    "StorageFull",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "BrowsedEvent",
    "BrowsePage",
    "Checkpoint",
    "DeadEvent",
    "DeadLetterPage",
    "Enqueued",
    "EnqueuedBatch",
    "EventState",
    "Health",
    "JsonValue",
    "LeasedEvent",
    "NewEvent",
    "Queue",
    "QueueSettings",
    "ReceiptResult",
    "ReceiptStatus",
    "Results",
    "SettleResult",
    "Status",
    "Subscription",
    "WalStatus",
    "WebhookVerificationError",
    "__version__",
]
