"""Consumers: lease events from a queue and run a handler on each.

:class:`Consumer` runs plain functions on a pool of worker threads;
:class:`AsyncConsumer` runs coroutine functions on the caller's event loop.
Both do what :mod:`event_broker._engine` describes: lease only into free
slots with long polls, extend leases while handlers run, ack on return and
nack on an exception, batch acks and nacks, back off on errors, never run
two events of one group at once, and shut down without losing events.

Delivery is at least once: a handler may see an event again after a
broker restart or a lost lease, so make handlers idempotent (the event
``id`` is unique and never reused).

A note on shutdown: the API has no way to give a lease back without it
counting as a failed delivery, so the events nacked at shutdown (waiting
ones, and those whose handler outlives the grace) use up one retry of
their queue's ``max_retries``; with ``max_retries: 0`` they go to the DLQ.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue as queue_module
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ._engine import ConsumerStats, Engine
from .client import AsyncClient, Client
from .models import LeasedEvent

__all__ = ["Consumer", "AsyncConsumer", "ConsumerStats"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Workers:
    """A fixed pool of daemon threads running handlers.

    Not :class:`concurrent.futures.ThreadPoolExecutor`: its threads are
    joined when the interpreter exits, so one handler stuck past the
    shutdown grace would keep the process from ever exiting. A daemon
    thread is abandoned instead (its event was nacked already).
    """

    def __init__(self, size: int, name: str) -> None:
        self._jobs: queue_module.SimpleQueue[
            tuple[Callable[[LeasedEvent], object], LeasedEvent, concurrent.futures.Future[object]] | None
        ] = queue_module.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[LeasedEvent], object], event: LeasedEvent) -> concurrent.futures.Future[object]:
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._jobs.put((fn, event, future))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, event, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(event))
            except BaseException as e:  # handed to the awaiting engine, which nacks
                future.set_exception(e)

    def shutdown(self) -> None:
        """Let idle threads end; busy ones end after their handler returns."""
        for _ in self._threads:
            self._jobs.put(None)


class _Base:
    def __init__(
        self,
        queue: str,
        *,
        concurrency: int,
        max: int | None,
        visibility_timeout_ms: int | None,
        wait_ms: int,
        shutdown_grace: float,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max is not None and max < 1:
            raise ValueError("max must be at least 1")
        if not 0 <= wait_ms <= 60_000:
            raise ValueError("wait_ms must be 0 to 60000")
        self.queue = queue
        self.concurrency = concurrency
        self.max = max
        self.visibility_timeout_ms = visibility_timeout_ms
        self.wait_ms = wait_ms
        self.shutdown_grace = shutdown_grace
        #: What the consumer did so far.
        self.stats = ConsumerStats()
        self._engine: Engine | None = None
        self._stop_requested = False
        # Reentrant: stop() may come from a signal handler that interrupted
        # the same thread while it held the lock.
        self._lock = threading.RLock()

    def stop(self) -> None:
        """Stop: no more leases, running handlers get the shutdown grace, the
        rest are nacked, pending acks and nacks are sent, and ``run`` returns.
        Safe from any thread and from signal handlers; a second call cuts
        the grace short."""
        with self._lock:
            self._stop_requested = True
            engine = self._engine
        if engine is not None:
            engine.stop()

    def _engine_for(
        self, client: AsyncClient, invoke: Callable[[LeasedEvent], Awaitable[object]], cancel: bool
    ) -> Engine:
        engine = Engine(
            client,
            self.queue,
            invoke,
            concurrency=self.concurrency,
            max=self.max,
            visibility_timeout_ms=self.visibility_timeout_ms,
            wait_ms=self.wait_ms,
            shutdown_grace=self.shutdown_grace,
            cancel_on_abandon=cancel,
            stats=self.stats,
        )
        with self._lock:
            self._engine = engine
            if self._stop_requested:
                engine.stop()
        return engine

    def _pending(self) -> set[int]:
        engine = self._engine
        return set() if engine is None else set(engine.unsettled.values())


class Consumer(_Base):
    """Leases events from ``queue`` and runs ``handler(event)`` on each, on a
    pool of ``concurrency`` threads. A handler that returns acks its event;
    one that raises nacks it with ``"ExcType: message"`` as its error.

    Args:
        client: the broker to consume from (its URL, token, CA and timeout are
            used; the consumer makes its own connections).
        queue: the queue's name.
        handler: called with each :class:`~event_broker.models.LeasedEvent`.
        concurrency: handlers at once (default 8).
        max: events per lease (default ``concurrency``); a lease never asks
            for more than the free handler slots.
        visibility_timeout_ms: the lease length; default the queue's (read
            once at start). Leases are extended every third of it while
            their handler runs.
        wait_ms: the long poll of each lease, 0 to 60000 (default 20000).
        shutdown_grace: seconds running handlers get to finish at shutdown.
        handle_signals: when ``run`` is called in the main thread, SIGTERM
            and SIGINT stop the consumer (a second one cuts the grace short).

    ``run()`` blocks until :meth:`stop` (or a signal) and the shutdown are
    done. A consumer runs once: make another to consume again.
    """

    def __init__(
        self,
        client: Client,
        queue: str,
        handler: Callable[[LeasedEvent], object],
        *,
        concurrency: int = 8,
        max: int | None = None,
        visibility_timeout_ms: int | None = None,
        wait_ms: int = 20_000,
        shutdown_grace: float = 30.0,
        handle_signals: bool = True,
    ) -> None:
        super().__init__(
            queue,
            concurrency=concurrency,
            max=max,
            visibility_timeout_ms=visibility_timeout_ms,
            wait_ms=wait_ms,
            shutdown_grace=shutdown_grace,
        )
        if inspect.iscoroutinefunction(handler):
            raise TypeError("the handler is a coroutine function: use AsyncConsumer")
        self.client = client
        self.handler = handler
        self.handle_signals = handle_signals
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        """Consume until stopped; returns after the shutdown. Raises a
        :class:`~event_broker.errors.BrokerError` that waiting cannot mend
        (a bad token, a bad queue name) after shutting down."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        previous: dict[signal.Signals, Any] = {}
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            # Through the loop, which wakes on a signal; a plain signal.signal
            # handler would only run once the loop woke for another reason.
            for sig in _SIGNALS:
                previous[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, self.stop)
        workers = _Workers(self.concurrency, f"event-broker-{self.queue}")
        client = AsyncClient._from_settings(self.client._settings)

        async def invoke(event: LeasedEvent) -> object:
            return await asyncio.wrap_future(workers.submit(self.handler, event))

        try:
            await self._engine_for(client, invoke, cancel=False).run()
        finally:
            workers.shutdown()
            await client.close()
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

    def pending_ids(self) -> set[int]:
        """Ids of the events this consumer leased and has not settled yet
        (running, waiting, or with an ack or nack not answered). Safe from any
        thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return set()

        async def snapshot() -> set[int]:
            return self._pending()

        try:
            return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(timeout=5)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return set()


class AsyncConsumer(_Base):
    """The asyncio twin of :class:`Consumer`: ``handler`` is a coroutine
    function, run on the loop of ``await consumer.run()``; handlers still
    running after the shutdown grace are cancelled (and their events nacked).

    Takes the same options as :class:`Consumer`, with an
    :class:`~event_broker.AsyncClient` (whose settings it copies), and
    ``handle_signals`` defaulting to false: with it, SIGTERM and SIGINT stop
    the consumer (Unix event loops only).
    """

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        handler: Callable[[LeasedEvent], Awaitable[object] | object],
        *,
        concurrency: int = 8,
        max: int | None = None,
        visibility_timeout_ms: int | None = None,
        wait_ms: int = 20_000,
        shutdown_grace: float = 30.0,
        handle_signals: bool = False,
    ) -> None:
        super().__init__(
            queue,
            concurrency=concurrency,
            max=max,
            visibility_timeout_ms=visibility_timeout_ms,
            wait_ms=wait_ms,
            shutdown_grace=shutdown_grace,
        )
        self.client = client
        self.handler = handler
        self.handle_signals = handle_signals

    async def run(self) -> None:
        """Consume until :meth:`stop`; returns after the shutdown."""
        loop = asyncio.get_running_loop()
        # Its own connections: the long poll and the acks must not queue
        # behind the caller's requests, nor close with its client.
        client = AsyncClient._from_settings(self.client._settings)
        installed = []
        if self.handle_signals:
            for sig in _SIGNALS:
                try:
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        async def invoke(event: LeasedEvent) -> object:
            # A plain function is called on the loop too: it must not block.
            result = self.handler(event)
            return await result if inspect.isawaitable(result) else result

        try:
            await self._engine_for(client, invoke, cancel=True).run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await client.close()

    def pending_ids(self) -> set[int]:
        """Ids of the events this consumer leased and has not settled yet.
        Call it from the consumer's event loop."""
        return self._pending()
