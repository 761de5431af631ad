"""Bulk cancel and retry from the executions list (every execution matching its filter), with live progress.

The operation is the API's bulk operation (the scheduler applies it in batches); its page follows the progress
over a stream that pushes a fragment whenever the stored progress changed, until the operation is done.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError
from flowline_schemas.bulk import BulkOperation, ExecutionFilter
from litestar import Controller, Request, get, post
from litestar.datastructures import MultiDict, State
from litestar.di import NamedDependency
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.console.executions import list_filters
from flowline_api.console.live import render
from flowline_api.console.views import STREAM, page_context
from flowline_api.domain.bulk.schemas import BulkCancelRequest, BulkRetryRequest
from flowline_api.domain.bulk.service import BulkOperationService
from flowline_api.path_ids import OperationId

# How often the progress stream reads the operation's row (the scheduler updates it batch by batch).
PROGRESS_READ_SECONDS: Final = 0.5
FINISHED: Final = frozenset({"completed", "failed"})


def bulk_filter(query: MultiDict[str], caller: Principal) -> ExecutionFilter:
    """The bulk operation's filter: the executions list's filter, as the API's bulk request states it.

    Raises:
        ClientError: a bad value in the list's filter.
    """
    filters = list_filters(query, caller)  # checks the values as the list does
    return ExecutionFilter(
        workflow=filters.workflow,
        status=filters.statuses,  # type: ignore[arg-type]  # checked against the statuses above
        started_by=filters.started_by,
        created_after=filters.created_after,
        created_before=filters.created_before,
        tag=filters.tags,
        metadata=filters.metadata,
        schedule_id=filters.schedule_id,
    )


def selected_ids(values: list[str]) -> list[uuid.UUID] | None:
    """The executions ticked in the list (None: none, the filter selects).

    Raises:
        ClientError: a value that is not an execution id.
    """
    try:
        return [uuid.UUID(value) for value in values] or None
    except ValueError as err:
        raise ClientError("id: not an execution id") from err


class ConsoleBulkController(Controller):
    """``/ui/bulk`` and ``/ui/bulk/{id}``."""

    path = "/bulk"

    @post("/", opt=OPERATOR, name="console:bulk")
    async def create(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        bulk_operation_service: NamedDependency[BulkOperationService],
    ) -> Redirect:
        """Cancel or retry the executions ticked in the list, or else every one matching its filter, in bulk."""
        form = await request.form()
        kind = str(form.get("action") or "")
        ids = selected_ids([str(value) for value in form.getall("id", [])])
        selection = None if ids else bulk_filter(MultiDict(parse_qsl(str(form.get("filter") or ""))), caller)
        body: BulkCancelRequest | BulkRetryRequest
        if kind == "cancel":
            body = BulkCancelRequest(ids=ids, filter=selection, reason="bulk cancel in the console")
        elif kind == "retry":
            body = BulkRetryRequest(ids=ids, filter=selection, note="bulk retry in the console")
        else:
            raise ClientError(f"action: {kind!r} is neither cancel nor retry")
        operation = await bulk_operation_service.create(tenant_id, kind, body, caller, actor)  # type: ignore[arg-type]
        return Redirect(f"/ui/bulk/{operation.id}", status_code=303)

    @get("/{operation_id:str}", opt=VIEWER, name="console:bulk-operation")
    async def operation_page(
        self,
        operation_id: OperationId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        bulk_operation_service: NamedDependency[BulkOperationService],
    ) -> Template:
        """The operation's progress: handled, succeeded, skipped, failed, and the first errors."""
        operation = await bulk_operation_service.read(tenant_id, operation_id, caller)
        return Template("bulk.html", context=page_context(caller, operation=operation))

    @get("/{operation_id:str}/live", opt=VIEWER | STREAM, name="console:bulk-live")
    async def progress(
        self,
        request: Request[Principal, Any, State],
        operation_id: OperationId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        bulk_operation_service: NamedDependency[BulkOperationService],
    ) -> ServerSentEvent:
        """The progress fragment each time it changes, then ``end`` once the operation is done."""
        await bulk_operation_service.read(tenant_id, operation_id, caller)  # 404 before the stream starts

        async def fragments() -> AsyncIterator[ServerSentEventMessage]:
            shown: BulkOperation | None = None
            while True:
                operation = await bulk_operation_service.read(tenant_id, operation_id, caller)
                if shown is None or msgspec.to_builtins(operation) != msgspec.to_builtins(shown):
                    html = render(request, "_bulk.html", page_context(caller, operation=operation))
                    yield ServerSentEventMessage(event="progress", data=html)
                    shown = operation
                if operation.status in FINISHED:
                    yield ServerSentEventMessage(event="end", data="")
                    return
                await asyncio.sleep(PROGRESS_READ_SECONDS)

        return ServerSentEvent(fragments())
