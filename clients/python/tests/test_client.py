"""The blocking client against a real broker: every operation round-trips,
and failures come out as the typed errors."""

from __future__ import annotations

import http.server
import inspect
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from conftest import Broker

from event_broker import (
    UNSET,
    AsyncClient,
    BadAnswer,
    Client,
    Conflict,
    ConnectionFailed,
    Enqueued,
    EnqueuedBatch,
    InvalidRequest,
    LeaseLost,
    NewEvent,
    NotFound,
    QueueFull,
    Unauthorized,
)

OPERATION_IDS = [
    "metrics", "health", "ready", "status", "openapi", "openapi30", "createCheckpoint", "listQueues",
    "getQueue", "putQueueSettings", "patchQueueSettings", "deleteQueue", "pauseQueue", "resumeQueue",
    "enqueueEvents", "leaseEvents", "ackEvents", "nackEvents", "extendLeases", "listDeadLetters",
    "redriveDeadLetters", "purgeDeadLetters", "browseEvents", "getEvent", "cancelEvent", "putSubscription",
    "getSubscription", "deleteSubscription",
]  # fmt: skip


def snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


def test_every_operation_of_the_openapi_document_is_a_method_of_both_clients(client: Client) -> None:
    document = client.openapi()
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values() if "operationId" in op}
    assert ids == set(OPERATION_IDS)
    for operation_id in ids:
        name = snake(operation_id)
        assert callable(getattr(Client, name)), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test_enqueue_one_with_every_field_and_a_duplicate(client: Client, queue: str) -> None:
    first = client.enqueue(
        queue,
        {"order": 42, "text": "héllo"},
        delay_ms=0,
        priority=7,
        group="customer-1",
        ttl_ms=60_000,
        headers={"source": "web"},
        idempotency_key="order-42",
    )
    assert isinstance(first, Enqueued) and not first.duplicate
    assert first.expires_at is not None and first.expires_at > datetime.now(UTC)
    again = client.enqueue_events(queue, NewEvent({"order": 42}, idempotency_key="order-42"))
    assert again == Enqueued(first.id, True, first.expires_at)

    event = client.get_event(queue, first.id)
    assert event.payload == {"order": 42, "text": "héllo"}
    assert (event.priority, event.group, event.headers, event.state) == (7, "customer-1", {"source": "web"}, "ready")
    assert event.expires_at == first.expires_at


def test_enqueue_a_batch_with_delays(client: Client, queue: str) -> None:
    batch = client.enqueue_events(
        queue, [NewEvent(1), NewEvent(None, delay_ms=60_000), NewEvent([1, 2], ttl_ms=5_000)]
    )
    assert isinstance(batch, EnqueuedBatch)
    assert len(batch.ids) == 3 and batch.ids == sorted(batch.ids)
    assert batch.expires_at[0] is None and batch.expires_at[1] is None and batch.expires_at[2] is not None
    delayed = client.browse_events(queue, state="delayed")
    assert [e.id for e in delayed.events] == [batch.ids[1]]
    assert delayed.events[0].payload is None and delayed.events[0].has_payload
    plain = client.enqueue_batch(queue, [NewEvent("a"), NewEvent("b")])
    assert plain.expires_at == [None, None]
    assert client.get_queue(queue).enqueued_total == 5


