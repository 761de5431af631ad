"""The executions list's rows, kept current while the page is open, from the stream hub's events.

Each shown execution's status changes arrive from the hub (the API's live-stream machinery) and replace its row.
Only the rows on the page are followed, and only those the caller may see; a change re-reads the execution
through the API's service and sends the row as an HTML fragment (``row-<id>``) for htmx's SSE extension.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

from flowline.db.execution_reads import execution_visible
from flowline.domain.credentials import Principal
from flowline.messages import ExecutionEvent
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from flowline_api.auth import VIEWER
from flowline_api.console.executions import PAGE_SIZE
from flowline_api.console.live import render
from flowline_api.console.views import STREAM, page_context
from flowline_api.domain.executions.filters import owner_filter
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.streams.hub import Overflowed, StreamHub, Subscription
from flowline_api.domain.streams.service import TERMINAL_STATUSES, StreamTimings

# The events that change what a row shows (its status, times, duration).
ROW_EVENTS: Final = ("WORKFLOW_", "RETRY_REQUESTED")


def shown_ids(value: str) -> list[uuid.UUID]:
    """The ids the page lists (``ids=<id>,<id>…``), at most a page of them; malformed ones are ignored."""
    ids = []
    for part in value.split(",")[:PAGE_SIZE]:
        try:
            ids.append(uuid.UUID(part.strip()))
        except ValueError:
            continue
    return ids


class ConsoleRowsController(Controller):
    """``/ui/execution-rows``: the live rows of an executions list."""

    path = "/execution-rows"

    @get("/", opt=VIEWER | STREAM, name="console:rows")
    async def rows(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        execution_service: NamedDependency[ExecutionService],
    ) -> ServerSentEvent:
        """Each shown execution's row again whenever its status changes; ``end`` once all are final."""
        pool = request.app.state.pool
        owner = owner_filter(caller)
        ids = [
            execution_id
            for execution_id in shown_ids(request.query_params.get("ids", ""))
            if await execution_visible(pool, tenant_id, execution_id, owner)
        ]
        hub: StreamHub = request.app.state.stream_hub
        timings: StreamTimings = request.app.state.stream_timings
        subscription = await hub.subscribe(tenant_id)
        for execution_id in ids:
            subscription.follow(execution_id)

        async def fragments() -> AsyncIterator[ServerSentEventMessage]:
            try:
                async for message in _changes(
                    request, caller, tenant_id, ids, subscription, execution_service, timings
                ):
                    yield message
            finally:
                subscription.close()

        return ServerSentEvent(fragments())


async def _changes(
    request: Request[Principal, Any, State],
    caller: Principal,
    tenant_id: uuid.UUID,
    ids: list[uuid.UUID],
    subscription: Subscription,
    executions: ExecutionService,
    timings: StreamTimings,
) -> AsyncIterator[ServerSentEventMessage]:
    unfinished = set(ids)
    for execution_id in ids:  # what changed between the page's read and the subscription
        yield await _row(request, caller, tenant_id, execution_id, executions, unfinished)
    while unfinished:
        item = await subscription.get(timings.keepalive_seconds)
        if isinstance(item, Overflowed):
            return  # the browser reconnects and starts over from the rows as they are
        if item is None:
            yield ServerSentEventMessage(data=None, comment="keep-alive")
        elif isinstance(item, ExecutionEvent) and item.event.startswith(ROW_EVENTS):
            yield await _row(request, caller, tenant_id, item.execution_id, executions, unfinished)
    yield ServerSentEventMessage(event="end", data="")


async def _row(
    request: Request[Principal, Any, State],
    caller: Principal,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    executions: ExecutionService,
    unfinished: set[uuid.UUID],
) -> ServerSentEventMessage:
    item = await executions.read(tenant_id, execution_id)
    if item.status in TERMINAL_STATUSES:
        unfinished.discard(execution_id)
    html = render(request, "_row.html", page_context(caller, item=item))
    return ServerSentEventMessage(event=f"row-{execution_id}", data=html)
