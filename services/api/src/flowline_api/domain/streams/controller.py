"""Routes of live streams (Server-Sent Events): an execution's events, its whole tree's, and one task's."""

from __future__ import annotations

import uuid
from typing import Annotated

from flowline.domain.credentials import Principal
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_204_NO_CONTENT

from flowline_api.auth import VIEWER
from flowline_api.domain.executions.filters import owner_filter
from flowline_api.domain.openapi import problems
from flowline_api.domain.streams.examples import EVENT_EXAMPLE, EXECUTION, PATH
from flowline_api.domain.streams.service import Messages, StreamService, provide_stream_service
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, ExecutionId, TaskId

LastEventHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        max_length=20_000,
        description="resume after this event (sent by EventSource when it reconnects); wins over `lastEventId`",
        required=False,
    ),
]
LastEventQuery = Annotated[
    str | None,
    QueryParameter(
        name="lastEventId",
        max_length=20_000,
        description="resume after this event, for clients that cannot set the header; `0` replays everything",
        required=False,
    ),
]


def _stream_responses(instance: str, not_found: str, bad_request: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            data_container=str,
            description="an event stream (`text/event-stream`)",
            media_type="text/event-stream",
            generate_examples=False,
            examples=[Example(summary="an event, then a keep-alive comment", value=EVENT_EXAMPLE)],
        ),
        204: ResponseSpec(
            data_container=None,
            description="the client resumed after the final event: nothing more will come (EventSource stops)",
            generate_examples=False,
        ),
        **problems(
            instance,
            bad_request=bad_request,
            not_found=not_found,
            too_many="you hold 50 open streams on this api process, as many as one principal may "
            "(FLOWLINE_STREAM_MAX_PER_PRINCIPAL); close one first",
            unavailable="this api process serves 500 open streams, as many as it may "
            "(FLOWLINE_STREAM_MAX_PER_PROCESS); try again shortly",
        ),
    }


def _respond(messages: Messages | None) -> ServerSentEvent | Response[None]:
    if messages is None:
        return Response(None, status_code=HTTP_204_NO_CONTENT)
    return ServerSentEvent(messages)


class StreamController(Controller):
    """``/executions/{id}/stream``, ``/executions/{id}/stream/consolidated`` and ``/tasks/{taskId}/stream``."""

    path = "/"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["streams"]
    dependencies = {"stream_service": Provide(provide_stream_service, sync_to_thread=False)}

    @get(
        "/executions/{execution_id:str}/stream",
        opt=VIEWER,
        summary="Stream an execution's events",
        responses=_stream_responses(
            f"{PATH}/executions/{EXECUTION}/stream",
            f"execution {EXECUTION} does not exist",
            "Last-Event-ID: 'x' is not an event sequence (a non-negative integer)",
        ),
    )
    async def stream_execution(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        stream_service: NamedDependency[StreamService],
        execution_id: ExecutionId,
        last_event_header: LastEventHeader = None,
        last_event_query: LastEventQuery = None,
    ) -> ServerSentEvent | Response[None]:
        """The execution's state events as Server-Sent Events: its history, then live.

        Each event's `data` is `{"type":"Event","event":"TASK_STARTED","data":{…snapshot…},"timestampMs":…,
        "executionId":…,"sequence":…,"stepId":…,"taskId":…,"occurredAt":…}` and its SSE `id` is the
        event-log `sequence`. Without `Last-Event-ID` the stream starts at the first event; with it, right
        after that event, with no gap and no repeat between the history and the live part. A `: keep-alive`
        comment comes every 15 s; the stream closes once the final event (`WORKFLOW_COMPLETED`, `_FAILED`,
        `_CANCELLED`) is sent, or after 5 minutes without events.

        A client that reads too slowly, falling more than the api's stream buffer (1 MiB by default) behind,
        gets a last event named `overflow` (`{"type":"Overflow","detail":…}`, no SSE id) and the stream closes:
        reconnecting with `Last-Event-ID` catches up from the event log. A principal holding too many open
        streams gets 429, an api process serving too many 503, both with `Retry-After` (this applies to every
        stream route).
        """
        messages = await stream_service.execution_stream(tenant_id, execution_id, last_event_header or last_event_query)
        return _respond(messages)

    @get(
        "/executions/{execution_id:str}/stream/consolidated",
        opt=VIEWER,
        summary="Stream an execution's and its children's events",
        responses=_stream_responses(
            f"{PATH}/executions/{EXECUTION}/stream/consolidated",
            f"execution {EXECUTION} does not exist",
            "Last-Event-ID: 'x' is not a consolidated stream position",
        ),
    )
    async def stream_consolidated(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        stream_service: NamedDependency[StreamService],
        caller: NamedDependency[Principal],
        execution_id: ExecutionId,
        last_event_header: LastEventHeader = None,
        last_event_query: LastEventQuery = None,
    ) -> ServerSentEvent | Response[None]:
        """The events of an execution and of every descendant (child workflows, theirs…), history then live.

        Only the descendants the caller may see: a child of another principal, of a workflow that is not
        public, is left out with everything below it (an admin sees all).

        Events are those of the execution stream; `executionId` names whose event it is. Each execution's
        events come in sequence order; children started later join the stream as their parent's
        `CHILD_WORKFLOW_INITIATED` is sent. The SSE `id` holds the stream's position in every execution,
        `<executionId>:<sequence>` pairs joined by commas, so `Last-Event-ID` resumes them all without gap or
        repeat. The stream closes once the execution and all its descendants reached a final state.
        """
        messages = await stream_service.consolidated_stream(
            tenant_id, execution_id, last_event_header or last_event_query, owner_filter(caller)
        )
        return _respond(messages)

    @get(
        "/tasks/{task_id:str}/stream",
        opt=VIEWER,
        summary="Stream a task's events and logs",
        responses=_stream_responses(
            f"{PATH}/tasks/{EXECUTION}/stream",
            f"task {EXECUTION} does not exist",
            "Last-Event-ID: 'x' is not an event sequence (a non-negative integer)",
        ),
    )
    async def stream_task(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        stream_service: NamedDependency[StreamService],
        task_id: TaskId,
        last_event_header: LastEventHeader = None,
        last_event_query: LastEventQuery = None,
    ) -> ServerSentEvent | Response[None]:
        """One task's state events and its log records as they arrive (a live tail).

        State events are those of the execution stream (SSE `id` = sequence). Log records come as
        `{"type":"Log","id":…,"level":"INFO","message":…,"timestamp":…,"stepId":…,"attempt":…}` without an
        SSE id; stored records are sent first, and when resuming, those since the resumed event. The stream
        closes a moment after the task reached a final state (completed, failed without a retry left,
        cancelled, skipped), so that its last log records get through.
        """
        messages = await stream_service.task_stream(tenant_id, task_id, last_event_header or last_event_query)
        return _respond(messages)
