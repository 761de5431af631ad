"""The request id: made (or taken from ``X-Request-ID``) at the api, carried in Kafka headers, in every log line.

It lives in a context variable. The api sets it for each request; every outbox row written while it is set
carries it as a Kafka header; a consumer sets it from that header while it handles the record, so the rows
the handler writes carry it on. One execution's work in every service logs the id of the request that
started (or last commanded) it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from flowline.runtime.ids import uuid7

HEADER = "x-request-id"
_MAX_LENGTH = 200

current_request_id: ContextVar[str | None] = ContextVar("flowline_request_id", default=None)


def accepted_request_id(sent: str | None) -> str:
    """The id a client sent when it looks like one (printable ASCII, not too long), else a new one."""
    if sent and len(sent) <= _MAX_LENGTH and sent.isascii() and sent.isprintable() and sent.strip() == sent:
        return sent
    return str(uuid7())


def kafka_headers(request_id: str | None) -> list[tuple[str, bytes]]:
    """The Kafka headers of a record sent on behalf of ``request_id``."""
    return [(HEADER, request_id.encode())] if request_id else []


def from_kafka_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The request id a record carries, if any."""
    for name, value in headers:
        if name == HEADER:
            return value.decode(errors="replace")
    return None


@contextlib.contextmanager
def request_id_set(request_id: str | None) -> Iterator[None]:
    """Make ``request_id`` the current one for the block (unchanged when None)."""
    if request_id is None:
        yield
        return
    token = current_request_id.set(request_id)
    try:
        yield
    finally:
        current_request_id.reset(token)
