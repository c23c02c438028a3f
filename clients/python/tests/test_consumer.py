"""The thread-pool Consumer against a real broker: acks and nacks, leases
kept alive, groups, shutdown by SIGTERM, and a broker killed with SIGKILL."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Broker, wait_until

from event_broker import Client, ConnectionFailed, Consumer, LeasedEvent, NewEvent, NotFound, Unavailable

HERE = Path(__file__).resolve().parent


def start(consumer: Consumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, name="consumer")
    thread.start()
    return thread


def stop(consumer: Consumer, thread: threading.Thread) -> None:
    consumer.stop()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the consumer did not stop"


def test_handles_and_acks_every_event(client: Client, queue: str) -> None:
    ids = client.enqueue_batch(queue, [NewEvent(i) for i in range(200)]).ids
    seen: list[int] = []
    lock = threading.Lock()
    most_at_once = 0
    running = 0

    def handle(event: LeasedEvent) -> None:
        nonlocal running, most_at_once
        with lock:
            running += 1
            most_at_once = max(most_at_once, running)
        time.sleep(0.002)
        with lock:
            running -= 1
            seen.append(event.id)

    consumer = Consumer(client, queue, handle, concurrency=4, wait_ms=500)
    thread = start(consumer)
    wait_until(lambda: len(seen) >= 200, what="200 events handled")
    stop(consumer, thread)
    assert sorted(seen) == ids
    assert most_at_once <= 4
    assert consumer.stats.handled == 200 and consumer.stats.acked == 200
    queue_now = client.get_queue(queue)
    assert (queue_now.ready, queue_now.in_flight, queue_now.acked_total) == (0, 0, 200)


def test_a_handler_that_raises_nacks_with_its_error(client: Client, queue: str) -> None:
    client.put_queue_settings(queue, max_retries=0)
    ok, bad, long = client.enqueue_batch(queue, [NewEvent("ok"), NewEvent("bad"), NewEvent("long")]).ids

    def handle(event: LeasedEvent) -> None:
        if event.payload == "bad":
            raise ValueError("no such customer")
        if event.payload == "long":
            raise RuntimeError("x" * 5000)

    consumer = Consumer(client, queue, handle, wait_ms=200)
    thread = start(consumer)
    wait_until(lambda: client.get_queue(queue).dead == 2, what="two dead events")
    stop(consumer, thread)
    dead = {e.id: e for e in client.list_dead_letters(queue).events}
    assert dead[bad].last_error == "ValueError: no such customer"
    last = dead[long].last_error
    assert last is not None and len(last) == 4096 and last.startswith("RuntimeError: xxx")
    with pytest.raises(NotFound):
        client.get_event(queue, ok)
    assert consumer.stats.failed == 2 and consumer.stats.nacked == 2


def test_a_nacked_event_shows_its_error_when_browsed(client: Client, queue: str) -> None:
    client.put_queue_settings(queue, base_backoff_ms=60_000)
    event_id = client.enqueue(queue, "flaky").id
    calls = []

    def handle(event: LeasedEvent) -> None:
        calls.append(event.id)
        raise ConnectionError("downstream down")

    consumer = Consumer(client, queue, handle, wait_ms=200)
    thread = start(consumer)
    wait_until(lambda: client.get_event(queue, event_id).last_error is not None, what="the nack")
    stop(consumer, thread)
    event = client.get_event(queue, event_id)
    assert (event.state, event.last_error, event.attempt) == ("delayed", "ConnectionError: downstream down", 1)
    assert calls == [event_id]


def test_a_handler_running_three_visibility_timeouts_keeps_its_lease(client: Client, queue: str) -> None:
    client.put_queue_settings(queue, visibility_timeout_ms=1000)
    event_id = client.enqueue(queue, "slow").id
    calls: list[tuple[int, int]] = []

    def handle(event: LeasedEvent) -> None:
        calls.append((event.id, event.attempt))
        time.sleep(3.2)

    # No visibility_timeout_ms: the consumer reads the queue's 1000 ms.
    consumer = Consumer(client, queue, handle, concurrency=2, wait_ms=200)
    thread = start(consumer)
    wait_until(lambda: consumer.stats.acked == 1, timeout=10, what="the ack")
    time.sleep(1.2)  # a lost lease would have been delivered again by now
    stop(consumer, thread)
    assert calls == [(event_id, 1)]
    assert consumer.stats.lease_lost == 0
    q = client.get_queue(queue)
    assert (q.ready, q.delayed, q.in_flight, q.dead, q.acked_total) == (0, 0, 0, 0, 1)
    assert client.browse_events(queue).events == []


def test_one_group_never_runs_two_events_at_once(client: Client, queue: str) -> None:
    # group_concurrency lets the broker hand out several events of a group
    # at once: the consumer itself must hold the group's order.
    client.put_queue_settings(queue, group_concurrency=10)
    events = [NewEvent({"group": g, "n": n}, group=g) for n in range(5) for g in ("a", "b")]
    client.enqueue_batch(queue, events)
    lock = threading.Lock()
    running: collections.Counter[str] = collections.Counter()
    overlaps: list[str] = []
    order: dict[str, list[int]] = {"a": [], "b": []}
    most_at_once = 0

    def handle(event: LeasedEvent) -> None:
        nonlocal most_at_once
        group = event.payload["group"]
        with lock:
            running[group] += 1
            if running[group] > 1:
                overlaps.append(group)
            most_at_once = max(most_at_once, sum(running.values()))
            order[group].append(event.payload["n"])
        time.sleep(0.1)
        with lock:
            running[group] -= 1

    consumer = Consumer(client, queue, handle, concurrency=8, wait_ms=200)
    thread = start(consumer)
    wait_until(lambda: consumer.stats.acked == 10, what="10 acks")
    stop(consumer, thread)
    assert overlaps == []
    assert most_at_once == 2  # the two groups did run side by side
    assert sorted(order["a"]) == list(range(5)) and sorted(order["b"]) == list(range(5))
    assert consumer.stats.leased == 10
    assert consumer.stats.held_back > 0  # the broker did hand out a group's events together


def test_sigterm_lets_running_handlers_finish_and_loses_nothing(client: Client, queue: str, tmp_path: Path) -> None:
    ids = client.enqueue_batch(queue, [NewEvent(i) for i in range(10)]).ids
    log = tmp_path / "consumer.log"
    log.touch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "consumer_process.py"), client.url, queue, str(log)], env=env
    )
    try:

        def lines(kind: str) -> set[int]:
            return {int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(kind)}

        wait_until(lambda: len(lines("start")) == 4, timeout=15, what="four handlers running")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    started, done = lines("start"), lines("done")
    assert started == done and len(done) >= 4  # every handler that began finished
    assert log.read_text().splitlines()[-1] == "exit"
    for event_id in done:
        with pytest.raises(NotFound):
            client.get_event(queue, event_id)  # acked
    rest = client.browse_events(queue).events
    assert sorted(e.id for e in rest) == sorted(set(ids) - done)
    assert all(e.state == "ready" for e in rest)


def _produce(url: str, queue: str, n: int, acked: dict[int, int], stop: threading.Event) -> None:
    """Enqueue n events, retrying through the broker's death; record the
    id of each the broker acknowledged."""
    with Client(url, timeout=2) as producer:
        for i in range(n):
            while not stop.is_set():
                try:
                    acked[i] = producer.enqueue(queue, i, idempotency_key=f"event-{i}").id
                    break
                except (ConnectionFailed, Unavailable):
                    time.sleep(0.05)
            time.sleep(0.004)


def test_the_consumer_carries_on_through_a_kill_9_of_the_broker(own_broker: Broker) -> None:
    own_broker.start()
    queue = "kill-9"
    with Client(own_broker.url, timeout=5) as client:
        client.put_queue_settings(queue, visibility_timeout_ms=5000)
        handled: collections.Counter[int] = collections.Counter()
        lock = threading.Lock()

        def handle(event: LeasedEvent) -> None:
            time.sleep(0.01)
            with lock:
                handled[event.id] += 1

        acked: dict[int, int] = {}
        stop_producing = threading.Event()
        producer = threading.Thread(target=_produce, args=(own_broker.url, queue, 400, acked, stop_producing))
        consumer = Consumer(client, queue, handle, concurrency=8, wait_ms=1000)
        consumer_thread = start(consumer)
        producer.start()
        try:
            wait_until(lambda: len(handled) >= 100, timeout=20, what="100 events handled")
            in_flight_before = consumer.pending_ids()
            own_broker.kill()
            # Whatever was leased before the kill and not yet settled is
            # still unsettled now: nothing can settle while the broker is dead.
            in_flight_after = consumer.pending_ids()
            time.sleep(0.5)
            own_broker.start()
            producer.join(timeout=30)
            assert not producer.is_alive()
            wait_until(
                lambda: set(acked.values()) <= set(handled), timeout=30, what="every acknowledged event handled"
            )
            wait_until(lambda: not consumer.pending_ids(), timeout=15, what="every lease settled")
        finally:
            stop_producing.set()
            stop(consumer, consumer_thread)

        assert len(acked) == 400
        twice = {event_id for event_id, n in handled.items() if n > 1}
        assert twice <= in_flight_before | in_flight_after, (twice, in_flight_before, in_flight_after)
        q = client.get_queue(queue)
        assert (q.ready, q.in_flight, q.delayed) == (0, 0, 0)

