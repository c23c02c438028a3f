"""The HTTP clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Design:

- One method per operation of the API, named the snake_case of its OpenAPI
  operationId (``enqueue_events`` for ``enqueueEvents``), taking every field
  the API takes as keyword arguments, plus a few conveniences
  (:meth:`Client.enqueue`, :meth:`Client.enqueue_batch`).
- What a request looks like and what its answer means is written once, in
  :mod:`event_broker._ops`; both clients only send those calls, each over one
  httpx connection pool (``httpx.Client`` / ``httpx.AsyncClient``).
- Every failure is an :class:`~event_broker.errors.BrokerError`: an error
  answer by its code, :class:`~event_broker.errors.ConnectionFailed` when
  there is no answer, :class:`~event_broker.errors.BadAnswer` when the answer
  is not the API's JSON. By default nothing is retried; ``retries=n`` retries
  429 and 503 answers up to n times, waiting as ``Retry-After`` says (or
  backing off exponentially when it says nothing). A retried enqueue may be
  stored twice if the broker stored it and failed to answer: give it an
  ``idempotency_key``.
- Configuration comes from the arguments, else from ``EVENT_BROKER_URL``,
  ``EVENT_BROKER_TOKEN`` and ``EVENT_BROKER_CA``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import ssl
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from . import _ops
from ._ops import UNSET, Call, _Unset
from .errors import BrokerError, ConnectionFailed
from .models import (
    BrowsedEvent,
    BrowsePage,
    Checkpoint,
    DeadLetterPage,
    Enqueued,
    EnqueuedBatch,
    EventState,
    Health,
    JsonValue,
    LeasedEvent,
    NewEvent,
    Queue,
    Results,
    Status,
    Subscription,
)

__all__ = ["Client", "AsyncClient", "DEFAULT_URL"]

T = TypeVar("T")

#: The broker's address when neither the argument nor ``EVENT_BROKER_URL`` gives one.
DEFAULT_URL = "http://127.0.0.1:3000"

_USER_AGENT = "event-broker-client-python/0.1.0"

# A setting of PATCH: a value, None (sent as null), or UNSET (not sent).
_Patch = int | None | _Unset
_PatchFloat = float | None | _Unset
_PatchBool = bool | None | _Unset


def _remember_that_sniffio_is_missing() -> None:
    """httpcore imports ``sniffio`` on every async request, to tell asyncio
    from trio. Since anyio stopped requiring it, it is often not installed,
    and then each of those imports searches the whole ``sys.path`` again:
    about a fifth of the CPU time of a consumer. Recording it as missing
    once makes ``import sniffio`` fail at once, as it would have anyway."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


_remember_that_sniffio_is_missing()


