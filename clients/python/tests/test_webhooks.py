"""Webhook verification: the same verdicts as the standardwebhooks package on
the same inputs, and a real signed delivery from the broker."""

from __future__ import annotations

import base64
import http.server
import json
import os
import queue as queue_module
import threading
import time
from collections.abc import Iterator
from datetime import UTC

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError

from event_broker import Client
from event_broker.webhooks import WebhookVerificationError, sign, verify

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
BODY = b'{"id":7,"queue":"orders","payload":{"order":42}}'


def headers_for(secret: str, body: bytes, *, msg_id: str = "evt_7", at: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def cases() -> list[tuple[str, str, dict[str, str], bytes]]:
    now = int(time.time())
    good = headers_for(SECRET, BODY)
    rotated = {**good, "webhook-signature": f"{headers_for(OTHER, BODY)['webhook-signature']} {good['webhook-signature']}"}
    return [
        ("valid", SECRET, good, BODY),
        ("secret without its prefix", SECRET.removeprefix("whsec_"), good, BODY),
        ("header names in another case", SECRET, {k.title(): v for k, v in good.items()}, BODY),
        ("one of several signatures", SECRET, rotated, BODY),
        ("just inside the tolerance", SECRET, headers_for(SECRET, BODY, at=now - 290), BODY),
        ("a little in the future", SECRET, headers_for(SECRET, BODY, at=now + 290), BODY),
        ("wrong secret", OTHER, good, BODY),
        ("body changed", SECRET, good, BODY.replace(b"42", b"43")),
        ("body re-encoded", SECRET, good, json.dumps(json.loads(BODY)).encode()),
        ("id changed", SECRET, {**good, "webhook-id": "evt_8"}, BODY),
        ("timestamp changed", SECRET, {**good, "webhook-timestamp": str(now + 1)}, BODY),
        ("too old", SECRET, headers_for(SECRET, BODY, at=now - 400), BODY),
        ("too new", SECRET, headers_for(SECRET, BODY, at=now + 400), BODY),
        ("not a number", SECRET, {**good, "webhook-timestamp": "yesterday"}, BODY),
        ("no signature header", SECRET, {k: v for k, v in good.items() if k != "webhook-signature"}, BODY),
        ("no id header", SECRET, {k: v for k, v in good.items() if k != "webhook-id"}, BODY),
        ("no timestamp header", SECRET, {k: v for k, v in good.items() if k != "webhook-timestamp"}, BODY),
        ("another version", SECRET, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, BODY),
        ("signature without version", SECRET, {**good, "webhook-signature": good["webhook-signature"][3:]}, BODY),
        ("empty signature", SECRET, {**good, "webhook-signature": ""}, BODY),
        ("truncated signature", SECRET, {**good, "webhook-signature": good["webhook-signature"][:-4]}, BODY),
        ("empty body signed", SECRET, headers_for(SECRET, b""), b""),
        ("binary body", SECRET, headers_for(SECRET, b"\xff\x00\xfe"), b"\xff\x00\xfe"),
    ]


def ours(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        verify(secret, headers, body)
        return True
    except WebhookVerificationError:
        return False


def reference(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
        return True
    except ReferenceError:
        return False


@pytest.mark.parametrize("name", [c[0] for c in cases()])
def test_same_verdict_as_the_reference(name: str) -> None:
    _, secret, headers, body = next(c for c in cases() if c[0] == name)
    expected = reference(secret, headers, body)
    assert ours(secret, headers, body) == expected
    # The cases are built to cover both verdicts.
    should_pass = name in {
        "valid",
        "secret without its prefix",
        "header names in another case",
        "one of several signatures",
        "just inside the tolerance",
        "a little in the future",
        "empty body signed",
        "binary body",
    }
    assert expected == should_pass


def test_sign_matches_the_reference() -> None:
    from datetime import datetime

    at = 1_700_000_000
    assert sign(SECRET, "evt_1", at, BODY) == Webhook(SECRET).sign("evt_1", datetime.fromtimestamp(at, UTC), BODY)


def test_tolerance_and_now_are_parameters() -> None:
    headers = headers_for(SECRET, BODY, at=1_000_000)
    verify(SECRET, headers, BODY, now=1_000_100)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, BODY, now=1_000_100, tolerance_s=60)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, BODY)  # 1970 is long past


def test_a_fractional_timestamp_is_refused() -> None:
    # Where we differ from the reference on purpose: it takes "123.5" and
    # signs "123", a timestamp other than the one sent.
    headers = headers_for(SECRET, BODY)
    headers["webhook-timestamp"] += ".0"
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, BODY)


# --- a real delivery --------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: queue_module.Queue[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.put((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue_module.Queue[tuple[dict[str, str], bytes]]]]:
    received: queue_module.Queue[tuple[dict[str, str], bytes]] = queue_module.Queue()
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_delivery_of_the_broker_verifies(
    client: Client, queue: str, receiver: tuple[str, queue_module.Queue[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    assert client.put_subscription(queue, url, concurrency=1, timeout_ms=5000, secret=secret).signed
    try:
        event_id = client.enqueue(queue, {"order": 42}, headers={"trace": "t-1"}).id
        headers, body = received.get(timeout=10)
    finally:
        client.delete_subscription(queue)
    assert headers["webhook-id"] == f"evt_{event_id}"
    verify(secret, headers, body)
    assert reference(secret, headers, body)
    delivered = json.loads(body)
    assert (delivered["id"], delivered["payload"], delivered["headers"]) == (event_id, {"order": 42}, {"trace": "t-1"})
    assert not ours(secret, headers, body + b" ")
    assert not ours(OTHER, headers, body)
    # The 2xx answer acked it.
    deadline = time.monotonic() + 5
    while client.get_queue(queue).acked_total < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get_queue(queue).acked_total == 1
