"""The exceptions of the client: one hierarchy rooted at :class:`BrokerError`.

Design:

- Every answer of the broker that is not 2xx carries
  ``{"error": {"code": ..., "message": ...}}``; the ``code`` picks the
  subclass (:data:`ERRORS_BY_CODE`), so a program catches ``QueueFull`` or
  ``NotFound`` rather than testing status numbers. A code this client does
  not know (a newer broker, or ``internal`` for a 500) is a plain
  :class:`BrokerError` carrying that code.
- What is not an answer of the API is one of two more subclasses:
  :class:`ConnectionFailed` (the broker is down, the connection broke, TLS
  failed, a timeout) and :class:`BadAnswer` (a body that is not the API's
  JSON, such as a proxy's HTML error page).
- No exception of httpx or of the json module leaves the client: each is
  wrapped in one of these, with the original as ``__cause__``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ReceiptResult

__all__ = [
    "BrokerError",
    "InvalidJson",
    "InvalidRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "LeaseLost",
    "Conflict",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "RateLimited",
    "QueueFull",
    "Unavailable",
    "StorageFull",
    "ConnectionFailed",
    "BadAnswer",
    "ERRORS_BY_CODE",
]

# The field an invalid_request message names comes first, before a colon:
# "delay_ms: expected ...", "events[3].delay_ms: ...", "receipts[2]: ...".
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*):\s")


class BrokerError(Exception):
    """A request to the broker failed.

    Attributes:
        status: the HTTP status of the answer, or ``None`` when there was no
            answer (:class:`ConnectionFailed`).
        code: the API's error code (``"queue_full"``, ``"not_found"``, ...),
            or ``"connection_failed"`` / ``"bad_answer"`` for the two errors
            that are not answers of the API.
        message: the broker's sentence for people (or this client's).
        field: for ``invalid_request``, the field the message names
            (``"delay_ms"``, ``"events[3].delay_ms"``, ``"queue"``); else ``None``.
        retry_after: seconds the answer's ``Retry-After`` asked to wait, if any.
    """

    #: The code this class stands for; the base class has none of its own.
    default_code: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else self.default_code
        self.message = message
        self.retry_after = retry_after
        self.field: str | None = None
        if self.code == "invalid_request":
            match = _FIELD.match(message)
            if match:
                self.field = match.group(1)

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class InvalidJson(BrokerError):
    """400 ``invalid_json``: the body was not valid JSON."""

    default_code = "invalid_json"


class InvalidRequest(BrokerError):
    """400 ``invalid_request``: a field is missing, of the wrong type, unknown or
    out of range, or the queue name is bad; :attr:`field` names it."""

    default_code = "invalid_request"


class Unauthorized(BrokerError):
    """401 ``unauthorized``: the bearer token is missing or wrong."""

    default_code = "unauthorized"


class Forbidden(BrokerError):
    """403 ``forbidden``: an admin route called with the producers' token."""

    default_code = "forbidden"


class NotFound(BrokerError):
    """404 ``not_found``: no such route, queue, event or subscription."""

    default_code = "not_found"


class MethodNotAllowed(BrokerError):
    """405 ``method_not_allowed``: the route has no such method."""

    default_code = "method_not_allowed"


class LeaseLost(BrokerError):
    """409 ``lease_lost``: no receipt of an ack, nack or extend named a current
    lease; :attr:`results` says what became of each."""

    default_code = "lease_lost"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        results: list[ReceiptResult] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, retry_after=retry_after)
        self.results: list[ReceiptResult] = results if results is not None else []


class Conflict(BrokerError):
    """409 ``conflict``: a checkpoint of that name exists, or the event or queue
    is being changed at this moment (try again)."""

    default_code = "conflict"


class PayloadTooLarge(BrokerError):
    """413 ``payload_too_large``: a payload, a request or a batch over its limit."""

    default_code = "payload_too_large"


class UnsupportedMediaType(BrokerError):
    """415 ``unsupported_media_type``: a body without a JSON content type."""

    default_code = "unsupported_media_type"


class RateLimited(BrokerError):
    """429 ``rate_limited``: past the per-client rate limit; see :attr:`retry_after`."""

    default_code = "rate_limited"


class QueueFull(BrokerError):
    """429 ``queue_full``: the enqueue would pass the queue's ``max_size``;
    nothing was stored; see :attr:`retry_after`."""

    default_code = "queue_full"


class Unavailable(BrokerError):
    """503 ``unavailable``: the broker is starting, shutting down, or its log
    refuses writes until a restart."""

    default_code = "unavailable"


class StorageFull(BrokerError):
    """507 ``storage_full``: the disk was full; nothing of the request was stored."""

    default_code = "storage_full"


class ConnectionFailed(BrokerError):
    """No answer: the broker is down or unreachable, the connection broke, TLS
    failed, or the request timed out."""

    default_code = "connection_failed"


class BadAnswer(BrokerError):
    """An answer whose body is not the API's JSON (or not of the expected shape)."""

    default_code = "bad_answer"


#: The class of each error code of the API's error table.
ERRORS_BY_CODE: dict[str, type[BrokerError]] = {
    cls.default_code: cls
    for cls in (
        InvalidJson,
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        LeaseLost,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        QueueFull,
        Unavailable,
        StorageFull,
    )
}