def test_lease_extend_nack_ack(client: Client, queue: str) -> None:
    ids = client.enqueue_batch(queue, [NewEvent(i) for i in range(3)]).ids
    leased = client.lease_events(queue, max=3, visibility_timeout_ms=10_000, wait_ms=1000)
    assert [e.id for e in leased] == ids and all(e.attempt == 1 for e in leased)
    assert [e.payload for e in leased] == [0, 1, 2]
    assert client.lease_events(queue, max=1) == []

    before = client.get_event(queue, ids[0]).visible_at
    extended = client.extend_leases(queue, [leased[0].receipt], visibility_timeout_ms=60_000)
    assert extended.ok
    after = client.get_event(queue, ids[0]).visible_at
    assert before is not None and after is not None and after > before

    nacked = client.nack_events(queue, [leased[1].receipt], delay_ms=60_000, error="downstream 503")
    assert nacked.ok
    event = client.get_event(queue, ids[1])
    assert (event.state, event.last_error) == ("delayed", "downstream 503")

    acked = client.ack_events(queue, [leased[0].receipt, leased[2].receipt])
    assert acked.ok and len(acked.results) == 2
    with pytest.raises(NotFound):
        client.get_event(queue, ids[0])
    with pytest.raises(LeaseLost) as lost:
        client.ack_events(queue, leased[0].receipt)
    assert lost.value.status == 409 and [r.status for r in lost.value.results] == ["lease_lost"]
    # A mix answers 200 with a result per receipt.
    again = client.enqueue(queue, "x")
    fresh = client.lease_events(queue)
    assert [e.id for e in fresh] == [again.id]
    mixed = client.ack_events(queue, [fresh[0].receipt, leased[2].receipt])
    assert [r.status for r in mixed.results] == ["ok", "lease_lost"] and not mixed.ok
    assert mixed.failed == [mixed.results[1]]


def test_a_long_poll_waits_for_an_event(client: Client, queue: str) -> None:
    def later() -> None:
        time.sleep(0.3)
        with Client(client.url) as other:
            other.enqueue(queue, "late")

    threading.Thread(target=later).start()
    started = time.monotonic()
    leased = client.lease_events(queue, wait_ms=5000)
    assert [e.payload for e in leased] == ["late"]
    assert 0.2 < time.monotonic() - started < 4


def test_settings_put_patch_pause_resume_delete(client: Client, queue: str) -> None:
    made = client.put_queue_settings(queue, max_retries=3, visibility_timeout_ms=60_000, message_ttl_ms=10_000)
    assert made.name == queue and made.ready == 0
    assert (made.settings.max_retries, made.settings.visibility_timeout_ms) == (3, 60_000)
    assert made.settings.message_ttl_ms == 10_000
    assert queue in [q.name for q in client.list_queues()]

    patched = client.patch_queue_settings(queue, max_size=5000, message_ttl_ms=None)
    assert patched.settings.max_size == 5000 and patched.settings.max_retries == 3
    assert patched.settings.message_ttl_ms is None
    kept = client.patch_queue_settings(queue, max_retries=UNSET, backoff_multiplier=3.5)
    assert kept.settings.max_retries == 3 and kept.settings.backoff_multiplier == 3.5

    assert client.pause_queue(queue).paused
    client.enqueue(queue, "while paused")
    assert client.lease_events(queue) == []
    assert not client.resume_queue(queue).paused
    assert len(client.lease_events(queue)) == 1

    # A PUT replaces everything: what it leaves out is the broker's again.
    replaced = client.put_queue_settings(queue, group_concurrency=4)
    assert replaced.settings.max_retries != 3 and replaced.settings.group_concurrency == 4

    client.delete_queue(queue)
    with pytest.raises(NotFound):
        client.get_queue(queue)
    with pytest.raises(NotFound):
        client.delete_queue(queue)
    with pytest.raises(NotFound):
        client.pause_queue(queue)


def test_browse_get_cancel(client: Client, queue: str) -> None:
    ids = client.enqueue_batch(queue, [NewEvent({"n": i}, headers={"i": str(i)}) for i in range(5)]).ids
    client.lease_events(queue, max=1)
    first = client.browse_events(queue, limit=2)
    assert [e.id for e in first.events] == ids[:2] and first.next == ids[1]
    assert first.events[0].state == "in_flight" and first.events[1].state == "ready"
    rest = client.browse_events(queue, after=first.next, payload=False)
    assert [e.id for e in rest.events] == ids[2:] and rest.next is None
    assert not rest.events[0].has_payload and rest.events[0].headers == {"i": "2"}
    assert [e.id for e in client.browse_events(queue, state="in_flight").events] == [ids[0]]

    assert client.get_event(queue, ids[3]).payload == {"n": 3}
    client.cancel_event(queue, ids[3])
    with pytest.raises(NotFound):
        client.get_event(queue, ids[3])
    with pytest.raises(NotFound):
        client.cancel_event(queue, ids[3])


