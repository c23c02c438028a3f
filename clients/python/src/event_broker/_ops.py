"""The API's operations as data, shared by the sync and the async client.

Design: each of the 27 operations is a function here that builds a
:class:`Call` (method, path, query, JSON body, and how to read the answer).
:class:`~event_broker.Client` and :class:`~event_broker.AsyncClient` only
send a ``Call`` and hand its ``parse`` the answer, so the two clients cannot
drift apart: what a request looks like and what an answer means is written
once, here. This module also turns answers that are not 2xx into the
exceptions of :mod:`event_broker.errors`, and decides what may be retried.
"""

from __future__ import annotations

import email.utils
import enum
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import ERRORS_BY_CODE, BadAnswer, BrokerError, LeaseLost, QueueFull, RateLimited, Unavailable
from .models import (
    BrowsedEvent,
    BrowsePage,
    Checkpoint,
    DeadLetterPage,
    Enqueued,
    EnqueuedBatch,
    EventState,
    Health,
    LeasedEvent,
    NewEvent,
    Queue,
    Results,
    Status,
    Subscription,
)

T = TypeVar("T")


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: A field of :meth:`~event_broker.Client.patch_queue_settings` left out:
#: it keeps its value. ``None`` is sent as JSON ``null``, which names no
#: limit (or no TTL) for the fields that take one.
UNSET: Final = _Unset.UNSET

#: The longest a request waits for its answer beyond a long poll's own wait.
DEFAULT_TIMEOUT: Final = 30.0

_NO_BODY: Final = object()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request of the API and the reading of its answer.

    ``path`` is relative to the ``/api`` base; ``body`` is JSON-encoded
    unless it is ``_NO_BODY``; ``wait_s`` is how long the broker may hold
    the request on purpose (a long poll), added to the client's timeout.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = _NO_BODY
    params: Mapping[str, str] | None = None
    wait_s: float = 0.0

    def content(self) -> bytes | None:
        """The body as JSON text, compact and UTF-8, or ``None`` for no body.

        NaN and infinities are refused here (``ValueError``), as JSON has
        none; a value JSON cannot hold raises ``TypeError``.
        """
        if self.body is _NO_BODY:
            return None
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --- answers -----------------------------------------------------------------------


def _snippet(response: httpx.Response) -> str:
    text = response.content[:200].decode("utf-8", "replace")
    return text if len(response.content) <= 200 else text + "..."


def retry_after_of(response: httpx.Response) -> float | None:
    """The seconds of a ``Retry-After`` header (seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_of(response: httpx.Response) -> BrokerError:
    """The exception an answer that is not 2xx stands for."""
    status = response.status_code
    retry_after = retry_after_of(response)
    try:
        body = json.loads(response.content)
        error = body["error"]
        code = error["code"]
        message = error["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        return BadAnswer(
            f"{status} answer without the API's error body: {_snippet(response)!r}",
            status=status,
            retry_after=retry_after,
        )
    cls = ERRORS_BY_CODE.get(code, BrokerError)
    if cls is LeaseLost:
        try:
            results = Results.from_json(body).results
        except BadAnswer:
            results = []
        return LeaseLost(message, status=status, code=code, retry_after=retry_after, results=results)
    return cls(message, status=status, code=code, retry_after=retry_after)


def decode_json(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; :class:`BadAnswer` when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadAnswer(
            f"{response.status_code} answer is not JSON ({e}): {_snippet(response)!r}",
            status=response.status_code,
        ) from e


def check(response: httpx.Response) -> None:
    """Raise the error of an answer that is not 2xx."""
    if not response.is_success:
        raise error_of(response)


def _reader(from_json: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        check(response)
        value = decode_json(response)
        try:
            return from_json(value)
        except BadAnswer as e:
            e.status = response.status_code
            raise
    return parse


def _no_content(response: httpx.Response) -> None:
    check(response)


def _text(response: httpx.Response) -> str:
    check(response)
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadAnswer(f"the answer is not UTF-8 text: {e}", status=response.status_code) from e


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadAnswer(f"expected a JSON object, got {type(value).__name__}")
    return value


def _count(key: str) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        n = _object(value).get(key)
        if isinstance(n, bool) or not isinstance(n, int):
            raise BadAnswer(f"expected a whole number {key!r}, got {n!r}")
        return n
    return read


def _readiness(response: httpx.Response) -> Health:
    # Readiness answers 503 with a health body, not an error body, while the
    # broker recovers, shuts down or refuses writes: that is an answer.
    if response.status_code == 503:
        try:
            health = Health.from_json(json.loads(response.content))
        except (ValueError, BadAnswer):
            raise error_of(response) from None
        return health
    return _reader(Health.from_json)(response)


# --- retries ------------------------------------------------------------------------


def is_retryable(error: BrokerError) -> bool:
    """Whether a retry may succeed: 429 (rate limited, queue full) and 503."""
    return isinstance(error, (RateLimited, QueueFull, Unavailable))


def backoff_delay(attempt: int, retry_after: float | None, cap: float = 5.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): the answer's
    ``Retry-After`` when it had one, else exponential from 0.1 s with jitter,
    capped at ``cap``."""
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, 0.1 * (2.0**attempt))
    return random.uniform(ceiling / 2, ceiling)


