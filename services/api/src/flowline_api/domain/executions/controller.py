"""Routes of executions: start, read, list, history and relations; promises."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError
from flowline_schemas.executions import (
    AttemptList,
    ChildList,
    EventList,
    Execution,
    ExecutionPage,
    PromiseSettlement,
    StepList,
)
from flowline_schemas.workflows import ExecutionAccepted
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.executions.examples import (
    ATTEMPTS_EXAMPLE,
    BAD_ID,
    CHILDREN_EXAMPLE,
    EVENTS_EXAMPLE,
    EXECUTION_CREATE_EXAMPLE,
    EXECUTION_EXAMPLE,
    EXECUTION_ID,
    NOT_FOUND,
    PAGE_EXAMPLE,
    PATH,
    PROMISE_REJECTED_EXAMPLE,
    PROMISE_RESOLVED_EXAMPLE,
    STEP_EXAMPLE,
    TASK_ID,
)
from flowline_api.domain.executions.filters import execution_filters
from flowline_api.domain.executions.schemas import ExecutionCreate, PromiseReject, PromiseResolve
from flowline_api.domain.executions.service import ExecutionService, provide_execution_service
from flowline_api.domain.logs.service import LogService, provide_log_service
from flowline_api.domain.openapi import NO_TENANT, example_response, problems
from flowline_api.domain.workflows.examples import EXECUTION_ACCEPTED_EXAMPLE
from flowline_api.domain.workflows.schemas import with_idempotency_header
from flowline_api.pagination import Cursor, Limit, Offset
from flowline_api.path_ids import ExecutionId, TaskId
from flowline_api.rate_limits import EXECUTION_START

METADATA_PREFIX = "metadata."

WorkflowFilter = Annotated[
    str | None, QueryParameter(description="keep executions of this workflow ref", max_length=200, required=False)
]
StatusFilter = Annotated[
    list[str] | None,
    QueryParameter(
        description="keep executions in any of these statuses: pending, running, paused, completed, failed, "
        "cancelled (repeat the parameter or separate with commas)",
        max_items=6,
        required=False,
    ),
]
TriggeredByFilter = Annotated[
    str | None,
    QueryParameter(
        name="triggeredBy",
        description="keep executions started this way: api, kafka, workflow (a child of a workflow step)",
        max_length=100,
        required=False,
    ),
]
StartedByFilter = Annotated[
    str | None,
    QueryParameter(
        name="startedBy",
        description="keep executions with this `startedBy`: api-key:<id>, jwt:<sub>, schedule:<id>, kafka or "
        "parent:<execution id>",
        max_length=300,
        required=False,
    ),
]
ParentFilter = Annotated[
    uuid.UUID | None,
    QueryParameter(name="parentId", description="keep the children of this execution", required=False),
]
ScheduleFilter = Annotated[
    uuid.UUID | None,
    QueryParameter(name="scheduleId", description="keep the runs of this schedule", required=False),
]
CreatedAfter = Annotated[
    datetime | None,
    QueryParameter(
        name="createdAfter",
        description="keep executions created at or after (ISO 8601; UTC if no zone)",
        required=False,
    ),
]
CreatedBefore = Annotated[
    datetime | None,
    QueryParameter(
        name="createdBefore", description="keep executions created before (ISO 8601; UTC if no zone)", required=False
    ),
]
TagFilter = Annotated[
    list[str] | None,
    QueryParameter(description="keep executions with every one of these tags (repeat the parameter)", max_items=20),
]
SearchFilter = Annotated[
    str | None,
    QueryParameter(
        description="an execution id prefix, or text in the workflow ref (case-insensitive)",
        min_length=1,
        max_length=200,
        required=False,
    ),
]
Sort = Annotated[Literal["createdAt", "completedAt"], QueryParameter(description="sort key")]
Order = Annotated[
    Literal["asc", "desc"],
    QueryParameter(description="sort direction; unfinished executions count as completing last"),
]
INCLUDES = ("logs",)
LATEST_LOGS = 100
Include = Annotated[
    list[str] | None,
    QueryParameter(
        description="add to the execution: `logs` (its latest 100 log records)", max_items=5, required=False
    ),
]
SinceSequence = Annotated[
    int,
    QueryParameter(name="sinceSequence", ge=0, description="return events after this sequence (0: from the first)"),
]
EventLimit = Annotated[int, QueryParameter(ge=1, le=1000, description="events per answer (1 to 1000)")]


def _metadata(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """The ``metadata.<key>=<value>`` query parameters as one object (each key once).

    Raises:
        ClientError: an empty key, or a key given twice.
    """
    metadata: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith(METADATA_PREFIX):
            continue
        key = name.removeprefix(METADATA_PREFIX)
        if not key or len(key) > 100:
            raise ClientError(f"{name}: a metadata key has 1 to 100 characters")
        if key in metadata:
            raise ClientError(f"{name}: given twice")
        metadata[key] = value
    return metadata or None


def _includes(values: list[str] | None) -> set[str]:
    """``?include=logs`` (repeated or comma-separated) → what to add to an execution.

    Raises:
        ClientError: an unknown value.
    """
    included = {value for given in values or [] for value in given.split(",") if value}
    if unknown := sorted(included - set(INCLUDES)):
        raise ClientError(f"include: {unknown[0]!r} is not one of {', '.join(INCLUDES)}")
    return included


class ExecutionController(Controller):
    """``/api/v1/tenants/{tenant}/executions``."""

    path = "/executions"
    tags = ["executions"]
    dependencies = {
        "execution_service": Provide(provide_execution_service, sync_to_thread=False),
        "log_service": Provide(provide_log_service, sync_to_thread=False),
    }

    @post(
        "/",
        opt=OPERATOR | EXECUTION_START,
        status_code=HTTP_202_ACCEPTED,
        summary="Start an execution",
        responses={
            **example_response(
                ExecutionAccepted, "the execution, started", EXECUTION_ACCEPTED_EXAMPLE, HTTP_202_ACCEPTED
            ),
            **example_response(
                ExecutionAccepted, "the execution an earlier request with this key started", EXECUTION_ACCEPTED_EXAMPLE
            ),
            **problems(
                PATH,
                bad_request="Idempotency-Key: keys starting with 'child:' or 'kafka:' are reserved",
                not_found="workflow 'demo.hello' does not exist",
                conflict="workflow 'demo.hello' is disabled",
                invalid=("/input: 'name' is a required property", "/input"),
            ),
        },
    )
    async def start_execution(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        data: Annotated[
            ExecutionCreate,
            Body(examples=[Example(summary="a workflow, its input and a key", value=EXECUTION_CREATE_EXAMPLE)]),
        ],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200, required=False),
        ] = None,
    ) -> Response[ExecutionAccepted]:
        """Start an execution of `workflow` (its latest version, or `version`), like `POST /workflows/{ref}/execute`.

        202 at once, or 200 with the existing execution for a repeated idempotency key (the
        `Idempotency-Key` header or the `idempotencyKey` field; `child:` and `kafka:` prefixes are
        reserved). A key used for another workflow is 409, a disabled workflow 409, input that breaks the
        workflow's `inputSchema` 422 with the failing JSON pointer. `metadata` (string values) and `tags`
        are kept on the execution for list filters.
        """
        started = await execution_service.start(
            tenant_id, data.workflow, with_idempotency_header(data, idempotency_key), caller, actor
        )
        return Response(
            ExecutionAccepted(execution_id=str(started.id), status=started.status, created_at=started.created_at),
            status_code=HTTP_202_ACCEPTED if started.created else HTTP_200_OK,
        )

    @get(
        "/",
        opt=VIEWER,
        summary="List executions",
        responses={
            **example_response(ExecutionPage, "a page of executions, newest first", PAGE_EXAMPLE),
            **problems(
                PATH,
                bad_request="status: 'done' is not one of cancelled, completed, failed, …",
                not_found=NO_TENANT,
            ),
        },
    )
    async def list_executions(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        caller: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        workflow: WorkflowFilter = None,
        status: StatusFilter = None,
        triggered_by: TriggeredByFilter = None,
        started_by: StartedByFilter = None,
        parent_id: ParentFilter = None,
        schedule_id: ScheduleFilter = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        tag: TagFilter = None,
        search: SearchFilter = None,
        sort: Sort = "createdAt",
        order: Order = "desc",
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> ExecutionPage:
        """Executions without their input, output and steps, filtered and sorted; filters combine with AND.

        Custom attributes filter as `metadata.<key>=<value>` (several keys: all must match). `search`
        matches an execution id prefix (with or without hyphens) or text in the workflow ref. Sort by
        `createdAt` (default) or `completedAt`, where unfinished executions come last ascending and first
        descending. `total` counts the matches exactly up to 1,000; past that it is PostgreSQL's estimate and
        `totalExact` is false. Pass `nextCursor` back as `cursor` for the next page (stable while executions
        are added), or page with `offset`. A bad filter value is a 400 naming the parameter.
        """
        filters = execution_filters(
            workflow=workflow,
            statuses=status,
            triggered_by=triggered_by,
            started_by=started_by,
            parent_id=parent_id,
            schedule_id=schedule_id,
            created_after=created_after,
            created_before=created_before,
            tags=tag,
            metadata=_metadata(request),
            search=search,
            caller=caller,
        )
        return await execution_service.list(
            tenant_id, filters, sort=sort, order=order, limit=limit, offset=offset, cursor=cursor
        )

    @get(
        "/{execution_id:str}",
        opt=VIEWER,
        summary="Read an execution",
        responses={
            **example_response(Execution, "the execution with its steps", EXECUTION_EXAMPLE),
            **problems(
                f"{PATH}/{EXECUTION_ID}", bad_request="include: 'steps' is not one of logs", not_found=NOT_FOUND
            ),
        },
    )
    async def get_execution(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        log_service: NamedDependency[LogService],
        execution_id: ExecutionId,
        include: Include = None,
    ) -> Execution:
        """An execution with its steps and how many steps are in each status.

        Status, workflow ref and version, input, output, error, who triggered it, its parent execution and step,
        metadata, tags, timestamps (created, started, completed, cancelled), duration. `include=logs` adds
        `logs`: the execution's latest 100 log records, oldest first, shaped as in `GET /executions/{id}/logs`.

        An execution of another tenant is 404, exactly like one that does not exist.
        """
        included = _includes(include)
        execution = await execution_service.read(tenant_id, execution_id)
        if "logs" in included:
            execution.logs = await log_service.latest_for_execution(tenant_id, execution_id, LATEST_LOGS)
        return execution

    @get(
        "/{execution_id:str}/steps",
        opt=VIEWER,
        summary="List the steps of an execution",
        responses={
            **example_response(StepList, "every step, in definition order", {"steps": [STEP_EXAMPLE]}),
            **problems(f"{PATH}/{EXECUTION_ID}/steps", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def list_steps(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_id: ExecutionId,
        execution_service: NamedDependency[ExecutionService],
    ) -> StepList:
        """Every step execution with its status, attempt count, timestamps, input, output and error.

        `taskId` addresses a step in `GET /tasks/{taskId}` and in the attempts route.
        """
        return await execution_service.steps(tenant_id, execution_id)

    @get(
        "/{execution_id:str}/events",
        opt=VIEWER,
        summary="Read the event log of an execution",
        responses={
            **example_response(EventList, "the first two events, more to come", EVENTS_EXAMPLE),
            **problems(f"{PATH}/{EXECUTION_ID}/events", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def list_events(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_id: ExecutionId,
        execution_service: NamedDependency[ExecutionService],
        since_sequence: SinceSequence = 0,
        limit: EventLimit = 100,
    ) -> EventList:
        """The execution's history in order: events with a sequence above `sinceSequence`, at most `limit`.

        Pass `nextSequence` back as `sinceSequence` to read the next events, or later to poll for new
        ones; `hasMore` says whether more are there already. Sequences are the SSE event ids
        (`Last-Event-ID`).
        """
        return await execution_service.events(tenant_id, execution_id, since_sequence=since_sequence, limit=limit)

    @get(
        "/{execution_id:str}/children",
        opt=VIEWER,
        summary="List the child executions of an execution",
        responses={
            **example_response(ChildList, "the children, oldest first", CHILDREN_EXAMPLE),
            **problems(f"{PATH}/{EXECUTION_ID}/children", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def list_children(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_id: ExecutionId,
        execution_service: NamedDependency[ExecutionService],
        caller: NamedDependency[Principal],
    ) -> ChildList:
        """The executions started by this execution's `workflow` steps; `kind` is the child's workflow ref.

        Only the children the caller may see, as everywhere: its own, and those of public workflows (an admin
        sees all). An empty list when there are none.
        """
        return await execution_service.children(tenant_id, execution_id, caller)

    @get(
        "/{execution_id:str}/tasks/{task_id:str}/attempts",
        opt=VIEWER,
        summary="List the attempts of a task",
        responses={
            **example_response(AttemptList, "a failed attempt, then a successful one", ATTEMPTS_EXAMPLE),
            **problems(
                f"{PATH}/{EXECUTION_ID}/tasks/{TASK_ID}/attempts",
                bad_request="task_id: Invalid UUID",
                not_found=f"execution {EXECUTION_ID} has no task {TASK_ID}",
            ),
        },
    )
    async def list_attempts(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_id: ExecutionId,
        task_id: TaskId,
        execution_service: NamedDependency[ExecutionService],
    ) -> AttemptList:
        """Every attempt of one step of this execution: number, status, times, duration, worker and error.

        `generation` increases on a manual retry or rerun, and `attempt` restarts at 1 with it. A task of
        another execution is 404.
        """
        return await execution_service.attempts(tenant_id, execution_id, task_id)

    @post(
        "/{execution_id:str}/promises/{name:str}/resolve",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Resolve a promise",
        responses={
            **example_response(
                PromiseSettlement,
                "the promise, resolved",
                PROMISE_RESOLVED_EXAMPLE,
            ),
            **problems(
                f"{PATH}/{EXECUTION_ID}/promises/manager-approval/resolve",
                bad_request=BAD_ID,
                not_found=f"execution {EXECUTION_ID} has no promise 'manager-approval'",
                conflict="promise 'manager-approval' is already rejected",
                invalid=("body: Object contains unknown field `valeu`", ""),
            ),
        },
    )
    async def resolve_promise(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
        name: FromPath[str],
        data: JSONBody[PromiseResolve | None] = None,
    ) -> PromiseSettlement:
        """Resolve the promise a wait step waits on; the step completes with `value` as its output."""
        value = (data or PromiseResolve()).value
        return await execution_service.settle_promise(tenant_id, execution_id, name, actor=actor, value=value)

    @post(
        "/{execution_id:str}/promises/{name:str}/reject",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Reject a promise",
        responses={
            **example_response(
                PromiseSettlement,
                "the promise, rejected",
                PROMISE_REJECTED_EXAMPLE,
            ),
            **problems(
                f"{PATH}/{EXECUTION_ID}/promises/manager-approval/reject",
                bad_request=BAD_ID,
                not_found=f"execution {EXECUTION_ID} has no promise 'manager-approval'",
                conflict="promise 'manager-approval' is already resolved",
                invalid=("body: Object contains unknown field `valeu`", ""),
            ),
        },
    )
    async def reject_promise(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
        name: FromPath[str],
        data: JSONBody[PromiseReject | None] = None,
    ) -> PromiseSettlement:
        """Reject the promise a wait step waits on; the step fails with the reason."""
        rejection = data or PromiseReject()
        error = {"message": rejection.reason, **({"details": rejection.details} if rejection.details else {})}
        return await execution_service.settle_promise(tenant_id, execution_id, name, actor=actor, error=error)
