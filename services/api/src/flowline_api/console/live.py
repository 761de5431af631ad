"""The execution page's live updates: the execution's stream, turned into HTML fragments for htmx's SSE extension.

The stream is the API's own (``StreamService.execution_stream``: history from the event log, then live events,
no gap, no repeat). Each event, or each burst of them, re-renders the parts of the page that change: the summary
with its actions, the graph, the selected step and the history. A fragment carries the sequence of the last
event it includes as its SSE id, so a browser that reconnects sends it back as ``Last-Event-ID`` and resumes
right after it. Without one the stream starts with the execution as it is now. A final ``end`` event tells the
page to close the stream (``sse-close``) once the execution reached a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from flowline.credentials import Principal
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.utils.scope.state import ScopeState

from flowline_api.auth import VIEWER
from flowline_api.console.executions import PageReads, execution_context
from flowline_api.domain.streams.service import StreamService
from flowline_api.path_ids import ExecutionId

FRAGMENTS: Final = {
    "summary": "_summary.html",
    "graph": "_graph.html",
    "step": "_step.html",
    "history": "_history.html",
}
LastEventId = Annotated[str | None, HeaderParameter(name="Last-Event-ID", max_length=20, required=False)]


def render(request: Request[Any, Any, Any], template: str, context: dict[str, Any]) -> str:
    """A template rendered as a page's would be (with the request's CSRF field for its forms)."""
    token = ScopeState.from_scope(request.scope).csrf_token or ""
    csrf_input = f'<input type="hidden" name="_csrf_token" value="{html.escape(str(token))}">'
    engine = request.app.template_engine
    assert engine is not None, "the console configures a template engine"
    return str(engine.get_template(template).render(**context, request=request, csrf_input=csrf_input))


async def _bursts(messages: AsyncIterator[ServerSentEventMessage]) -> AsyncIterator[list[ServerSentEventMessage]]:
    """The stream's messages, those that arrived together as one list (one re-render for a burst of events)."""
    queue: asyncio.Queue[ServerSentEventMessage | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for message in messages:
                await queue.put(message)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            first = await queue.get()
            if first is None:
                return
            burst = [first]
            while not queue.empty():
                following = queue.get_nowait()
                if following is None:
                    yield burst
                    return
                burst.append(following)
            yield burst
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ConsoleLiveController(Controller):
    """``/ui/executions/{id}/live``."""

    path = "/executions/{execution_id:str}/live"

    @get("/", opt=VIEWER, name="console:live")
    async def live(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        page_reads: NamedDependency[PageReads],
        stream_service: NamedDependency[StreamService],
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        """The page's fragments, each time the execution's events change something."""
        if last_event_id is None or not last_event_id.strip().isdigit():
            last_event_id = str(await self._current_sequence(request, page_reads.tenant_id, execution_id))
        messages = await stream_service.execution_stream(page_reads.tenant_id, execution_id, last_event_id)
        return ServerSentEvent(self._fragments(request, page_reads, execution_id, messages, last_event_id))

    async def _current_sequence(
        self, request: Request[Principal, Any, State], tenant_id: uuid.UUID, execution_id: uuid.UUID
    ) -> int:
        sequence = await request.app.state.pool.fetchval(
            "SELECT last_event_sequence FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
        )
        return int(sequence or 0)

    async def _fragments(
        self,
        request: Request[Principal, Any, State],
        reads: PageReads,
        execution_id: uuid.UUID,
        messages: AsyncIterator[ServerSentEventMessage] | None,
        position: str,
    ) -> AsyncIterator[ServerSentEventMessage]:
        for fragment in await self._render(request, reads, execution_id, position):
            yield fragment  # the page as it is now: whatever happened between its load and this stream shows
        if messages is not None:
            async for burst in _bursts(messages):
                ids = [message.id for message in burst if message.id is not None]
                if not ids:  # keep-alive comments only
                    for message in burst:
                        yield message
                    continue
                for fragment in await self._render(request, reads, execution_id, str(ids[-1])):
                    yield fragment
        yield ServerSentEventMessage(event="end", data="")

    async def _render(
        self, request: Request[Principal, Any, State], reads: PageReads, execution_id: uuid.UUID, event_id: str
    ) -> list[ServerSentEventMessage]:
        context = await execution_context(request, reads, execution_id)
        return [
            ServerSentEventMessage(event=name, data=render(request, template, context), id=event_id)
            for name, template in FRAGMENTS.items()
        ]
