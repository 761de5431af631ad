"""The execution page's live updates: the execution's stream, turned into HTML fragments for htmx's SSE extension.

The stream is the API's own (``StreamService.execution_stream``: history from the event log, then live events,
no gap, no repeat). Each event, or each burst of them, re-renders the parts of the page that change: the actions,
the summary, the graph, the selected step and the history. A fragment carries the sequence of the last
event it includes as its SSE id, so a browser that reconnects sends it back as ``Last-Event-ID`` and resumes
right after it. Without one the stream starts with the execution as it is now. A final ``end`` event tells the
page to close the stream (``sse-close``) once the execution reached a final status.

While the selected step's task runs, its log records (the API's task stream) are sent too, one ``log`` fragment
each, which the page appends to the step's logs: a live tail. With a search, the tail is ``grep -C`` on the
stream (``TailSearch``): each match with the records around it, dimmed, and a gap mark where records were left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from flowline.domain.credentials import Principal
from flowline_schemas.streams import StreamEvent, StreamLog
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.utils.scope.state import ScopeState

from flowline_api.auth import VIEWER
from flowline_api.console.executions import PageReads, execution_context
from flowline_api.console.views import STREAM, StepPane
from flowline_api.domain.logs.search import LogQuery
from flowline_api.domain.logs.service import levels_from
from flowline_api.domain.streams.service import TERMINAL_TASK_STATUSES, Messages, StreamService
from flowline_api.path_ids import ExecutionId

FRAGMENTS: Final = {
    "actions": "_actions.html",  # before the summary: once a new status shows, its actions are there
    "summary": "_summary.html",
    "graph": "_graph.html",
    "step": "_step.html",
    "history": "_history.html",
}
_decoder = msgspec.json.Decoder(StreamEvent | StreamLog)
LastEventId = Annotated[str | None, HeaderParameter(name="Last-Event-ID", max_length=20, required=False)]


def render(request: Request[Any, Any, Any], template: str, context: dict[str, Any]) -> str:
    """A template rendered as a page's would be (with the request's CSRF field for its forms)."""
    token = ScopeState.from_scope(request.scope).csrf_token or ""
    csrf_input = f'<input type="hidden" name="_csrf_token" value="{html.escape(str(token))}">'
    engine = request.app.template_engine
    assert engine is not None, "the console configures a template engine"
    return str(engine.get_template(template).render(**context, request=request, csrf_input=csrf_input))


Tagged = tuple[str, ServerSentEventMessage]  # ("event" or "log", the API stream's message)


async def _bursts(
    events: AsyncIterator[ServerSentEventMessage], logs: AsyncIterator[ServerSentEventMessage] | None
) -> AsyncIterator[list[Tagged]]:
    """The execution stream's messages and the selected task's, those that arrived together as one list.

    A burst of events is rendered once. The whole ends with the execution stream; the task stream (logs) may
    end sooner, once its task finished.
    """
    queue: asyncio.Queue[Tagged | None] = asyncio.Queue()

    async def pump(source: str, messages: AsyncIterator[ServerSentEventMessage]) -> None:
        try:
            async for message in messages:
                await queue.put((source, message))
        finally:
            if source == "event":
                await queue.put(None)

    tasks = [asyncio.create_task(pump("event", events))]
    if logs is not None:
        tasks.append(asyncio.create_task(pump("log", logs)))
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
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _log_record(message: ServerSentEventMessage) -> StreamLog | None:
    """The log record a task stream's message carries (its state events and keep-alives carry none)."""
    if message.id is not None or not isinstance(message.data, str) or not message.data:
        return None
    item = _decoder.decode(message.data)
    return item if isinstance(item, StreamLog) else None