def test_dead_letters_list_redrive_purge(client: Client, queue: str) -> None:
    client.put_queue_settings(queue, max_retries=0)
    ids = client.enqueue_batch(queue, [NewEvent(i, priority=i, group=f"g{i}") for i in range(3)]).ids
    leased = client.lease_events(queue, max=3)
    assert len(leased) == 3
    client.nack_events(queue, [e.receipt for e in leased], error="poison")
    page = client.list_dead_letters(queue)
    assert sorted(e.id for e in page.events) == ids and page.next is None
    dead = page.events[0]
    assert (dead.attempts, dead.last_error, dead.group) == (1, "poison", "g0")
    assert client.list_dead_letters(queue, limit=1).next == ids[0]
    assert [e.id for e in client.list_dead_letters(queue, after=ids[0]).events] == ids[1:]

    with pytest.raises(ValueError):
        client.redrive_dead_letters(queue)  # neither ids nor all: refused before sending
    assert client.redrive_dead_letters(queue, ids=[ids[0]]) == 1
    assert client.get_event(queue, ids[0]).state == "ready"
    assert client.purge_dead_letters(queue, ids=[ids[1]]) == 1
    assert client.redrive_dead_letters(queue, all=True) == 1
    assert client.list_dead_letters(queue).events == []
    leased = client.lease_events(queue, max=3)
    client.nack_events(queue, [e.receipt for e in leased])
    assert client.purge_dead_letters(queue, all=True) == 2
    assert client.get_queue(queue).dead == 0


def test_subscription_put_get_delete(client: Client, queue: str) -> None:
    made = client.put_subscription(queue, "http://127.0.0.1:9/hook", concurrency=1, timeout_ms=1000)
    assert (made.queue, made.url, made.concurrency, made.timeout_ms, made.signed) == (
        queue, "http://127.0.0.1:9/hook", 1, 1000, False,
    )  # fmt: skip
    assert client.get_subscription(queue) == made
    signed = client.put_subscription(queue, "http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32)
    assert signed.signed
    client.delete_subscription(queue)
    with pytest.raises(NotFound):
        client.get_subscription(queue)
    with pytest.raises(NotFound):
        client.delete_subscription(queue)


def test_operations(client: Client, queue: str) -> None:
    assert client.health().status == "ok"
    assert client.ready().status == "ready" and client.ready().ready
    client.enqueue(queue, 1)
    status = client.status()
    assert status.version and status.wal.failure is None and status.workers >= 0
    assert queue in [q.name for q in status.queues]
    assert status.config["BIND_ADDR"] == "127.0.0.1"
    assert "event_broker_" in client.metrics()
    assert client.openapi()["openapi"].startswith("3.1")
    assert client.openapi30()["openapi"] == "3.0.3"
    checkpoint = client.create_checkpoint(queue)
    assert checkpoint.path == f"checkpoints/{queue}" and checkpoint.segments >= 1 and checkpoint.bytes > 0
    with pytest.raises(Conflict):
        client.create_checkpoint(queue)
    assert client.create_checkpoint().path.startswith("checkpoints/")


# --- errors ---------------------------------------------------------------------------


def test_a_bad_queue_name_is_invalid_request_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidRequest) as e:
        client.enqueue("no spaces allowed", 1)
    assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_request", "queue")