# --- the operations -------------------------------------------------------------------


def _segment(value: str) -> str:
    """A path segment, percent-encoded; "." and ".." (valid queue names) are
    encoded too, or URL normalisation would remove them."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _queue(queue: str, *rest: str) -> str:
    return "/".join(["/queues", _segment(queue), *rest])


def _some(**fields: Any) -> dict[str, Any]:
    """The fields that are not ``None``: ``null`` means the same as absent."""
    return {k: v for k, v in fields.items() if v is not None}


def health() -> Call[Health]:
    return Call("GET", "/health", _reader(Health.from_json))


def ready() -> Call[Health]:
    return Call("GET", "/health/ready", _readiness)


def status() -> Call[Status]:
    return Call("GET", "/status", _reader(Status.from_json))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _text)


def openapi() -> Call[dict[str, Any]]:
    return Call("GET", "/openapi.json", _reader(_object))


def openapi30() -> Call[dict[str, Any]]:
    return Call("GET", "/openapi-3.0.json", _reader(_object))


def create_checkpoint(name: str | None) -> Call[Checkpoint]:
    return Call("POST", "/admin/checkpoint", _reader(Checkpoint.from_json), body=_some(name=name))


def list_queues() -> Call[list[Queue]]:
    return Call("GET", "/queues", _reader(Queue.list_from_json))


def get_queue(queue: str) -> Call[Queue]:
    return Call("GET", _queue(queue), _reader(Queue.from_json))


SETTINGS_FIELDS: Final = (
    "visibility_timeout_ms",
    "max_retries",
    "base_backoff_ms",
    "max_backoff_ms",
    "backoff_multiplier",
    "max_size",
    "message_ttl_ms",
    "dead_letter_expired",
    "paused",
    "group_concurrency",
    "max_in_flight",
    "rate_limit_per_s",
    "rate_limit_burst",
    "group_rate_limit_per_s",
)


def put_queue_settings(queue: str, settings: Mapping[str, Any]) -> Call[Queue]:
    # A PUT replaces the settings whole: a field left out or None takes the
    # broker-wide setting, so None is simply not sent.
    return Call("PUT", _queue(queue), _reader(Queue.from_json), body=_some(**settings))


def patch_queue_settings(queue: str, settings: Mapping[str, Any]) -> Call[Queue]:
    # A PATCH keeps what it does not name: UNSET is not sent, None is sent as
    # null (no TTL, no limit, or a group concurrency of 1).
    body = {k: v for k, v in settings.items() if v is not UNSET}
    return Call("PATCH", _queue(queue), _reader(Queue.from_json), body=body)


def delete_queue(queue: str) -> Call[None]:
    return Call("DELETE", _queue(queue), _no_content)


def pause_queue(queue: str) -> Call[Queue]:
    return Call("POST", _queue(queue, "pause"), _reader(Queue.from_json))


def resume_queue(queue: str) -> Call[Queue]:
    return Call("POST", _queue(queue, "resume"), _reader(Queue.from_json))


def enqueue_one(queue: str, event: NewEvent) -> Call[Enqueued]:
    return Call("POST", _queue(queue, "events"), _reader(Enqueued.from_json), body=event.to_json())


def enqueue_batch(queue: str, events: Sequence[NewEvent]) -> Call[EnqueuedBatch]:
    body = [e.to_json() for e in events]
    return Call("POST", _queue(queue, "events"), _reader(EnqueuedBatch.from_json), body=body)


def lease_events(
    queue: str, max: int | None, visibility_timeout_ms: int | None, wait_ms: int | None
) -> Call[list[LeasedEvent]]:
    body = _some(max=max, visibility_timeout_ms=visibility_timeout_ms, wait_ms=wait_ms)
    return Call(
        "POST",
        _queue(queue, "lease"),
        _reader(LeasedEvent.list_from_json),
        body=body,
        wait_s=(wait_ms or 0) / 1000,
    )


def _receipts(receipts: str | Sequence[str]) -> list[str]:
    # A lone string is one receipt, not a sequence of characters.
    return [receipts] if isinstance(receipts, str) else list(receipts)


def ack_events(queue: str, receipts: str | Sequence[str]) -> Call[Results]:
    body = {"receipts": _receipts(receipts)}
    return Call("POST", _queue(queue, "ack"), _reader(Results.from_json), body=body)


def nack_events(
    queue: str, receipts: str | Sequence[str], delay_ms: int | None, error: str | None
) -> Call[Results]:
    body = {"receipts": _receipts(receipts), **_some(delay_ms=delay_ms, error=error)}
    return Call("POST", _queue(queue, "nack"), _reader(Results.from_json), body=body)


def extend_leases(queue: str, receipts: str | Sequence[str], visibility_timeout_ms: int | None) -> Call[Results]:
    body = {"receipts": _receipts(receipts), **_some(visibility_timeout_ms=visibility_timeout_ms)}
    return Call("POST", _queue(queue, "extend"), _reader(Results.from_json), body=body)


def list_dead_letters(queue: str, limit: int | None, after: int | None) -> Call[DeadLetterPage]:
    params = {k: str(v) for k, v in _some(limit=limit, after=after).items()}
    return Call("GET", _queue(queue, "dlq"), _reader(DeadLetterPage.from_json), params=params)


def _which(ids: Sequence[int] | None, all: bool) -> dict[str, Any]:
    # Acting on the whole DLQ takes an explicit all=True, as the API wants an
    # explicit {} or {"all": true}: forgetting ids must not drop everything.
    if ids is not None and all:
        raise ValueError("give ids or all=True, not both")
    if ids is not None:
        return {"ids": list(ids)}
    if all:
        return {"all": True}
    raise ValueError("give the ids of the dead events, or all=True for every one")


def redrive_dead_letters(queue: str, ids: Sequence[int] | None, all: bool) -> Call[int]:
    return Call("POST", _queue(queue, "dlq", "redrive"), _reader(_count("redriven")), body=_which(ids, all))


def purge_dead_letters(queue: str, ids: Sequence[int] | None, all: bool) -> Call[int]:
    return Call("POST", _queue(queue, "dlq", "purge"), _reader(_count("purged")), body=_which(ids, all))


def browse_events(
    queue: str, state: EventState | None, limit: int | None, after: int | None, payload: bool | None
) -> Call[BrowsePage]:
    params = {k: str(v) for k, v in _some(state=state, limit=limit, after=after).items()}
    if payload is not None:
        params["payload"] = "true" if payload else "false"
    return Call("GET", _queue(queue, "events"), _reader(BrowsePage.from_json), params=params)


def get_event(queue: str, id: int) -> Call[BrowsedEvent]:
    return Call("GET", _queue(queue, "events", str(id)), _reader(BrowsedEvent.from_json))


def cancel_event(queue: str, id: int) -> Call[None]:
    return Call("DELETE", _queue(queue, "events", str(id)), _no_content)


def put_subscription(
    queue: str, url: str, concurrency: int | None, timeout_ms: int | None, secret: str | None
) -> Call[Subscription]:
    body = {"url": url, **_some(concurrency=concurrency, timeout_ms=timeout_ms, secret=secret)}
    return Call("PUT", _queue(queue, "subscription"), _reader(Subscription.from_json), body=body)


def get_subscription(queue: str) -> Call[Subscription]:
    return Call("GET", _queue(queue, "subscription"), _reader(Subscription.from_json))


def delete_subscription(queue: str) -> Call[None]:
    return Call("DELETE", _queue(queue, "subscription"), _no_content)

