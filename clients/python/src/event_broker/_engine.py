"""The engine of both consumers: leasing, heartbeats, ordering, batching, shutdown.

Design: one asyncio event loop runs everything but the handlers themselves.
:class:`~event_broker.AsyncConsumer` runs handler coroutines on that loop;
:class:`~event_broker.Consumer` runs its loop in the thread that called
``run()`` and hands each event to a pool of worker threads, awaiting the
result. Being on asyncio is what makes shutdown prompt: a long poll in
progress is cancelled, not waited out.

Tasks of the loop:

- the **lease loop** leases only as many events as there are free slots
  (``concurrency`` minus the deliveries it holds, running or waiting), long
  polling, and backs off (exponentially with jitter, capped at 5 s, or as
  ``Retry-After`` says) on 429, 503, a broker that does not answer, or an
  answer that does not parse;
- one task per delivery runs its handler, then queues an ack, or a nack
  with ``"ExcType: message"`` as its error;
- the **heartbeat** extends every lease held (running or waiting) each
  third of the visibility timeout, in batched extends;
- the **settler** batches acks and nacks: it collects them for a few
  milliseconds, or up to 100, and sends one request per kind (and per nack
  error), retrying what it could not send until the lease is lost.

Ordering: two events of one group never run at once here. An event whose
group is running waits, its lease extended, until the running one settles.
The same holds for one event id: after a broker restart the event of a
lease that was lost can come back while its first handler still runs; it
waits, and if that handler succeeded it is acked without running again.

Shutdown: stop leasing (cancelling a long poll), nack the waiting events at
once with ``delay_ms: 0``, let running handlers finish within the grace,
nack those still running after it, flush the settler, return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ._ops import backoff_delay
from .client import AsyncClient
from .errors import (
    BadAnswer,
    BrokerError,
    ConnectionFailed,
    LeaseLost,
    NotFound,
)
from .models import LeasedEvent, ReceiptResult, Results

log = logging.getLogger("event_broker.consumer")

#: Longest an error text may be (the API keeps up to 4096 characters).
MAX_ERROR_CHARS = 4096
#: Most acks or nacks sent in one request.
SETTLE_BATCH = 100
#: How long an ack or nack waits for others to share its request.
SETTLE_LINGER_S = 0.005
#: The cap of every backoff.
BACKOFF_CAP_S = 5.0
#: Visibility timeout assumed when neither the consumer nor the broker says.
FALLBACK_VISIBILITY_MS = 30_000
#: Event ids remembered as handled (their ack may have been lost to a restart).
HANDLED_MEMORY = 10_000
#: How long a lease waits for more slots to free once one has (quick handlers).
LEASE_COALESCE_S = 0.002
#: Longest the settler keeps trying to send the last acks and nacks at shutdown.
FLUSH_TIMEOUT_S = 10.0


def error_text(exc: BaseException) -> str:
    """``"ExcType: message"`` (or just ``"ExcType"``), cut to 4096 characters."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def is_transient(error: BrokerError) -> bool:
    """Whether waiting may help: a 429, a 5xx, no answer, or a garbled one."""
    if isinstance(error, (ConnectionFailed, BadAnswer)):
        return True
    return error.status is not None and (error.status == 429 or error.status >= 500)


class Backoff:
    """Exponential backoff with jitter from 0.1 s, capped at 5 s; a
    ``Retry-After`` of the answer wins over the computed delay."""

    def __init__(self, cap: float = BACKOFF_CAP_S) -> None:
        self.attempt = 0
        self.cap = cap

    def next(self, retry_after: float | None = None) -> float:
        delay = backoff_delay(self.attempt, None, self.cap)
        self.attempt += 1
        return max(delay, retry_after) if retry_after is not None else delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class ConsumerStats:
    """Counts of what a consumer did since it started.

    Attributes:
        leased: events leased.
        handled: handlers that returned normally.
        failed: handlers that raised.
        acked: acks the broker confirmed.
        nacked: nacks the broker confirmed.
        lease_lost: acks, nacks or extends answered ``lease_lost`` or ``not_found``.
        deduplicated: redeliveries of an event already handled here, acked
            without running the handler again.
        held_back: events that waited, leased, for another event of their
            group (or an earlier delivery of themselves) to finish.
        backoffs: times the consumer backed off after an error.
    """

    leased: int = 0
    handled: int = 0
    failed: int = 0
    acked: int = 0
    nacked: int = 0
    lease_lost: int = 0
    deduplicated: int = 0
    held_back: int = 0
    backoffs: int = 0