@dataclass(frozen=True, slots=True)
class _Settings:
    """A client's resolved configuration, which a consumer copies to make the
    async client it runs on."""

    base_url: str
    headers: dict[str, str]
    verify: ssl.SSLContext | bool
    timeout: float
    retries: int

    @classmethod
    def resolve(
        cls,
        url: str | None,
        token: str | None,
        ca: str | os.PathLike[str] | None,
        timeout: float,
        retries: int,
        identity: str | os.PathLike[str] | None = None,
    ) -> _Settings:
        url = url or os.environ.get("EVENT_BROKER_URL") or DEFAULT_URL
        token = token if token is not None else (os.environ.get("EVENT_BROKER_TOKEN") or None)
        ca = ca if ca is not None else (os.environ.get("EVENT_BROKER_CA") or None)
        base = url.rstrip("/")
        if not base.endswith("/api"):
            base += "/api"
        try:
            parsed = httpx.URL(base)
        except httpx.InvalidURL as e:
            raise ValueError(f"not a broker URL: {url!r}: {e}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not a broker URL: {url!r}: expected http:// or https:// and a host")
        headers = {"user-agent": _USER_AGENT, "accept": "application/json"}
        if token and not (token.isascii() and token.isprintable() and " " not in token):
            raise ValueError("a token is printable ASCII without spaces")
        if token:
            headers["authorization"] = f"Bearer {token}"
        # A CA file makes a context that trusts it (and only it); without one,
        # httpx verifies against the system's CAs.
        identity = identity if identity is not None else (os.environ.get("EVENT_BROKER_IDENTITY") or None)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=os.fspath(ca)) if ca else True
        if identity:
            # The client's certificate and key, one PEM file, for a broker
            # with TLS_CLIENT_CA: they go into the same context.
            if not isinstance(verify, ssl.SSLContext):
                verify = ssl.create_default_context()
            verify.load_cert_chain(os.fspath(identity))
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        return cls(base, headers, verify, float(timeout), retries)

    def timeout_of(self, call: Call[Any]) -> httpx.Timeout:
        # A long poll may be held wait_s on purpose: only reading waits longer.
        return httpx.Timeout(self.timeout, read=self.timeout + call.wait_s)

    def request_headers(self, call: Call[Any], content: bytes | None) -> dict[str, str] | None:
        return {"content-type": "application/json"} if content is not None else None

    def failure(self, call: Call[Any], e: Exception) -> ConnectionFailed:
        where = f"{call.method} {self.base_url}{call.path}"
        if isinstance(e, httpx.TimeoutException):
            return ConnectionFailed(f"{where}: no answer in time ({type(e).__name__})")
        detail = str(e) or type(e).__name__
        return ConnectionFailed(f"{where}: {type(e).__name__}: {detail}")