class ConsoleLiveController(Controller):
    """``/ui/executions/{id}/live``."""

    path = "/executions/{execution_id:str}/live"

    @get("/", opt=VIEWER | STREAM, name="console:live")
    async def live(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        page_reads: NamedDependency[PageReads],
        stream_service: NamedDependency[StreamService],
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        """The page's fragments, each time the execution's events change something.

        The page says which event it was rendered after (``shown``; on a reconnect, ``Last-Event-ID``): when
        nothing happened since, the stream starts with no fragments, so a form the person just opened stays open.
        """
        current = await page_reads.executions.event_sequence(page_reads.tenant_id, execution_id)
        if last_event_id is None or not last_event_id.strip().isdigit():
            shown, last_event_id = request.query_params.get("shown", ""), str(current)
        else:
            shown = last_event_id.strip()
        up_to_date = shown.isdigit() and int(shown) >= current
        messages = await stream_service.execution_stream(page_reads.tenant_id, execution_id, last_event_id)
        fragments = self._fragments(
            request, page_reads, stream_service, execution_id, messages, last_event_id, up_to_date=up_to_date
        )
        return ServerSentEvent(fragments)

    async def _fragments(
        self,
        request: Request[Principal, Any, State],
        reads: PageReads,
        streams: StreamService,
        execution_id: uuid.UUID,
        messages: AsyncIterator[ServerSentEventMessage] | None,
        position: str,
        *,
        up_to_date: bool,
    ) -> AsyncIterator[ServerSentEventMessage]:
        fragments, context = await self._render(request, reads, execution_id, position)
        sent = {str(fragment.event): fragment.data for fragment in fragments}
        for fragment in [] if up_to_date else fragments:
            yield fragment  # the page as it is now: whatever happened between its load and this stream shows
        if messages is not None:
            logs = await _tail(streams, reads, context.get("pane"), position)
            shown = _shown_logs(context)
            pane: StepPane | None = context.get("pane")
            log_query = pane.log_query if pane else LogQuery()
            allowed = levels_from(log_query.level)
            tail = TailSearch(log_query)
            async for burst in _bursts(messages, logs):
                ids = [message.id for source, message in burst if source == "event" and message.id is not None]
                if ids:
                    fragments, context = await self._render(request, reads, execution_id, str(ids[-1]))
                    shown = _shown_logs(context)
                    # Only what changed: a part the events did not touch (the pane of a step they are not about,
                    # with a form being filled in) stays as it is. The position moves on either way.
                    changed = [fragment for fragment in fragments if sent.get(str(fragment.event)) != fragment.data]
                    sent.update({str(fragment.event): fragment.data for fragment in changed})
                    for fragment in changed or [ServerSentEventMessage(event="position", data="", id=str(ids[-1]))]:
                        yield fragment
                for source, message in burst:
                    record = _log_record(message) if source == "log" else None
                    if record is not None and record.id not in shown and _tailed(record, log_query, allowed):
                        shown.add(record.id)
                        for line in tail.take(record):
                            data = GAP if line is None else render(request, "_log.html", line)
                            yield ServerSentEventMessage(event="log", data=data)
                    elif source == "event" and message.id is None and not ids:
                        yield message  # a keep-alive comment
        yield ServerSentEventMessage(event="end", data="")

    async def _render(
        self, request: Request[Principal, Any, State], reads: PageReads, execution_id: uuid.UUID, event_id: str
    ) -> tuple[list[ServerSentEventMessage], dict[str, Any]]:
        context = await execution_context(request, reads, execution_id)
        fragments = [
            ServerSentEventMessage(event=name, data=render(request, template, context), id=event_id)
            for name, template in FRAGMENTS.items()
        ]
        return fragments, context


async def _tail(streams: StreamService, reads: PageReads, pane: StepPane | None, position: str) -> Messages | None:
    """The selected step's log records as they arrive, while its task runs (None: nothing to follow)."""
    if pane is None or pane.run is None or pane.run.status in TERMINAL_TASK_STATUSES:
        return None
    return await streams.task_stream(reads.tenant_id, uuid.UUID(pane.run.task_id), position)


def _tailed(record: StreamLog, log_query: LogQuery, levels: list[str] | None) -> bool:
    """Whether the live tail considers ``record`` for the pane's logs: it passes the pane's level and attempt."""
    return (levels is None or record.level in levels) and (
        log_query.attempt is None or record.attempt == log_query.attempt
    )


GAP: Final = '<span class="log gap">…</span>'  # records left out between two shown, as the page's search draws it


class TailSearch:
    """The live tail's search: each match with up to ``context`` records before and after it, as the page shows.

    ``take`` answers what to append for each record that arrives, in order: the contexts of the templates that
    render them (``_log.html``), or None for a gap. Without a search, every record is appended as it is.
    """

    def __init__(self, log_query: LogQuery) -> None:
        self._text = log_query.text.casefold() if log_query.text is not None else None
        self._search = log_query.text
        self._context = log_query.context
        self._before: deque[StreamLog] = deque(maxlen=log_query.context)
        self._after = 0  # how many records after the last match are still its context
        self._left_out = False  # since the last one appended

    def take(self, record: StreamLog) -> list[dict[str, Any] | None]:
        """What to append for ``record``: nothing while it is neither a match nor near one."""
        if self._text is None:
            return [{"log": record, "search": None}]
        if self._text in record.message.casefold():
            lines: list[dict[str, Any] | None] = [None] if self._left_out else []
            lines += [self._line(before, matched=False) for before in self._before]
            lines.append(self._line(record, matched=True))
            self._before.clear()
            self._after, self._left_out = self._context, False
            return lines
        if self._after:
            self._after -= 1
            return [self._line(record, matched=False)]
        self._left_out = self._left_out or len(self._before) == self._before.maxlen
        self._before.append(record)
        return []

    def _line(self, record: StreamLog, *, matched: bool) -> dict[str, Any]:
        return {"log": record, "search": self._search, "context_record": not matched}


def _shown_logs(context: dict[str, Any]) -> set[str]:
    """The ids of the log records the step pane just rendered (the live tail skips them)."""
    pane: StepPane | None = context.get("pane")
    return {log.id for log in pane.logs.logs} if pane is not None and pane.logs is not None else set()