@dataclass(eq=False)
class _Delivery:
    """One lease held by the consumer, from the lease to its settlement."""

    event: LeasedEvent
    keys: tuple[Hashable, ...]
    next_extend: float
    task: asyncio.Task[None] | None = None
    lost: bool = False
    abandoned: bool = False


@dataclass
class _Settle:
    receipt: str
    ack: bool
    error: str | None = None
    delay_ms: int | None = None
    attempts: int = 0


class _Settler:
    """Batches acks and nacks into few requests, and retries them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: list[_Settle] = []
        self.wake = asyncio.Event()
        self.sending: set[asyncio.Task[None]] = set()
        self.closing = False
        self.task = engine.watch(asyncio.create_task(self._loop(), name="event-broker-settler"))

    def add(self, item: _Settle) -> None:
        self.pending.append(item)
        self.wake.set()

    async def _loop(self) -> None:
        while True:
            await self.wake.wait()
            # Linger a little for other acks to share the request, unless
            # enough are waiting already.
            if len(self.pending) < SETTLE_BATCH and not self.closing:
                await asyncio.sleep(SETTLE_LINGER_S)
            self.wake.clear()
            batch, self.pending = self.pending, []
            for group in self._requests(batch):
                task = self.engine.watch(asyncio.create_task(self._send(group)))
                self.sending.add(task)
                task.add_done_callback(self.sending.discard)

    @staticmethod
    def _requests(batch: list[_Settle]) -> list[list[_Settle]]:
        # One request carries one kind, and a nack one error and delay.
        by_kind: dict[tuple[bool, str | None, int | None], list[_Settle]] = {}
        for item in batch:
            by_kind.setdefault((item.ack, item.error, item.delay_ms), []).append(item)
        requests = []
        for items in by_kind.values():
            for i in range(0, len(items), SETTLE_BATCH):
                requests.append(items[i : i + SETTLE_BATCH])
        return requests

    async def _send(self, items: list[_Settle]) -> None:
        engine = self.engine
        first = items[0]
        receipts = [i.receipt for i in items]
        kind = "ack" if first.ack else "nack"
        try:
            if first.ack:
                results = await engine.client.ack_events(engine.queue, receipts)
            else:
                results = await engine.client.nack_events(
                    engine.queue, receipts, delay_ms=first.delay_ms, error=first.error
                )
        except LeaseLost as e:
            results = Results(e.results or [ReceiptResult(r, "lease_lost") for r in receipts])
        except BrokerError as e:
            if is_transient(e) and not (self.closing and engine.flush_expired()):
                # Retried until it succeeds or the lease is gone (then the
                # answer is lease_lost): the broker may be restarting.
                attempt = max(i.attempts for i in items)
                delay = backoff_delay(attempt, e.retry_after, BACKOFF_CAP_S)
                log.warning("%s of %d events failed (%s); retrying in %.2f s", kind, len(items), e, delay)
                engine.stats.backoffs += 1
                await asyncio.sleep(delay)
                for i in items:
                    i.attempts += 1
                    self.add(i)
                return
            log.error("%s of %d events failed: %s", kind, len(items), e)
            for i in items:
                engine.settled(i.receipt)
            return
        for item, result in zip(items, results.results, strict=False):
            if result.status == "ok":
                if item.ack:
                    engine.stats.acked += 1
                else:
                    engine.stats.nacked += 1
            else:
                engine.stats.lease_lost += 1
                log.warning(
                    "%s of event %s: %s (its lease expired or the broker restarted)",
                    kind,
                    engine.event_id_of(item.receipt),
                    result.status,
                )
            engine.settled(item.receipt)
        for item in items[len(results.results) :]:  # the broker answers one result per receipt
            engine.settled(item.receipt)

    async def close(self) -> None:
        """Send everything pending, retrying until :data:`FLUSH_TIMEOUT_S`."""
        self.closing = True
        while (self.pending or self.sending) and not self.task.done():
            self.wake.set()
            await asyncio.sleep(0.001)
            if self.sending:
                await asyncio.wait(set(self.sending), timeout=0.5)
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class Engine:
    """One consumer's run: see the module's docstring.

    ``invoke(event)`` runs the handler of an event; ``cancel_on_abandon``
    says whether a handler still running after the grace can be cancelled
    (a coroutine can, a thread cannot).
    """

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        invoke: Callable[[LeasedEvent], Awaitable[object]],
        *,
        concurrency: int,
        max: int | None,
        visibility_timeout_ms: int | None,
        wait_ms: int,
        shutdown_grace: float,
        cancel_on_abandon: bool,
        stats: ConsumerStats,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max is not None and max < 1:
            raise ValueError("max must be at least 1")
        self.client = client
        self.queue = queue
        self.invoke = invoke
        self.concurrency = concurrency
        self.max = max if max is not None else concurrency
        self.visibility_timeout_ms = visibility_timeout_ms
        self.wait_ms = wait_ms
        self.shutdown_grace = shutdown_grace
        self.cancel_on_abandon = cancel_on_abandon
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        # Deliveries held, by receipt: running or waiting for their keys.
        self.held: dict[str, _Delivery] = {}
        # Receipts leased and not settled yet (held, or being acked/nacked).
        self.unsettled: dict[str, int] = {}
        self.waiting: deque[_Delivery] = deque()
        self.busy: set[Hashable] = set()
        self.handled: OrderedDict[int, None] = OrderedDict()
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()
        self.slot_freed = asyncio.Event()
        self.heartbeat_wake = asyncio.Event()
        self.flush_deadline = float("inf")
        self.fatal: BrokerError | None = None
        self.vt_s = 0.0

    # --- control, from any thread -------------------------------------------------

    def stop(self) -> None:
        """Begin the shutdown; a second call cuts the grace short. Safe from
        any thread and from signal handlers: it always goes through the
        loop's wake-up pipe, so a loop asleep in its selector wakes."""
        try:
            self.loop.call_soon_threadsafe(self._stop_now)
        except RuntimeError:  # the loop is closed: the run is over
            pass

    def _stop_now(self) -> None:
        if self.stopping.is_set():
            self.forced.set()
        self.stopping.set()

    def watch(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Stop the consumer, loudly, if ``task`` dies of an unexpected error:
        a dead heartbeat or settler must not leave a consumer that looks alive."""

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("consumer task %s failed", t.get_name(), exc_info=t.exception())
                self.stop()

        task.add_done_callback(done)
        return task

    def flush_expired(self) -> bool:
        return time.monotonic() > self.flush_deadline

    def event_id_of(self, receipt: str) -> int | None:
        return self.unsettled.get(receipt)

    def settled(self, receipt: str) -> None:
        self.unsettled.pop(receipt, None)

    # --- the run -----------------------------------------------------------------------

    async def run(self) -> None:
        vt_ms = self.visibility_timeout_ms or await self._queue_visibility_ms()
        if vt_ms is None:  # stopped before it could start
            return
        self.visibility_timeout_ms = vt_ms
        self.vt_s = vt_ms / 1000
        self.settler = _Settler(self)
        heartbeat = self.watch(asyncio.create_task(self._heartbeat(), name="event-broker-heartbeat"))
        leaser = self.watch(asyncio.create_task(self._lease_loop(), name="event-broker-lease"))
        try:
            await self.stopping.wait()
        finally:
            leaser.cancel()
            await asyncio.gather(leaser, return_exceptions=True)
            await self._drain()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            self.flush_deadline = time.monotonic() + FLUSH_TIMEOUT_S
            await self.settler.close()
        if self.fatal is not None:
            raise self.fatal

    async def _queue_visibility_ms(self) -> int | None:
        """The queue's lease length, which the consumer then asks for
        explicitly so that its heartbeat is timed right; the broker-wide
        setting for a queue that does not exist yet; 30 s if the broker does
        not say. Retried while the broker is unreachable; ``None`` when
        stopped meanwhile."""
        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                return (await self.client.get_queue(self.queue)).settings.visibility_timeout_ms
            except NotFound:
                break
            except BrokerError as e:
                if not is_transient(e):
                    raise
                delay = backoff.next(e.retry_after)
                log.warning("reading queue %s failed (%s); retrying in %.2f s", self.queue, e, delay)
                await self._sleep_unless_stopped(delay)
        else:
            return None
        try:
            return int((await self.client.status()).config["VISIBILITY_TIMEOUT_MS"])
        except (BrokerError, KeyError, ValueError):
            return FALLBACK_VISIBILITY_MS

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _lease_loop(self) -> None:
        backoff = Backoff()
        idle = Backoff(cap=1.0)
        while not self.stopping.is_set():
            free = self.concurrency - len(self.held)
            if free <= 0:
                self.slot_freed.clear()
                await self.slot_freed.wait()
                # Quick handlers free their slots within moments of each
                # other: wait a little for more, so that one lease fills
                # several slots rather than one lease per slot.
                coalesce_until = time.monotonic() + LEASE_COALESCE_S
                while (
                    self.concurrency - len(self.held) < min(self.max, self.concurrency)
                    and time.monotonic() < coalesce_until
                    and not self.stopping.is_set()
                ):
                    self.slot_freed.clear()
                    try:
                        await asyncio.wait_for(self.slot_freed.wait(), coalesce_until - time.monotonic())
                    except TimeoutError:
                        break
                continue
            started = time.monotonic()
            try:
                events = await self.client.lease_events(
                    self.queue,
                    max=min(self.max, free),
                    visibility_timeout_ms=self.visibility_timeout_ms,
                    wait_ms=self.wait_ms,
                )
            except BrokerError as e:
                if not is_transient(e):
                    log.error("leasing from %s failed for good: %s", self.queue, e)
                    self.fatal = e
                    self.stop()
                    return
                delay = backoff.next(e.retry_after)
                self.stats.backoffs += 1
                log.warning("leasing from %s failed (%s); retrying in %.2f s", self.queue, e, delay)
                await self._sleep_unless_stopped(delay)
                continue
            backoff.reset()
            now = time.monotonic()
            for event in events:
                self._accept(event, now)
            if events:
                idle.reset()
            elif self.wait_ms == 0 or now - started < min(self.wait_ms / 1000, 1.0) / 2:
                # No events, and no long poll (or one that answered early, as
                # a broker shutting down does): do not spin.
                await self._sleep_unless_stopped(idle.next())

    # --- deliveries -----------------------------------------------------------------------

    def _accept(self, event: LeasedEvent, now: float) -> None:
        self.stats.leased += 1
        self.unsettled[event.receipt] = event.id
        if event.id in self.handled:
            # Handled here before, its ack lost (a restart took the lease):
            # acknowledge it without running the handler twice.
            self.stats.deduplicated += 1
            self.settler.add(_Settle(event.receipt, ack=True))
            return
        keys: tuple[Hashable, ...] = (("id", event.id),)
        if event.group is not None:
            keys += (("group", event.group),)
        delivery = _Delivery(event, keys, next_extend=now + self.vt_s / 3)
        self.held[event.receipt] = delivery
        self.heartbeat_wake.set()
        if self.busy.isdisjoint(keys) and not self.stopping.is_set():
            self._start(delivery)
        else:
            self.stats.held_back += 1
            self.waiting.append(delivery)

    def _start(self, delivery: _Delivery) -> None:
        self.busy.update(delivery.keys)
        delivery.task = asyncio.create_task(self._run_one(delivery))

    async def _run_one(self, delivery: _Delivery) -> None:
        event = delivery.event
        try:
            await self.invoke(event)
        except asyncio.CancelledError:
            if delivery.abandoned:
                return
            raise
        except Exception as exc:  # the handler's failure is the event's, not ours
            if delivery.abandoned:
                return
            self.stats.failed += 1
            log.warning("handler failed on event %d of %s: %s", event.id, self.queue, error_text(exc))
            self._finish(delivery, _Settle(event.receipt, ack=False, error=error_text(exc)))
            return
        if delivery.abandoned:
            log.warning("handler of event %d returned after the shutdown grace; it was nacked", event.id)
            return
        self.stats.handled += 1
        self.handled[event.id] = None
        if len(self.handled) > HANDLED_MEMORY:
            self.handled.popitem(last=False)
        self._finish(delivery, _Settle(event.receipt, ack=True))

    def _finish(self, delivery: _Delivery, settle: _Settle) -> None:
        self.held.pop(delivery.event.receipt, None)
        self.busy.difference_update(delivery.keys)
        self.settler.add(settle)
        self.slot_freed.set()
        if not self.stopping.is_set():
            self._start_waiting()

    def _start_waiting(self) -> None:
        # In arrival order, every waiting delivery whose group (and id) is free.
        still: deque[_Delivery] = deque()
        while self.waiting:
            delivery = self.waiting.popleft()
            if delivery.event.id in self.handled:
                self.held.pop(delivery.event.receipt, None)
                self.stats.deduplicated += 1
                self.settler.add(_Settle(delivery.event.receipt, ack=True))
                self.slot_freed.set()
            elif self.busy.isdisjoint(delivery.keys):
                self._start(delivery)
            else:
                still.append(delivery)
        self.waiting = still

    # --- heartbeat ------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        third = max(self.vt_s / 3, 0.01)
        # Leases due within this slack are extended together with the due one.
        slack = third / 2
        backoff = Backoff(cap=min(BACKOFF_CAP_S, max(third / 2, 0.05)))
        while True:
            now = time.monotonic()
            live = [d for d in self.held.values() if not d.lost]
            due = [d for d in live if d.next_extend <= now + slack]
            if due:
                try:
                    await self._extend(due)
                    backoff.reset()
                except BrokerError as e:
                    delay = backoff.next(e.retry_after)
                    self.stats.backoffs += 1
                    log.warning("extending %d leases failed (%s); retrying in %.2f s", len(due), e, delay)
                    await asyncio.sleep(delay)
                continue
            self.heartbeat_wake.clear()
            sleep = min((d.next_extend for d in live), default=now + 3600) - slack - now
            try:
                await asyncio.wait_for(self.heartbeat_wake.wait(), timeout=max(sleep, 0.001))
            except TimeoutError:
                pass

    async def _extend(self, due: list[_Delivery]) -> None:
        for i in range(0, len(due), 1000):
            chunk = due[i : i + 1000]
            sent = time.monotonic()
            try:
                results = await self.client.extend_leases(
                    self.queue, [d.event.receipt for d in chunk], visibility_timeout_ms=self.visibility_timeout_ms
                )
            except LeaseLost as e:
                results = Results(e.results or [ReceiptResult(d.event.receipt, "lease_lost") for d in chunk])
            for delivery, result in zip(chunk, results.results, strict=False):
                if result.status == "ok":
                    delivery.next_extend = sent + self.vt_s / 3
                else:
                    delivery.lost = True
                    self.stats.lease_lost += 1
                    log.warning(
                        "lease of event %d lost (%s): it may be delivered again", delivery.event.id, result.status
                    )

    # --- shutdown -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Nack the waiting events, give the running handlers the grace, nack
        those that outlive it."""
        while self.waiting:
            delivery = self.waiting.popleft()
            self.held.pop(delivery.event.receipt, None)
            self.settler.add(
                _Settle(delivery.event.receipt, ack=False, error="consumer stopped before handling it", delay_ms=0)
            )
        pending: set[asyncio.Future[Any]] = {d.task for d in self.held.values() if d.task is not None}
        if pending:
            log.info("waiting up to %.1f s for %d running handlers", self.shutdown_grace, len(pending))
        deadline = time.monotonic() + self.shutdown_grace
        forced: asyncio.Future[Any] = asyncio.ensure_future(self.forced.wait())
        # Until every handler is done, the grace is over, or a second stop.
        while pending and not forced.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            _, pending = await asyncio.wait(pending | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(forced)
        forced.cancel()
        for delivery in list(self.held.values()):
            delivery.abandoned = True
            self.held.pop(delivery.event.receipt, None)
            self.settler.add(
                _Settle(
                    delivery.event.receipt,
                    ack=False,
                    error="consumer stopped before its handler finished",
                    delay_ms=0,
                )
            )
            if self.cancel_on_abandon and delivery.task is not None:
                delivery.task.cancel()