class Client:
    """A blocking client of the broker's HTTP API, over one connection pool.

    Args:
        url: the broker, with or without the ``/api`` suffix; default
            ``EVENT_BROKER_URL``, else ``http://127.0.0.1:3000``.
        token: sent as ``Authorization: Bearer``; default ``EVENT_BROKER_TOKEN``.
        ca: a PEM file of the CA that signed the broker's certificate (HTTPS);
            default ``EVENT_BROKER_CA``, else the system's CAs.
        identity: a PEM file of this client's certificate and its key, for
            a broker that asks for one (``TLS_CLIENT_CA``); default
            ``EVENT_BROKER_IDENTITY``.
        timeout: seconds to wait for a connection or an answer; a long poll
            (``lease_events(wait_ms=...)``) gets its wait on top.
        retries: how many times to retry an answer of 429 or 503, waiting as
            its ``Retry-After`` says; 0 (the default) raises at once.

    Use it as a context manager, or call :meth:`close`. It is safe to share
    between threads, as httpx's client is.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        timeout: float = _ops.DEFAULT_TIMEOUT,
        *,
        retries: int = 0,
        identity: str | os.PathLike[str] | None = None,
    ) -> None:
        self._settings = _Settings.resolve(url, token, ca, timeout, retries, identity)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            verify=self._settings.verify,
            timeout=self._settings.timeout,
            follow_redirects=False,
        )

    @property
    def url(self) -> str:
        """The API's base URL, ending in ``/api``."""
        return self._settings.base_url

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _send(self, call: Call[T]) -> T:
        s = self._settings
        content = call.content()
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path.lstrip("/"),
                    params=call.params,
                    content=content,
                    headers=s.request_headers(call, content),
                    timeout=s.timeout_of(call),
                )
            except (httpx.HTTPError, OSError) as e:
                raise s.failure(call, e) from e
            try:
                return call.parse(response)
            except BrokerError as e:
                if attempt < s.retries and _ops.is_retryable(e):
                    time.sleep(_ops.backoff_delay(attempt, e.retry_after))
                    attempt += 1
                    continue
                raise

    # --- operations -------------------------------------------------------------

    def health(self) -> Health:
        """``GET /api/health``: liveness, ``Health(status="ok")`` while the broker serves."""
        return self._send(_ops.health())

    def ready(self) -> Health:
        """``GET /api/health/ready``: ``status`` is ``ready``, or ``unavailable``
        with a ``reason`` (recovering its log, shutting down, storage failed).
        A 503 readiness answer is returned, not raised."""
        return self._send(_ops.ready())

    def status(self) -> Status:
        """``GET /api/status``: version, uptime, queues, the log and the configuration."""
        return self._send(_ops.status())

    def metrics(self) -> str:
        """``GET /api/metrics``: the Prometheus text exposition."""
        return self._send(_ops.metrics())

    def openapi(self) -> dict[str, Any]:
        """``GET /api/openapi.json``: the API as an OpenAPI 3.1 document."""
        return self._send(_ops.openapi())

    def openapi30(self) -> dict[str, Any]:
        """``GET /api/openapi-3.0.json``: the same document as OpenAPI 3.0.3,
        for generators that read only 3.0."""
        return self._send(_ops.openapi30())

    def create_checkpoint(self, name: str | None = None) -> Checkpoint:
        """``POST /api/admin/checkpoint``: a crash-safe copy of the log under
        ``DATA_DIR/checkpoints/<name>`` (default name: the time). Admin route;
        :class:`~event_broker.errors.Conflict` when the name is taken."""
        return self._send(_ops.create_checkpoint(name))

    def list_queues(self) -> list[Queue]:
        """``GET /api/queues``: every queue."""
        return self._send(_ops.list_queues())

    def get_queue(self, queue: str) -> Queue:
        """``GET /api/queues/{queue}``; :class:`~event_broker.errors.NotFound`
        when it does not exist."""
        return self._send(_ops.get_queue(queue))

    def put_queue_settings(
        self,
        queue: str,
        *,
        visibility_timeout_ms: int | None = None,
        max_retries: int | None = None,
        base_backoff_ms: int | None = None,
        max_backoff_ms: int | None = None,
        backoff_multiplier: float | None = None,
        max_size: int | None = None,
        message_ttl_ms: int | None = None,
        dead_letter_expired: bool | None = None,
        paused: bool | None = None,
        group_concurrency: int | None = None,
        max_in_flight: int | None = None,
        rate_limit_per_s: int | None = None,
        rate_limit_burst: int | None = None,
        group_rate_limit_per_s: int | None = None,
    ) -> Queue:
        """``PUT /api/queues/{queue}``: replace the queue's settings whole (and
        make the queue if need be). A setting left out takes the broker-wide
        one (``False`` for the flags, none for the TTL and flow limits), so a
        PUT without ``paused`` resumes a paused queue. Admin route."""
        settings = {
            "visibility_timeout_ms": visibility_timeout_ms,
            "max_retries": max_retries,
            "base_backoff_ms": base_backoff_ms,
            "max_backoff_ms": max_backoff_ms,
            "backoff_multiplier": backoff_multiplier,
            "max_size": max_size,
            "message_ttl_ms": message_ttl_ms,
            "dead_letter_expired": dead_letter_expired,
            "paused": paused,
            "group_concurrency": group_concurrency,
            "max_in_flight": max_in_flight,
            "rate_limit_per_s": rate_limit_per_s,
            "rate_limit_burst": rate_limit_burst,
            "group_rate_limit_per_s": group_rate_limit_per_s,
        }
        return self._send(_ops.put_queue_settings(queue, settings))

    def patch_queue_settings(
        self,
        queue: str,
        *,
        visibility_timeout_ms: _Patch = UNSET,
        max_retries: _Patch = UNSET,
        base_backoff_ms: _Patch = UNSET,
        max_backoff_ms: _Patch = UNSET,
        backoff_multiplier: _PatchFloat = UNSET,
        max_size: _Patch = UNSET,
        message_ttl_ms: _Patch = UNSET,
        dead_letter_expired: _PatchBool = UNSET,
        paused: _PatchBool = UNSET,
        group_concurrency: _Patch = UNSET,
        max_in_flight: _Patch = UNSET,
        rate_limit_per_s: _Patch = UNSET,
        rate_limit_burst: _Patch = UNSET,
        group_rate_limit_per_s: _Patch = UNSET,
    ) -> Queue:
        """``PATCH /api/queues/{queue}``: change the settings named and keep the
        others. ``None`` is sent as ``null``: no TTL for ``message_ttl_ms``, no
        limit for the flow limits, 1 for ``group_concurrency``, and "keep" for
        the rest. :class:`~event_broker.errors.NotFound` for an unknown queue.
        Admin route."""
        settings = {
            "visibility_timeout_ms": visibility_timeout_ms,
            "max_retries": max_retries,
            "base_backoff_ms": base_backoff_ms,
            "max_backoff_ms": max_backoff_ms,
            "backoff_multiplier": backoff_multiplier,
            "max_size": max_size,
            "message_ttl_ms": message_ttl_ms,
            "dead_letter_expired": dead_letter_expired,
            "paused": paused,
            "group_concurrency": group_concurrency,
            "max_in_flight": max_in_flight,
            "rate_limit_per_s": rate_limit_per_s,
            "rate_limit_burst": rate_limit_burst,
            "group_rate_limit_per_s": group_rate_limit_per_s,
        }
        return self._send(_ops.patch_queue_settings(queue, settings))

    def delete_queue(self, queue: str) -> None:
        """``DELETE /api/queues/{queue}``: the queue with all its events, settings
        and subscription. :class:`~event_broker.errors.Conflict` while one of
        its events is being settled: try again. Admin route."""
        self._send(_ops.delete_queue(queue))

    def pause_queue(self, queue: str) -> Queue:
        """``POST /api/queues/{queue}/pause``: leases answer no events until resumed. Admin route."""
        return self._send(_ops.pause_queue(queue))

    def resume_queue(self, queue: str) -> Queue:
        """``POST /api/queues/{queue}/resume``. Admin route."""
        return self._send(_ops.resume_queue(queue))

    @overload
    def enqueue_events(self, queue: str, events: NewEvent) -> Enqueued: ...

    @overload
    def enqueue_events(self, queue: str, events: Sequence[NewEvent]) -> EnqueuedBatch: ...

    def enqueue_events(self, queue: str, events: NewEvent | Sequence[NewEvent]) -> Enqueued | EnqueuedBatch:
        """``POST /api/queues/{queue}/events``: one event (a :class:`NewEvent`,
        answered :class:`Enqueued`) or a batch of 1 to ``MAX_BATCH`` (a
        sequence, answered :class:`EnqueuedBatch`), stored all or nothing.
        :class:`~event_broker.errors.QueueFull` past the queue's ``max_size``."""
        if isinstance(events, NewEvent):
            return self._send(_ops.enqueue_one(queue, events))
        return self._send(_ops.enqueue_batch(queue, events))

    def enqueue(
        self,
        queue: str,
        payload: JsonValue,
        *,
        delay_ms: int | None = None,
        priority: int | None = None,
        group: str | None = None,
        ttl_ms: int | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Enqueued:
        """Enqueue one event: :meth:`enqueue_events` with a :class:`NewEvent` of these fields."""
        event = NewEvent(payload, delay_ms, priority, group, ttl_ms, headers, idempotency_key)
        return self._send(_ops.enqueue_one(queue, event))

    def enqueue_batch(self, queue: str, events: Iterable[NewEvent]) -> EnqueuedBatch:
        """Enqueue a batch, all or nothing: :meth:`enqueue_events` with a list."""
        return self._send(_ops.enqueue_batch(queue, list(events)))

    def lease_events(
        self,
        queue: str,
        *,
        max: int | None = None,
        visibility_timeout_ms: int | None = None,
        wait_ms: int | None = None,
    ) -> list[LeasedEvent]:
        """``POST /api/queues/{queue}/lease``: up to ``max`` events (default 1)
        under leases of ``visibility_timeout_ms`` (default the queue's). With
        ``wait_ms`` (up to 60000) it is a long poll, answering as soon as an
        event is there, or ``[]`` once the wait is over."""
        return self._send(_ops.lease_events(queue, max, visibility_timeout_ms, wait_ms))

    def ack_events(self, queue: str, receipts: str | Sequence[str]) -> Results:
        """``POST /api/queues/{queue}/ack``: the events are done. One result per
        receipt; :class:`~event_broker.errors.LeaseLost` (with ``.results``)
        when every receipt failed."""
        return self._send(_ops.ack_events(queue, receipts))

    def nack_events(
        self,
        queue: str,
        receipts: str | Sequence[str],
        *,
        delay_ms: int | None = None,
        error: str | None = None,
    ) -> Results:
        """``POST /api/queues/{queue}/nack``: the deliveries failed; retried after
        ``delay_ms`` (default: the queue's backoff), or dead-lettered past
        ``max_retries``. ``error`` (up to 4096 characters) is kept as the
        event's ``last_error``."""
        return self._send(_ops.nack_events(queue, receipts, delay_ms, error))

    def extend_leases(
        self, queue: str, receipts: str | Sequence[str], *, visibility_timeout_ms: int | None = None
    ) -> Results:
        """``POST /api/queues/{queue}/extend``: the leases now end
        ``visibility_timeout_ms`` from now (default the queue's)."""
        return self._send(_ops.extend_leases(queue, receipts, visibility_timeout_ms))

    def list_dead_letters(self, queue: str, *, limit: int | None = None, after: int | None = None) -> DeadLetterPage:
        """``GET /api/queues/{queue}/dlq``: dead events in id order, ``limit``
        (1 to 1000, default 100) after the id ``after``; pass the page's
        ``next`` as ``after`` for the next page."""
        return self._send(_ops.list_dead_letters(queue, limit, after))

    def redrive_dead_letters(self, queue: str, *, ids: Sequence[int] | None = None, all: bool = False) -> int:
        """``POST /api/queues/{queue}/dlq/redrive``: put the dead events ``ids``
        (or every one, with ``all=True``) back to ready; answers how many.
        Admin route."""
        return self._send(_ops.redrive_dead_letters(queue, ids, all))

    def purge_dead_letters(self, queue: str, *, ids: Sequence[int] | None = None, all: bool = False) -> int:
        """``POST /api/queues/{queue}/dlq/purge``: delete the dead events ``ids``
        (or every one, with ``all=True``) for good; answers how many. Admin route."""
        return self._send(_ops.purge_dead_letters(queue, ids, all))

    def browse_events(
        self,
        queue: str,
        *,
        state: EventState | None = None,
        limit: int | None = None,
        after: int | None = None,
        payload: bool | None = None,
    ) -> BrowsePage:
        """``GET /api/queues/{queue}/events``: the queue's events in id order
        without leasing them, of one ``state`` or all; ``payload=False`` leaves
        payloads out."""
        return self._send(_ops.browse_events(queue, state, limit, after, payload))

    def get_event(self, queue: str, id: int) -> BrowsedEvent:
        """``GET /api/queues/{queue}/events/{id}``; :class:`~event_broker.errors.NotFound`
        when the queue holds no live event of that id."""
        return self._send(_ops.get_event(queue, id))

    def cancel_event(self, queue: str, id: int) -> None:
        """``DELETE /api/queues/{queue}/events/{id}``: drop the event in any state.
        Admin route."""
        self._send(_ops.cancel_event(queue, id))

    def put_subscription(
        self,
        queue: str,
        url: str,
        *,
        concurrency: int | None = None,
        timeout_ms: int | None = None,
        secret: str | None = None,
    ) -> Subscription:
        """``PUT /api/queues/{queue}/subscription``: push the queue's events to
        ``url``, ``concurrency`` calls at once, each within ``timeout_ms``,
        signed with ``secret`` (``whsec_`` + base64 of 24 to 64 bytes) by the
        Standard Webhooks scheme. Admin route."""
        return self._send(_ops.put_subscription(queue, url, concurrency, timeout_ms, secret))

    def get_subscription(self, queue: str) -> Subscription:
        """``GET /api/queues/{queue}/subscription``; :class:`~event_broker.errors.NotFound` when none."""
        return self._send(_ops.get_subscription(queue))

    def delete_subscription(self, queue: str) -> None:
        """``DELETE /api/queues/{queue}/subscription``. Admin route."""
        self._send(_ops.delete_subscription(queue))


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same constructor, the same
    methods as coroutines, over one ``httpx.AsyncClient``.

    Use it as an async context manager, or ``await client.close()``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        timeout: float = _ops.DEFAULT_TIMEOUT,
        *,
        retries: int = 0,
        identity: str | os.PathLike[str] | None = None,
    ) -> None:
        self._init(_Settings.resolve(url, token, ca, timeout, retries, identity))

    def _init(self, settings: _Settings) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=settings.headers,
            verify=settings.verify,
            timeout=settings.timeout,
            follow_redirects=False,
        )

    @classmethod
    def _from_settings(cls, settings: _Settings, *, retries: int = 0) -> AsyncClient:
        """A client of the same broker as another's settings (for consumers)."""
        client = cls.__new__(cls)
        client._init(
            _Settings(settings.base_url, settings.headers, settings.verify, settings.timeout, retries)
        )
        return client

    @property
    def url(self) -> str:
        """The API's base URL, ending in ``/api``."""
        return self._settings.base_url

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def _send(self, call: Call[T]) -> T:
        s = self._settings
        content = call.content()
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path.lstrip("/"),
                    params=call.params,
                    content=content,
                    headers=s.request_headers(call, content),
                    timeout=s.timeout_of(call),
                )
            except (httpx.HTTPError, OSError) as e:
                raise s.failure(call, e) from e
            try:
                return call.parse(response)
            except BrokerError as e:
                if attempt < s.retries and _ops.is_retryable(e):
                    await asyncio.sleep(_ops.backoff_delay(attempt, e.retry_after))
                    attempt += 1
                    continue
                raise

    # --- operations: see the methods of the same name of Client ----------------------

    async def health(self) -> Health:
        """``GET /api/health``; see :meth:`Client.health`."""
        return await self._send(_ops.health())

    async def ready(self) -> Health:
        """``GET /api/health/ready``; see :meth:`Client.ready`."""
        return await self._send(_ops.ready())

    async def status(self) -> Status:
        """``GET /api/status``; see :meth:`Client.status`."""
        return await self._send(_ops.status())

    async def metrics(self) -> str:
        """``GET /api/metrics``; see :meth:`Client.metrics`."""
        return await self._send(_ops.metrics())

    async def openapi(self) -> dict[str, Any]:
        """``GET /api/openapi.json``; see :meth:`Client.openapi`."""
        return await self._send(_ops.openapi())

    async def openapi30(self) -> dict[str, Any]:
        """``GET /api/openapi-3.0.json``; see :meth:`Client.openapi30`."""
        return await self._send(_ops.openapi30())

    async def create_checkpoint(self, name: str | None = None) -> Checkpoint:
        """``POST /api/admin/checkpoint``; see :meth:`Client.create_checkpoint`."""
        return await self._send(_ops.create_checkpoint(name))

    async def list_queues(self) -> list[Queue]:
        """``GET /api/queues``; see :meth:`Client.list_queues`."""
        return await self._send(_ops.list_queues())

    async def get_queue(self, queue: str) -> Queue:
        """``GET /api/queues/{queue}``; see :meth:`Client.get_queue`."""
        return await self._send(_ops.get_queue(queue))

    async def put_queue_settings(
        self,
        queue: str,
        *,
        visibility_timeout_ms: int | None = None,
        max_retries: int | None = None,
        base_backoff_ms: int | None = None,
        max_backoff_ms: int | None = None,
        backoff_multiplier: float | None = None,
        max_size: int | None = None,
        message_ttl_ms: int | None = None,
        dead_letter_expired: bool | None = None,
        paused: bool | None = None,
        group_concurrency: int | None = None,
        max_in_flight: int | None = None,
        rate_limit_per_s: int | None = None,
        rate_limit_burst: int | None = None,
        group_rate_limit_per_s: int | None = None,
    ) -> Queue:
        """``PUT /api/queues/{queue}``; see :meth:`Client.put_queue_settings`."""
        settings = {
            "visibility_timeout_ms": visibility_timeout_ms,
            "max_retries": max_retries,
            "base_backoff_ms": base_backoff_ms,
            "max_backoff_ms": max_backoff_ms,
            "backoff_multiplier": backoff_multiplier,
            "max_size": max_size,
            "message_ttl_ms": message_ttl_ms,
            "dead_letter_expired": dead_letter_expired,
            "paused": paused,
            "group_concurrency": group_concurrency,
            "max_in_flight": max_in_flight,
            "rate_limit_per_s": rate_limit_per_s,
            "rate_limit_burst": rate_limit_burst,
            "group_rate_limit_per_s": group_rate_limit_per_s,
        }
        return await self._send(_ops.put_queue_settings(queue, settings))

    async def patch_queue_settings(
        self,
        queue: str,
        *,
        visibility_timeout_ms: _Patch = UNSET,
        max_retries: _Patch = UNSET,
        base_backoff_ms: _Patch = UNSET,
        max_backoff_ms: _Patch = UNSET,
        backoff_multiplier: _PatchFloat = UNSET,
        max_size: _Patch = UNSET,
        message_ttl_ms: _Patch = UNSET,
        dead_letter_expired: _PatchBool = UNSET,
        paused: _PatchBool = UNSET,
        group_concurrency: _Patch = UNSET,
        max_in_flight: _Patch = UNSET,
        rate_limit_per_s: _Patch = UNSET,
        rate_limit_burst: _Patch = UNSET,
        group_rate_limit_per_s: _Patch = UNSET,
    ) -> Queue:
        """``PATCH /api/queues/{queue}``; see :meth:`Client.patch_queue_settings`."""
        settings = {
            "visibility_timeout_ms": visibility_timeout_ms,
            "max_retries": max_retries,
            "base_backoff_ms": base_backoff_ms,
            "max_backoff_ms": max_backoff_ms,
            "backoff_multiplier": backoff_multiplier,
            "max_size": max_size,
            "message_ttl_ms": message_ttl_ms,
            "dead_letter_expired": dead_letter_expired,
            "paused": paused,
            "group_concurrency": group_concurrency,
            "max_in_flight": max_in_flight,
            "rate_limit_per_s": rate_limit_per_s,
            "rate_limit_burst": rate_limit_burst,
            "group_rate_limit_per_s": group_rate_limit_per_s,
        }
        return await self._send(_ops.patch_queue_settings(queue, settings))

    async def delete_queue(self, queue: str) -> None:
        """``DELETE /api/queues/{queue}``; see :meth:`Client.delete_queue`."""
        await self._send(_ops.delete_queue(queue))

    async def pause_queue(self, queue: str) -> Queue:
        """``POST /api/queues/{queue}/pause``; see :meth:`Client.pause_queue`."""
        return await self._send(_ops.pause_queue(queue))

    async def resume_queue(self, queue: str) -> Queue:
        """``POST /api/queues/{queue}/resume``; see :meth:`Client.resume_queue`."""
        return await self._send(_ops.resume_queue(queue))

    @overload
    async def enqueue_events(self, queue: str, events: NewEvent) -> Enqueued: ...

    @overload
    async def enqueue_events(self, queue: str, events: Sequence[NewEvent]) -> EnqueuedBatch: ...

    async def enqueue_events(self, queue: str, events: NewEvent | Sequence[NewEvent]) -> Enqueued | EnqueuedBatch:
        """``POST /api/queues/{queue}/events``; see :meth:`Client.enqueue_events`."""
        if isinstance(events, NewEvent):
            return await self._send(_ops.enqueue_one(queue, events))
        return await self._send(_ops.enqueue_batch(queue, events))

    async def enqueue(
        self,
        queue: str,
        payload: JsonValue,
        *,
        delay_ms: int | None = None,
        priority: int | None = None,
        group: str | None = None,
        ttl_ms: int | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Enqueued:
        """Enqueue one event; see :meth:`Client.enqueue`."""
        event = NewEvent(payload, delay_ms, priority, group, ttl_ms, headers, idempotency_key)
        return await self._send(_ops.enqueue_one(queue, event))

    async def enqueue_batch(self, queue: str, events: Iterable[NewEvent]) -> EnqueuedBatch:
        """Enqueue a batch, all or nothing; see :meth:`Client.enqueue_batch`."""
        return await self._send(_ops.enqueue_batch(queue, list(events)))

    async def lease_events(
        self,
        queue: str,
        *,
        max: int | None = None,
        visibility_timeout_ms: int | None = None,
        wait_ms: int | None = None,
    ) -> list[LeasedEvent]:
        """``POST /api/queues/{queue}/lease``; see :meth:`Client.lease_events`."""
        return await self._send(_ops.lease_events(queue, max, visibility_timeout_ms, wait_ms))

    async def ack_events(self, queue: str, receipts: str | Sequence[str]) -> Results:
        """``POST /api/queues/{queue}/ack``; see :meth:`Client.ack_events`."""
        return await self._send(_ops.ack_events(queue, receipts))

    async def nack_events(
        self,
        queue: str,
        receipts: str | Sequence[str],
        *,
        delay_ms: int | None = None,
        error: str | None = None,
    ) -> Results:
        """``POST /api/queues/{queue}/nack``; see :meth:`Client.nack_events`."""
        return await self._send(_ops.nack_events(queue, receipts, delay_ms, error))

    async def extend_leases(
        self, queue: str, receipts: str | Sequence[str], *, visibility_timeout_ms: int | None = None
    ) -> Results:
        """``POST /api/queues/{queue}/extend``; see :meth:`Client.extend_leases`."""
        return await self._send(_ops.extend_leases(queue, receipts, visibility_timeout_ms))

    async def list_dead_letters(
        self, queue: str, *, limit: int | None = None, after: int | None = None
    ) -> DeadLetterPage:
        """``GET /api/queues/{queue}/dlq``; see :meth:`Client.list_dead_letters`."""
        return await self._send(_ops.list_dead_letters(queue, limit, after))

    async def redrive_dead_letters(self, queue: str, *, ids: Sequence[int] | None = None, all: bool = False) -> int:
        """``POST /api/queues/{queue}/dlq/redrive``; see :meth:`Client.redrive_dead_letters`."""
        return await self._send(_ops.redrive_dead_letters(queue, ids, all))

    async def purge_dead_letters(self, queue: str, *, ids: Sequence[int] | None = None, all: bool = False) -> int:
        """``POST /api/queues/{queue}/dlq/purge``; see :meth:`Client.purge_dead_letters`."""
        return await self._send(_ops.purge_dead_letters(queue, ids, all))

    async def browse_events(
        self,
        queue: str,
        *,
        state: EventState | None = None,
        limit: int | None = None,
        after: int | None = None,
        payload: bool | None = None,
    ) -> BrowsePage:
        """``GET /api/queues/{queue}/events``; see :meth:`Client.browse_events`."""
        return await self._send(_ops.browse_events(queue, state, limit, after, payload))

    async def get_event(self, queue: str, id: int) -> BrowsedEvent:
        """``GET /api/queues/{queue}/events/{id}``; see :meth:`Client.get_event`."""
        return await self._send(_ops.get_event(queue, id))

    async def cancel_event(self, queue: str, id: int) -> None:
        """``DELETE /api/queues/{queue}/events/{id}``; see :meth:`Client.cancel_event`."""
        await self._send(_ops.cancel_event(queue, id))

    async def put_subscription(
        self,
        queue: str,
        url: str,
        *,
        concurrency: int | None = None,
        timeout_ms: int | None = None,
        secret: str | None = None,
    ) -> Subscription:
        """``PUT /api/queues/{queue}/subscription``; see :meth:`Client.put_subscription`."""
        return await self._send(_ops.put_subscription(queue, url, concurrency, timeout_ms, secret))

    async def get_subscription(self, queue: str) -> Subscription:
        """``GET /api/queues/{queue}/subscription``; see :meth:`Client.get_subscription`."""
        return await self._send(_ops.get_subscription(queue))

    async def delete_subscription(self, queue: str) -> None:
        """``DELETE /api/queues/{queue}/subscription``; see :meth:`Client.delete_subscription`."""
        await self._send(_ops.delete_subscription(queue))
