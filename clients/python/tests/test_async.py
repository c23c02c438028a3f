"""The asyncio client and AsyncConsumer against a real broker, each test
running its own event loop with asyncio.run."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import Broker, free_port

from event_broker import (
    AsyncClient,
    AsyncConsumer,
    ConnectionFailed,
    EnqueuedBatch,
    InvalidRequest,
    LeasedEvent,
    LeaseLost,
    NewEvent,
    NotFound,
    QueueFull,
)


def test_async_client_round_trips(broker: Broker, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(broker.url) as client:
            assert (await client.health()).status == "ok"
            assert (await client.ready()).status == "ready"
            made = await client.put_queue_settings(queue, max_retries=0, max_size=3)
            assert made.settings.max_size == 3
            one = await client.enqueue(queue, {"a": 1}, priority=9, idempotency_key="k")
            assert (await client.enqueue(queue, {"a": 1}, idempotency_key="k")).duplicate
            batch = await client.enqueue_events(queue, [NewEvent(2), NewEvent(3, group="g")])
            assert isinstance(batch, EnqueuedBatch) and len(batch.ids) == 2
            with pytest.raises(QueueFull) as full:
                await client.enqueue(queue, 4)
            assert full.value.retry_after == 1.0

            leased = await client.lease_events(queue, max=3, wait_ms=1000)
            # Priority 9 first; then groups take turns, so the order of the rest is the broker's.
            assert leased[0].id == one.id and sorted(e.id for e in leased[1:]) == batch.ids
            assert (await client.extend_leases(queue, [e.receipt for e in leased])).ok
            assert (await client.ack_events(queue, leased[0].receipt)).ok
            with pytest.raises(LeaseLost):
                await client.ack_events(queue, leased[0].receipt)
            assert (await client.nack_events(queue, [e.receipt for e in leased[1:]], error="e")).ok
            page = await client.list_dead_letters(queue)
            assert sorted(e.id for e in page.events) == batch.ids
            assert await client.redrive_dead_letters(queue, ids=[batch.ids[0]]) == 1
            assert await client.purge_dead_letters(queue, all=True) == 1
            browsed = await client.browse_events(queue)
            assert [e.id for e in browsed.events] == [batch.ids[0]]
            assert (await client.get_event(queue, batch.ids[0])).payload == 2
            await client.cancel_event(queue, batch.ids[0])
            assert (await client.pause_queue(queue)).paused
            assert not (await client.resume_queue(queue)).paused
            limited = await client.patch_queue_settings(queue, max_size=50, max_in_flight=5)
            assert (limited.settings.max_size, limited.settings.max_in_flight) == (50, 5)
            # null keeps max_size, and names no limit for max_in_flight.
            unlimited = await client.patch_queue_settings(queue, max_size=None, max_in_flight=None)
            assert (unlimited.settings.max_size, unlimited.settings.max_in_flight) == (50, None)
            sub = await client.put_subscription(queue, "http://127.0.0.1:9/x", concurrency=1)
            assert await client.get_subscription(queue) == sub
            await client.delete_subscription(queue)
            assert queue in [q.name for q in await client.list_queues()]
            assert (await client.status()).version
            assert "event_broker" in await client.metrics()
            assert "paths" in await client.openapi()
            assert (await client.openapi30())["openapi"] == "3.0.3"
            assert (await client.create_checkpoint()).segments >= 1
            await client.delete_queue(queue)
            with pytest.raises(NotFound):
                await client.get_queue(queue)
            with pytest.raises(InvalidRequest) as bad:
                await client.get_queue("bad/name!")
            assert bad.value.field == "queue"
        async with AsyncClient(f"http://127.0.0.1:{free_port()}") as down:
            with pytest.raises(ConnectionFailed):
                await down.health()

    asyncio.run(main())


def test_async_consumer_acks_nacks_and_keeps_groups_apart(broker: Broker, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(broker.url) as client:
            await client.put_queue_settings(queue, max_retries=0, group_concurrency=10)
            events = [NewEvent(i, group=f"g{i % 3}") for i in range(30)]
            events.append(NewEvent("boom"))
            await client.enqueue_batch(queue, events)
            handled: list[int] = []
            running: dict[str, int] = {}
            overlap = False

            async def handle(event: LeasedEvent) -> None:
                nonlocal overlap
                if event.payload == "boom":
                    raise KeyError("missing")
                group = event.group or ""
                running[group] = running.get(group, 0) + 1
                overlap |= running[group] > 1
                await asyncio.sleep(0.01)
                running[group] -= 1
                handled.append(event.payload)

            consumer = AsyncConsumer(client, queue, handle, concurrency=6, wait_ms=200)
            task = asyncio.create_task(consumer.run())
            deadline = time.monotonic() + 15
            while (consumer.stats.acked < 30 or consumer.stats.nacked < 1) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            consumer.stop()
            await asyncio.wait_for(task, timeout=15)
            assert sorted(handled) == list(range(30)) and not overlap
            dead = (await client.list_dead_letters(queue)).events
            assert [(e.payload, e.last_error) for e in dead] == [("boom", "KeyError: 'missing'")]
            q = await client.get_queue(queue)
            assert (q.ready, q.in_flight) == (0, 0)

    asyncio.run(main())


def test_async_consumer_keeps_a_slow_lease_and_cancels_past_the_grace(broker: Broker, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(broker.url) as client:
            await client.put_queue_settings(queue, visibility_timeout_ms=600)
            slow, stuck = (await client.enqueue_batch(queue, [NewEvent("slow"), NewEvent("stuck")])).ids
            cancelled = asyncio.Event()

            async def handle(event: LeasedEvent) -> None:
                if event.payload == "slow":
                    await asyncio.sleep(2.0)  # over three visibility timeouts
                    return
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise

            consumer = AsyncConsumer(client, queue, handle, wait_ms=100, shutdown_grace=0.5)
            task = asyncio.create_task(consumer.run())
            deadline = time.monotonic() + 10
            while consumer.stats.acked < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert consumer.stats.acked == 1 and consumer.stats.lease_lost == 0
            assert consumer.pending_ids() == {stuck}
            consumer.stop()
            await asyncio.wait_for(task, timeout=10)
            assert cancelled.is_set()
            with pytest.raises(NotFound):
                await client.get_event(queue, slow)
            event = await client.get_event(queue, stuck)
            assert (event.state, event.attempt) == ("ready", 1)
            assert event.last_error == "consumer stopped before its handler finished"

    asyncio.run(main())


def test_events_waiting_for_their_group_are_nacked_at_shutdown(broker: Broker, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(broker.url) as client:
            await client.put_queue_settings(queue, group_concurrency=10)
            first, *rest = (await client.enqueue_batch(queue, [NewEvent(i, group="g") for i in range(3)])).ids
            started = asyncio.Event()

            async def handle(event: LeasedEvent) -> None:
                started.set()
                await asyncio.sleep(0.5)

            consumer = AsyncConsumer(client, queue, handle, wait_ms=100, shutdown_grace=5)
            task = asyncio.create_task(consumer.run())
            await asyncio.wait_for(started.wait(), timeout=10)
            assert consumer.pending_ids() == {first, *rest}  # two of them wait for the first
            assert consumer.stats.held_back == 2
            consumer.stop()
            await asyncio.wait_for(task, timeout=10)
            with pytest.raises(NotFound):
                await client.get_event(queue, first)  # it finished within the grace: acked
            for event_id in rest:
                event = await client.get_event(queue, event_id)
                assert (event.state, event.last_error) == ("ready", "consumer stopped before handling it")

    asyncio.run(main())
