"""Server-sent events of the api's live streams: reading, decoding and resuming them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec

from flowline_client.errors import FlowlineApiError
from flowline_client.models import StreamMessage

_STREAM_DECODER: msgspec.json.Decoder[StreamMessage] = msgspec.json.Decoder(StreamMessage)
_STREAM_KINDS = ("Event", "Log")
# Statuses of an api restarting or a proxy without a healthy api behind it: a stream tries again.
_UNAVAILABLE = frozenset({502, 503, 504})


class _Kind(msgspec.Struct):
    type: str | None = None


_KIND_DECODER = msgspec.json.Decoder(_Kind)


async def stream_messages(
    http: httpx.AsyncClient, api_url: str, path: str, last_event_id: str | None, max_reconnects: int
) -> AsyncIterator[StreamMessage]:
    """The messages of an SSE route, resumed after each close until the route answers 204 (nothing more)."""
    failures = 0
    while True:
        headers = {"accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # Keep-alives come every 15 s; a minute of silence means the connection is dead.
        timeout = httpx.Timeout(http.timeout.connect, read=60.0)
        try:
            async with http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code == 204:
                    return
                if response.is_error:
                    await response.aread()
                    error = FlowlineApiError.from_response(response)
                    if response.status_code not in _UNAVAILABLE:
                        raise error
                else:
                    received = False
                    async for event_id, data in _server_sent_events(response.aiter_lines()):
                        failures, received = 0, True
                        if event_id is not None:
                            last_event_id = event_id
                        if (message := _stream_message(data)) is not None:
                            yield message
                    if last_event_id is None:
                        return  # nothing to resume from
                    if not received:
                        # Closed without a single event: pause so that a server in that state is not hammered.
                        await asyncio.sleep(1.0)
                    continue
        except httpx.TransportError as err:
            error = FlowlineApiError.unreachable(api_url, err)
        failures += 1
        if failures > max_reconnects:
            raise error
        await asyncio.sleep(min(0.2 * 2**failures, 5.0))


def _stream_message(data: bytes) -> StreamMessage | None:
    """One stream message; None for a kind of message this client does not know (a newer api's).

    Raises:
        FlowlineApiError: a message of a known kind this client cannot read.
    """
    try:
        return _STREAM_DECODER.decode(data)
    except msgspec.DecodeError as err:
        try:
            kind = _KIND_DECODER.decode(data).type
        except msgspec.DecodeError:
            kind = None
        if kind is not None and kind not in _STREAM_KINDS:
            return None
        raise FlowlineApiError(200, "Unexpected response", f"a stream message this client cannot read: {err}") from err


async def _server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, bytes]]:
    """``(id, data)`` of each SSE event with data; comments (keep-alives) and other fields are skipped."""
    event_id: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event_id, "\n".join(data).encode()
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