def test_a_bad_field_of_a_batch_is_named(client: Client, queue: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        client.enqueue_batch(queue, [NewEvent(1), NewEvent(2, delay_ms=-1)])
    assert e.value.field == "events[1].delay_ms"
    with pytest.raises(InvalidRequest) as e2:
        client.lease_events(queue, max=0)
    assert e2.value.field == "max"
    with pytest.raises(InvalidRequest) as e3:
        client.browse_events(queue, limit=0)
    assert e3.value.field == "limit"


def test_a_full_queue_is_queue_full_with_retry_after(client: Client, queue: str) -> None:
    client.put_queue_settings(queue, max_size=1)
    client.enqueue(queue, 1)
    with pytest.raises(QueueFull) as e:
        client.enqueue(queue, 2)
    assert (e.value.status, e.value.code, e.value.retry_after) == (429, "queue_full", 1.0)


def test_retries_wait_out_a_full_queue_when_asked(broker: Broker, client: Client, queue: str) -> None:
    client.put_queue_settings(queue, max_size=1)
    client.enqueue(queue, 1)
    leased = client.lease_events(queue)

    def drain() -> None:
        time.sleep(0.3)
        client.ack_events(queue, leased[0].receipt)

    threading.Thread(target=drain).start()
    with Client(broker.url, retries=3) as patient:
        started = time.monotonic()
        assert not patient.enqueue(queue, 2).duplicate
        assert time.monotonic() - started >= 0.9  # Retry-After: 1


def test_a_down_broker_is_connection_failed() -> None:
    from conftest import free_port

    with Client(f"http://127.0.0.1:{free_port()}", timeout=2) as nobody:
        with pytest.raises(ConnectionFailed) as e:
            nobody.health()
    assert e.value.status is None and e.value.code == "connection_failed"
    assert isinstance(e.value.__cause__, Exception)


class _Html(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>bad gateway</html>" if self.path.endswith("health") else b"not json"
        self.send_response(502 if self.path.endswith("health") else 200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_a_broker() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_answer_that_is_not_the_apis_json_is_bad_answer(not_a_broker: str) -> None:
    with Client(not_a_broker + "/api/") as c:
        with pytest.raises(BadAnswer) as e:
            c.health()
        assert e.value.status == 502
        with pytest.raises(BadAnswer) as e2:
            c.list_queues()
        assert e2.value.status == 200


@pytest.fixture(scope="module")
def token_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("token-broker"), BROKER_TOKEN="right-token")
    b.start()
    yield b
    b.stop()


def test_a_wrong_token_is_unauthorized(token_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(token_broker.url, token="wrong-token") as wrong:
        assert wrong.health().status == "ok"  # health needs no token
        with pytest.raises(Unauthorized) as e:
            wrong.list_queues()
        assert (e.value.status, e.value.code) == (401, "unauthorized")
    with Client(token_broker.url) as none:
        with pytest.raises(Unauthorized):
            none.status()
    with Client(token_broker.url, token="right-token") as right:
        assert right.list_queues() == []
    # The environment supplies what the arguments leave out.
    monkeypatch.setenv("EVENT_BROKER_URL", token_broker.url + "/api")
    monkeypatch.setenv("EVENT_BROKER_TOKEN", "right-token")
    with Client() as from_env:
        assert from_env.url == token_broker.url + "/api"
        assert from_env.list_queues() == []


def test_urls_with_and_without_api(broker: Broker) -> None:
    for url in (broker.url, broker.url + "/", broker.url + "/api", broker.url + "/api/"):
        with Client(url) as c:
            assert c.url == broker.url + "/api"
            assert c.health().status == "ok"
    with pytest.raises(ValueError):
        Client("ftp://example.com")


def test_rate_limited_carries_retry_after_and_is_waited_out(own_broker: Broker) -> None:
    from event_broker import Consumer, RateLimited

    own_broker.extra_env.update(ENABLE_RATE_LIMIT="true", RATE_LIMIT_MAX="4", RATE_LIMIT_WINDOW_MS="1000")
    own_broker.start()
    with Client(own_broker.url) as hasty:
        with pytest.raises(RateLimited) as e:
            for _ in range(10):
                hasty.list_queues()
        assert (e.value.status, e.value.code) == (429, "rate_limited")
        assert e.value.retry_after is not None and e.value.retry_after >= 0
    with Client(own_broker.url, retries=10) as patient:
        patient.enqueue_batch("limited", [NewEvent(i) for i in range(10)])
        handled: list[int] = []
        # The consumer backs off on 429 as well, and still gets through.
        consumer = Consumer(patient, "limited", lambda e: handled.append(e.payload), wait_ms=200)
        thread = threading.Thread(target=consumer.run)
        thread.start()
        deadline = time.monotonic() + 20
        while consumer.stats.acked < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.stop()
        thread.join()
        assert sorted(handled) == list(range(10)) and consumer.stats.acked == 10
        assert consumer.stats.backoffs > 0


