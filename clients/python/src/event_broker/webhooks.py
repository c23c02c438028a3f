"""Verify the broker's webhook deliveries (Standard Webhooks).

The broker signs each push with its subscription's secret::

    webhook-id: evt_<id>
    webhook-timestamp: <Unix seconds>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>

where the secret is ``whsec_`` followed by the base64 of the key. A receiver
calls :func:`verify` with the raw body bytes *before* parsing them: any
re-encoding of the JSON changes the bytes and breaks the signature.

Design: the checks follow the Standard Webhooks specification and its
reference implementation (the ``standardwebhooks`` package): all three
headers are required (looked up without regard to case), the timestamp
must be within ``tolerance_s`` of now either way (replay protection), the
signature header may hold several space-separated signatures (key
rotation) of which one must match, and signatures are compared in constant
time. One deliberate difference: the timestamp must be whole seconds,
digits only, as the specification writes it; the reference also takes a
fraction, and then signs a timestamp other than the one sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["WebhookVerificationError", "verify", "sign", "DEFAULT_TOLERANCE_S"]

#: How far a timestamp may be from now, either way, by default: five minutes.
DEFAULT_TOLERANCE_S = 300

_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The delivery is not authentic: a header is missing or malformed, the
    timestamp is outside the tolerance, or no signature matches."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret
        try:
            # Padding is added in case the secret was written without it
            # (extra padding is ignored), as the reference does.
            key = base64.b64decode(text + "==")
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"the webhook secret is not base64: {e}") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of a delivery: what the
    broker sends, and what tests of a receiver need."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Frameworks hand headers over in any case: look for the name without it.
        for key, found in headers.items():
            if key.lower() == name:
                value = found
                break
    if not value:
        raise WebhookVerificationError(f"missing the {name} header")
    return value


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check that a webhook delivery comes from the broker holding ``secret``.

    Args:
        secret: the subscription's secret, ``whsec_<base64>`` (or the raw key
            as bytes).
        headers: the request's headers (any mapping; names in any case).
        body: the request's body, exactly the bytes received.
        tolerance_s: how far ``webhook-timestamp`` may be from ``now``, either way.
        now: the current Unix time; default :func:`time.time`.

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is not
            whole seconds or is outside the tolerance, or no ``v1`` signature
            of the header matches.
        ValueError: the secret is not base64, or empty.
    """
    key = _key(secret)
    msg_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not timestamp_text.isascii() or not timestamp_text.isdigit():
        raise WebhookVerificationError(f"webhook-timestamp is not whole Unix seconds: {timestamp_text!r}")
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise WebhookVerificationError("the webhook-timestamp is too old")
    if timestamp > current + tolerance_s:
        raise WebhookVerificationError("the webhook-timestamp is too new")
    # Signed over the timestamp as sent, byte for byte.
    to_sign = f"{msg_id}.{timestamp_text}.".encode() + body
    expected = ("v1," + base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()).encode()
    # Every candidate is compared, so the time taken says nothing about which matched.
    matched = False
    for candidate in signatures.split(" "):
        if hmac.compare_digest(expected, candidate.encode()):
            matched = True
    if not matched:
        raise WebhookVerificationError("no signature matches")
