"""Following a server-sent event stream in the benchmarks: its frames in order, each stamped when it arrived."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Frame:
    """One SSE frame: its ``event`` and ``id`` fields, its data lines joined, and when its first line arrived."""

    event: str | None
    id: str | None
    data: str
    arrived_ms: float  # epoch milliseconds, to compare with the timestamps the server took


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The stream's frames until the server closes it; comment lines (keep-alives) are passed over."""
    fields: dict[str, list[str]] = {}
    arrived_ms = 0.0
    async for line in response.aiter_lines():
        if not line:
            if fields:
                event, sse_id = fields.get("event"), fields.get("id")
                yield Frame(
                    event=event[-1] if event else None,
                    id=sse_id[-1] if sse_id else None,
                    data="\n".join(fields.get("data", [])),
                    arrived_ms=arrived_ms,
                )
            fields = {}
            continue
        name, _, value = line.partition(":")
        if not name:
            continue
        if not fields:
            arrived_ms = time.time() * 1000
        fields.setdefault(name, []).append(value.removeprefix(" "))
