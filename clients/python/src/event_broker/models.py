"""Typed answers and request items of the API, as frozen dataclasses.

Design: each answer class has a ``from_json`` that reads the decoded JSON
strictly for the fields it needs (a missing field or one of the wrong type
raises :class:`~event_broker.errors.BadAnswer`) and ignores fields it does
not know, since the API only ever adds to its answers. Times become aware
:class:`datetime.datetime` objects in UTC. Payloads stay the decoded JSON
value (:data:`JsonValue`), handed back as the broker stored them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias, cast

from .errors import BadAnswer

__all__ = [
    "JsonValue",
    "NewEvent",
    "Enqueued",
    "EnqueuedBatch",
    "LeasedEvent",
    "ReceiptResult",
    "Results",
    "QueueSettings",
    "Queue",
    "DeadEvent",
    "DeadLetterPage",
    "BrowsedEvent",
    "BrowsePage",
    "Subscription",
    "Health",
    "WalStatus",
    "Status",
    "Checkpoint",
    "EventState",
    "ReceiptStatus",
]

#: Any value JSON can hold, as :func:`json.loads` decodes it (dict, list,
#: str, int, float, bool or None). Kept as ``Any`` so that payloads can be
#: indexed without casts.
JsonValue: TypeAlias = Any

#: The state of an event as browsing shows it.
EventState = Literal["ready", "delayed", "in_flight", "dead"]
#: What became of one receipt of an ack, nack or extend.
ReceiptStatus = Literal["ok", "lease_lost", "not_found"]

_EVENT_STATES: tuple[str, ...] = ("ready", "delayed", "in_flight", "dead")
_RECEIPT_STATUSES: tuple[str, ...] = ("ok", "lease_lost", "not_found")


# --- reading decoded JSON strictly -------------------------------------------


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadAnswer(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise BadAnswer(f"{what}: the field {key!r} is missing") from None


def _int(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = _get(obj, key, what)
    # bool is an int in Python, but never a number in the API.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadAnswer(f"{what}.{key}: expected a whole number, got {value!r}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    if obj.get(key) is None:
        return None
    return _int(obj, key, what)


def _float(obj: Mapping[str, Any], key: str, what: str) -> float:
    value = _get(obj, key, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadAnswer(f"{what}.{key}: expected a number, got {value!r}")
    return float(value)


def _bool(obj: Mapping[str, Any], key: str, what: str) -> bool:
    value = _get(obj, key, what)
    if not isinstance(value, bool):
        raise BadAnswer(f"{what}.{key}: expected true or false, got {value!r}")
    return value


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = _get(obj, key, what)
    if not isinstance(value, str):
        raise BadAnswer(f"{what}.{key}: expected a string, got {value!r}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    if obj.get(key) is None:
        return None
    return _str(obj, key, what)


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise BadAnswer(f"{what}: expected a time, got {value!r}")
    try:
        # Python 3.11 reads the "Z" suffix the broker writes.
        return datetime.fromisoformat(value)
    except ValueError:
        raise BadAnswer(f"{what}: not a time: {value!r}") from None


def _time(obj: Mapping[str, Any], key: str, what: str) -> datetime:
    return _parse_time(_get(obj, key, what), f"{what}.{key}")


def _opt_time(obj: Mapping[str, Any], key: str, what: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else _parse_time(value, f"{what}.{key}")


def _headers(obj: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadAnswer(f"{what}.{key}: expected an object of strings, got {value!r}")
    return dict(value)


def _list(obj: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = _get(obj, key, what)
    if not isinstance(value, list):
        raise BadAnswer(f"{what}.{key}: expected an array, got {value!r}")
    return value


def _choice(obj: Mapping[str, Any], key: str, what: str, allowed: tuple[str, ...]) -> str:
    value = _str(obj, key, what)
    if value not in allowed:
        raise BadAnswer(f"{what}.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


# --- requests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to enqueue; every field but ``payload`` is optional.

    Attributes:
        payload: any JSON value (``None`` is sent as JSON ``null``).
        delay_ms: not delivered before now plus this delay (0 to 30 days).
        priority: 0 to 255, higher first; default 0.
        group: the ordering group (1 to 128 characters).
        ttl_ms: expires this long after it is enqueued (1 ms to 30 days).
        headers: string values handed back with the event.
        idempotency_key: within the broker's idempotency window, another
            enqueue with this key stores nothing and answers this event's id.
    """

    payload: JsonValue
    delay_ms: int | None = None
    priority: int | None = None
    group: str | None = None
    ttl_ms: int | None = None
    headers: Mapping[str, str] | None = None
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as the API's ``EventIn`` object, without the fields left out."""
        body: dict[str, Any] = {"payload": self.payload}
        for key in ("delay_ms", "priority", "group", "ttl_ms", "idempotency_key"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.headers is not None:
            body["headers"] = dict(self.headers)
        return body


# --- answers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to one enqueued event.

    ``duplicate`` is true when the idempotency key named an earlier event:
    nothing was stored and ``id`` is that event's.
    """

    id: int
    duplicate: bool
    expires_at: datetime | None = None

    @classmethod
    def from_json(cls, value: Any) -> Enqueued:
        o = _obj(value, "enqueued")
        return cls(
            id=_int(o, "id", "enqueued"),
            duplicate=_bool(o, "duplicate", "enqueued"),
            expires_at=_opt_time(o, "expires_at", "enqueued"),
        )


@dataclass(frozen=True, slots=True)
class EnqueuedBatch:
    """The answer to a batch: ids in the order of the events, and the expiry of
    each (``None`` for those that do not expire)."""

    ids: list[int]
    expires_at: list[datetime | None]

    @classmethod
    def from_json(cls, value: Any) -> EnqueuedBatch:
        o = _obj(value, "batch")
        ids = _list(o, "ids", "batch")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise BadAnswer(f"batch.ids: expected whole numbers, got {ids!r}")
        raw = o.get("expires_at")
        # An answer in which no event expires has no expires_at at all.
        if raw is None:
            expires: list[datetime | None] = [None] * len(ids)
        elif isinstance(raw, list) and len(raw) == len(ids):
            expires = [None if t is None else _parse_time(t, "batch.expires_at") for t in raw]
        else:
            raise BadAnswer(f"batch.expires_at: expected {len(ids)} times, got {raw!r}")
        return cls(ids=list(ids), expires_at=expires)


@dataclass(frozen=True, slots=True)
class LeasedEvent:
    """An event handed out under a lease; ``receipt`` names the lease for ack,
    nack and extend. ``attempt`` counts deliveries, this one included."""

    id: int
    queue: str
    payload: JsonValue
    headers: dict[str, str]
    attempt: int
    priority: int
    group: str | None
    enqueued_at: datetime
    expires_at: datetime | None
    receipt: str
    lease_expires_at: datetime

    @classmethod
    def from_json(cls, value: Any) -> LeasedEvent:
        w = "leased event"
        o = _obj(value, w)
        return cls(
            id=_int(o, "id", w),
            queue=_str(o, "queue", w),
            payload=_get(o, "payload", w),
            headers=_headers(o, "headers", w),
            attempt=_int(o, "attempt", w),
            priority=_int(o, "priority", w),
            group=_opt_str(o, "group", w),
            enqueued_at=_time(o, "enqueued_at", w),
            expires_at=_opt_time(o, "expires_at", w),
            receipt=_str(o, "receipt", w),
            lease_expires_at=_time(o, "lease_expires_at", w),
        )

    @classmethod
    def list_from_json(cls, value: Any) -> list[LeasedEvent]:
        """The ``events`` of a lease answer."""
        return [cls.from_json(e) for e in _list(_obj(value, "lease"), "events", "lease")]


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """What became of one receipt: ``ok``, ``lease_lost`` or ``not_found``."""

    receipt: str
    status: ReceiptStatus

    @classmethod
    def from_json(cls, value: Any) -> ReceiptResult:
        o = _obj(value, "result")
        status = _choice(o, "status", "result", _RECEIPT_STATUSES)
        return cls(receipt=_str(o, "receipt", "result"), status=cast(ReceiptStatus, status))


@dataclass(frozen=True, slots=True)
class Results:
    """The answer to an ack, nack or extend: one result per receipt, in order."""

    results: list[ReceiptResult]

    @property
    def ok(self) -> bool:
        """Whether every receipt was ``ok``."""
        return all(r.status == "ok" for r in self.results)

    @property
    def failed(self) -> list[ReceiptResult]:
        """The results that are not ``ok``."""
        return [r for r in self.results if r.status != "ok"]

    @classmethod
    def from_json(cls, value: Any) -> Results:
        o = _obj(value, "results")
        return cls(results=[ReceiptResult.from_json(r) for r in _list(o, "results", "results")])


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's settings in force: its own, or the broker-wide one of the same
    name where it sets none. ``None`` for the TTL and flow limits means none."""

    visibility_timeout_ms: int
    max_retries: int
    base_backoff_ms: int
    max_backoff_ms: int
    backoff_multiplier: float
    max_size: int
    message_ttl_ms: int | None
    dead_letter_expired: bool
    paused: bool
    group_concurrency: int
    max_in_flight: int | None
    rate_limit_per_s: int | None
    rate_limit_burst: int | None
    group_rate_limit_per_s: int | None

    @classmethod
    def from_json(cls, value: Any) -> QueueSettings:
        w = "settings"
        o = _obj(value, w)
        return cls(
            visibility_timeout_ms=_int(o, "visibility_timeout_ms", w),
            max_retries=_int(o, "max_retries", w),
            base_backoff_ms=_int(o, "base_backoff_ms", w),
            max_backoff_ms=_int(o, "max_backoff_ms", w),
            backoff_multiplier=_float(o, "backoff_multiplier", w),
            max_size=_int(o, "max_size", w),
            message_ttl_ms=_opt_int(o, "message_ttl_ms", w),
            dead_letter_expired=_bool(o, "dead_letter_expired", w),
            paused=_bool(o, "paused", w),
            group_concurrency=_int(o, "group_concurrency", w),
            max_in_flight=_opt_int(o, "max_in_flight", w),
            rate_limit_per_s=_opt_int(o, "rate_limit_per_s", w),
            rate_limit_burst=_opt_int(o, "rate_limit_burst", w),
            group_rate_limit_per_s=_opt_int(o, "group_rate_limit_per_s", w),
        )


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue: its events in each state now, totals since the broker started,
    and its settings in force."""

    name: str
    ready: int
    delayed: int
    in_flight: int
    dead: int
    enqueued_total: int
    acked_total: int
    dead_lettered_total: int
    paused: bool
    settings: QueueSettings

    @classmethod
    def from_json(cls, value: Any) -> Queue:
        w = "queue"
        o = _obj(value, w)
        return cls(
            name=_str(o, "name", w),
            ready=_int(o, "ready", w),
            delayed=_int(o, "delayed", w),
            in_flight=_int(o, "in_flight", w),
            dead=_int(o, "dead", w),
            enqueued_total=_int(o, "enqueued_total", w),
            acked_total=_int(o, "acked_total", w),
            dead_lettered_total=_int(o, "dead_lettered_total", w),
            paused=_bool(o, "paused", w),
            settings=QueueSettings.from_json(_get(o, "settings", w)),
        )

    @classmethod
    def list_from_json(cls, value: Any) -> list[Queue]:
        """The ``queues`` of a listing."""
        return [cls.from_json(q) for q in _list(_obj(value, "queues"), "queues", "queues")]


@dataclass(frozen=True, slots=True)
class DeadEvent:
    """An event in a dead-letter queue; ``attempts`` counts its failed deliveries."""

    id: int
    payload: JsonValue
    headers: dict[str, str]
    attempts: int
    priority: int
    group: str | None
    last_error: str | None
    dead_at: datetime

    @classmethod
    def from_json(cls, value: Any) -> DeadEvent:
        w = "dead event"
        o = _obj(value, w)
        return cls(
            id=_int(o, "id", w),
            payload=_get(o, "payload", w),
            headers=_headers(o, "headers", w),
            attempts=_int(o, "attempts", w),
            priority=_int(o, "priority", w),
            group=_opt_str(o, "group", w),
            last_error=_opt_str(o, "last_error", w),
            dead_at=_time(o, "dead_at", w),
        )


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    """A page of a dead-letter queue; ``next`` is the ``after`` of the next
    page, ``None`` when the listing is complete."""

    events: list[DeadEvent]
    next: int | None

    @classmethod
    def from_json(cls, value: Any) -> DeadLetterPage:
        o = _obj(value, "dlq page")
        return cls(
            events=[DeadEvent.from_json(e) for e in _list(o, "events", "dlq page")],
            next=_opt_int(o, "next", "dlq page"),
        )


@dataclass(frozen=True, slots=True)
class BrowsedEvent:
    """An event as browsing shows it, without leasing it.

    ``visible_at`` is its lease's end while in flight and ``None`` when dead;
    ``has_payload`` is false when browsed with ``payload=False`` (then
    ``payload`` is ``None``, which a stored payload can also be).
    """

    id: int
    state: EventState
    attempt: int
    priority: int
    group: str | None
    enqueued_at: datetime
    visible_at: datetime | None
    expires_at: datetime | None
    last_error: str | None
    headers: dict[str, str]
    payload: JsonValue = None
    has_payload: bool = True

    @classmethod
    def from_json(cls, value: Any) -> BrowsedEvent:
        w = "event"
        o = _obj(value, w)
        return cls(
            id=_int(o, "id", w),
            state=cast(EventState, _choice(o, "state", w, _EVENT_STATES)),
            attempt=_int(o, "attempt", w),
            priority=_int(o, "priority", w),
            group=_opt_str(o, "group", w),
            enqueued_at=_time(o, "enqueued_at", w),
            visible_at=_opt_time(o, "visible_at", w),
            expires_at=_opt_time(o, "expires_at", w),
            last_error=_opt_str(o, "last_error", w),
            headers=_headers(o, "headers", w),
            payload=o.get("payload"),
            has_payload="payload" in o,
        )


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """A page of a browse; ``next`` is the ``after`` of the next page, ``None``
    when the listing is complete."""

    events: list[BrowsedEvent]
    next: int | None

    @classmethod
    def from_json(cls, value: Any) -> BrowsePage:
        o = _obj(value, "browse page")
        return cls(
            events=[BrowsedEvent.from_json(e) for e in _list(o, "events", "browse page")],
            next=_opt_int(o, "next", "browse page"),
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A queue's webhook subscription; the secret is never shown, ``signed``
    says whether there is one."""

    queue: str
    url: str
    concurrency: int
    timeout_ms: int
    signed: bool

    @classmethod
    def from_json(cls, value: Any) -> Subscription:
        w = "subscription"
        o = _obj(value, w)
        return cls(
            queue=_str(o, "queue", w),
            url=_str(o, "url", w),
            concurrency=_int(o, "concurrency", w),
            timeout_ms=_int(o, "timeout_ms", w),
            signed=_bool(o, "signed", w),
        )


@dataclass(frozen=True, slots=True)
class Health:
    """Liveness or readiness: ``status`` is ``ok``, ``ready`` or ``unavailable``
    (then ``reason`` says why)."""

    status: str
    reason: str | None = None

    @property
    def ready(self) -> bool:
        """Whether the broker is live (``ok``) or ready (``ready``)."""
        return self.status in ("ok", "ready")

    @classmethod
    def from_json(cls, value: Any) -> Health:
        o = _obj(value, "health")
        return cls(status=_str(o, "status", "health"), reason=_opt_str(o, "reason", "health"))


@dataclass(frozen=True, slots=True)
class WalStatus:
    """The write-ahead log's state; ``failure`` says why it refuses writes, if it does."""

    segments: int
    bytes: int
    oldest_segment: int
    fsync: str
    failure: str | None

    @classmethod
    def from_json(cls, value: Any) -> WalStatus:
        w = "wal"
        o = _obj(value, w)
        return cls(
            segments=_int(o, "segments", w),
            bytes=_int(o, "bytes", w),
            oldest_segment=_int(o, "oldest_segment", w),
            fsync=_str(o, "fsync", w),
            failure=_opt_str(o, "failure", w),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """The broker's version, uptime, queues, log, webhook workers and its
    effective configuration (each setting by its variable, without secrets)."""

    version: str
    uptime_seconds: int
    queues: list[Queue]
    wal: WalStatus
    workers: int
    config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> Status:
        w = "status"
        o = _obj(value, w)
        return cls(
            version=_str(o, "version", w),
            uptime_seconds=_int(o, "uptime_seconds", w),
            queues=[Queue.from_json(q) for q in _list(o, "queues", w)],
            wal=WalStatus.from_json(_get(o, "wal", w)),
            workers=_int(o, "workers", w),
            config=_headers(o, "config", w),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint made: its ``path`` relative to the broker's ``DATA_DIR``."""

    path: str
    segments: int
    bytes: int

    @classmethod
    def from_json(cls, value: Any) -> Checkpoint:
        w = "checkpoint"
        o = _obj(value, w)
        return cls(path=_str(o, "path", w), segments=_int(o, "segments", w), bytes=_int(o, "bytes", w))
