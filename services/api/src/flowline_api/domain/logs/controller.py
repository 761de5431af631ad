"""Routes of task logs: pages of an execution's or a task's records, and a streamed download."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from flowline_schemas.logs import TaskLogPage
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from flowline_api.auth import VIEWER
from flowline_api.domain.logs.examples import BAD_LEVEL, LOG_PAGE_EXAMPLE, PATH
from flowline_api.domain.logs.search import MAX_CONTEXT, MAX_SEARCH_LENGTH, SEARCH_SCAN_RECORDS, LogQuery
from flowline_api.domain.logs.service import LogService, PageWanted, provide_log_service
from flowline_api.domain.openapi import example_response, problems
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, ExecutionId, TaskId

Level = Annotated[
    str | None,
    QueryParameter(
        description="keep records at this level and above: DEBUG, INFO, WARN or ERROR", max_length=10, required=False
    ),
]
LogLimit = Annotated[int, QueryParameter(ge=1, le=10_000, description="records per page (1 to 10,000)")]
LogOffset = Annotated[int, QueryParameter(ge=0, le=100_000_000, description="records to skip")]
StepFilter = Annotated[
    str | None, QueryParameter(name="stepId", max_length=200, description="keep this step's records", required=False)
]
AttemptFilter = Annotated[
    int | None,
    QueryParameter(ge=1, le=1_000, description="keep the records of this attempt (1 for the first)", required=False),
]
Search = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=MAX_SEARCH_LENGTH,
        description=(
            "keep records whose message contains this text, in any case (`%` and `_` are plain characters). A search "
            f"looks at up to {SEARCH_SCAN_RECORDS:,} records a page: a page may hold fewer matches than `limit`, even "
            "none, while `nextCursor` says there is more to look at. `total` is null"
        ),
        required=False,
    ),
]
Context = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=MAX_CONTEXT,
        description=(
            f"with `q`: up to this many records (0 to {MAX_CONTEXT}) before and after each match, from its task; "
            "each record has `matched` and `group`"
        ),
    ),
]
LogCursor = Annotated[
    str | None,
    QueryParameter(max_length=500, description="`nextCursor` of the page before: a keyset page", required=False),
]
Format = Annotated[
    Literal["text", "json"], QueryParameter(description="`text` (one line per record) or `json` (an array)")
]


class LogController(Controller):
    """``/api/v1/tenants/{tenant}/executions/{id}/logs`` and ``/tasks/{taskId}/logs``."""

    path = "/"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["logs"]
    dependencies = {"log_service": Provide(provide_log_service, sync_to_thread=False)}

    @get(
        "/executions/{execution_id:str}/logs",
        opt=VIEWER,
        summary="List an execution's logs",
        responses={
            **example_response(TaskLogPage, "a page of log records, oldest first", LOG_PAGE_EXAMPLE),
            **problems(
                f"{PATH}/executions/0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d/logs",
                bad_request=BAD_LEVEL,
                not_found="execution 0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d does not exist",
            ),
        },
    )
    async def list_execution_logs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        log_service: NamedDependency[LogService],
        execution_id: ExecutionId,
        level: Level = None,
        step_id: StepFilter = None,
        attempt: AttemptFilter = None,
        q: Search = None,
        context: Context = 0,
        limit: LogLimit = 1000,
        offset: LogOffset = 0,
        cursor: LogCursor = None,
    ) -> TaskLogPage:
        """The log records of every step of an execution, oldest first.

        Records come from the executor (attempt started, retry scheduled, failed, timed out), from actions
        (`core.log`, an action's context logger) and from agents; they appear once log-ingest has stored them,
        usually within moments. `total` counts every record matching the filters. Page with `offset` or, for
        deep pages and searches, with `cursor`.
        """
        query = LogQuery(level=level, step_id=step_id, attempt=attempt, text=q, context=context)
        page = PageWanted(limit=limit, offset=offset, cursor=cursor)
        return await log_service.list_for_execution(tenant_id, execution_id, query, page)

    @get(
        "/executions/{execution_id:str}/logs/download",
        opt=VIEWER,
        summary="Download an execution's logs",
        responses={
            200: ResponseSpec(
                data_container=str,
                description="the whole log as an attachment",
                media_type="text/plain",
                generate_examples=False,
            ),
            **problems(
                f"{PATH}/executions/0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d/logs/download",
                not_found="execution 0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d does not exist",
            ),
        },
    )
    async def download_execution_logs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        log_service: NamedDependency[LogService],
        execution_id: ExecutionId,
        format: Format = "text",
    ) -> Stream:
        """Every log record of an execution as a file, streamed while it is read.

        `text` gives lines like `2026-01-01T10:00:00.123Z INFO  [fetch#1] attempt 1 started`; `json` gives an
        array of records with their task id and metadata. The file is named
        `execution-<id>-logs.txt` (or `.json`); a log of millions of lines streams with flat memory.
        """
        await log_service.require_execution(tenant_id, execution_id)
        extension, media_type = (
            ("txt", "text/plain; charset=utf-8") if format == "text" else ("json", "application/json")
        )
        return Stream(
            log_service.download(tenant_id, execution_id, format),
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="execution-{execution_id}-logs.{extension}"'},
        )

    @get(
        "/tasks/{task_id:str}/logs",
        opt=VIEWER,
        summary="List a task's logs",
        responses={
            **example_response(TaskLogPage, "a page of log records, oldest first", LOG_PAGE_EXAMPLE),
            **problems(
                f"{PATH}/tasks/0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d/logs",
                bad_request=BAD_LEVEL,
                not_found="task 0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d does not exist",
            ),
        },
    )
    async def list_task_logs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        log_service: NamedDependency[LogService],
        task_id: TaskId,
        level: Level = None,
        attempt: AttemptFilter = None,
        q: Search = None,
        context: Context = 0,
        limit: LogLimit = 50,
        offset: LogOffset = 0,
        cursor: LogCursor = None,
    ) -> TaskLogPage:
        """The log records of one task (a step execution, `taskId` in the execution's steps), oldest first.

        The filters, search and pages are the execution's logs'.
        """
        query = LogQuery(level=level, attempt=attempt, text=q, context=context)
        page = PageWanted(limit=limit, offset=offset, cursor=cursor)
        return await log_service.list_for_task(tenant_id, task_id, query, page)
