"""The console's executions: the filtered list with counts per status, and one execution's page."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from flowline.db.execution_reads import ExecutionFilters, count_executions
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, NotFound
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import Stream, Template

from flowline_api.auth import VIEWER
from flowline_api.console.version_steps import VersionStepsCache
from flowline_api.console.views import (
    EVENT_PAGE,
    LEVELS,
    LOG_PARAMETERS,
    SEARCH_CONTEXT,
    PageLinks,
    diff_attempts,
    execution_view,
    log_query_from,
    page_context,
    pretty,
    step_pane,
)
from flowline_api.domain.executions.filters import execution_filters
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.logs.service import LogService, PageWanted
from flowline_api.domain.workflows.service import WorkflowService
from flowline_api.path_ids import ExecutionId

PAGE_SIZE: Final = 50
LOG_PAGE_SIZE: Final = 500
ORDERED_STATUSES: Final = ("pending", "running", "paused", "completed", "failed", "cancelled")
FILTER_NAMES: Final = ("status", "workflow", "startedBy", "tag", "meta", "createdAfter", "createdBefore", "scheduleId")


def _moment(value: str | None, name: str) -> datetime | None:
    """A ``datetime-local`` field's value (UTC when it has no zone).

    Raises:
        ClientError: not a date and time.
    """
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise ClientError(f"{name}: {value!r} is not a date and time") from err


def _metadata(pairs: list[str]) -> dict[str, str] | None:
    """``meta=key=value`` fields as one object.

    Raises:
        ClientError: a pair without ``=`` or with an empty key.
    """
    metadata: dict[str, str] = {}
    for pair in pairs:
        if not pair.strip():
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ClientError(f"meta: {pair!r} is not key=value")
        metadata[key.strip()] = value.strip()
    return metadata or None


def _schedule_id(value: str | None) -> uuid.UUID | None:
    """The ``scheduleId`` filter (the runs of one schedule).

    Raises:
        ClientError: not a schedule id.
    """
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as err:
        raise ClientError(f"scheduleId: {value!r} is not a schedule id") from err


def list_filters(query: Any, caller: Principal) -> ExecutionFilters:
    """The list's filters from its query string (the same filter the API's list and bulk operations build).

    Raises:
        ClientError: an unknown status, a bad time or a bad metadata pair.
    """
    return execution_filters(
        workflow=query.get("workflow") or None,
        statuses=query.getall("status", []),
        triggered_by=None,
        started_by=query.get("startedBy") or None,
        parent_id=None,
        created_after=_moment(query.get("createdAfter"), "createdAfter"),
        created_before=_moment(query.get("createdBefore"), "createdBefore"),
        tags=query.getall("tag", []),
        metadata=_metadata(query.getall("meta", [])),
        search=None,
        caller=caller,
        schedule_id=_schedule_id(query.get("scheduleId")),
    )


def filter_query(query: Any) -> list[tuple[str, str]]:
    """The filter part of a list's query string (what the next page and the bulk forms carry on)."""
    return [(name, value) for name, value in query.multi_items() if name in FILTER_NAMES and value]


class ConsoleExecutionController(Controller):
    """``/ui/executions`` and ``/ui/executions/{id}``."""

    path = "/executions"

    @get("/", opt=VIEWER, name="console:executions")
    async def list_page(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        execution_service: NamedDependency[ExecutionService],
    ) -> Template:
        """The list, newest first, a page at a time (keyset), with how many match in each status."""
        query = request.query_params
        kept = filter_query(query)
        context = page_context(caller, query=query, kept=kept, statuses=ORDERED_STATUSES, error=None)
        try:
            filters = list_filters(query, caller)
            page = await execution_service.list(
                tenant_id,
                filters,
                sort="createdAt",
                order="desc",
                limit=PAGE_SIZE,
                offset=0,
                cursor=query.get("cursor") or None,
            )
        except ClientError as error:
            context.update(error=error.detail, page=None, counts={})
            return Template("executions.html", context=context, status_code=400)
        counts = {}
        async with request.app.state.pool.acquire() as connection:
            for status in ORDERED_STATUSES:
                counted = dataclasses.replace(filters, statuses=[status])
                counts[status] = await count_executions(connection, tenant_id, counted)
        next_url = None
        if page.next_cursor:
            next_url = "?" + urlencode([*kept, ("cursor", page.next_cursor)])
        unfinished = [item.id for item in page.items if item.status not in ("completed", "failed", "cancelled")]
        context.update(
            page=page,
            counts=counts,
            next_url=next_url,
            filter_string=urlencode(kept),
            live_ids=",".join(unfinished),  # the rows that may still change, kept current over SSE
        )
        return Template("executions.html", context=context)

    @get("/{execution_id:str}", opt=VIEWER, name="console:execution")
    async def execution_page(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        page_reads: NamedDependency[PageReads],
    ) -> Template:
        """The graph, the selected step (``?step=``), the execution's details, its history and its actions."""
        context = await execution_context(request, page_reads, execution_id)
        return Template("execution.html", context=context)

    @get("/{execution_id:str}/attempts/diff", opt=VIEWER, name="console:attempt-diff")
    async def attempt_diff_page(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        caller: NamedDependency[Principal],
        page_reads: NamedDependency[PageReads],
    ) -> Template:
        """Two attempts of a step (``?step=<id>&a=<generation.attempt>&b=…``): their input and output diffed.

        Raises:
            NotFound: no such execution, or it has no step ``step`` that ran.
            ClientError: ``a`` or ``b`` is not one of the step's attempts.
        """
        query = request.query_params
        step_id = query.get("step") or ""
        steps = await page_reads.executions.steps(page_reads.tenant_id, execution_id)
        run = next((step for step in steps.steps if step.step_id == step_id), None)
        if run is None:
            raise NotFound(f"execution {execution_id} has no step {step_id!r} that ran")
        attempts = await page_reads.executions.attempts(page_reads.tenant_id, execution_id, uuid.UUID(run.task_id))
        diff = diff_attempts(attempts, query.get("a") or "", query.get("b") or "")
        context = page_context(caller, execution_id=str(execution_id), step_id=step_id, diff=diff, pretty=pretty)
        return Template("attempt_diff.html", context=context)

    @get("/{execution_id:str}/logs", opt=VIEWER, name="console:log-pages")
    async def log_page(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        caller: NamedDependency[Principal],
        page_reads: NamedDependency[PageReads],
    ) -> Template:
        """The execution's log records, every step's or one's, by level and attempt, a page at a time.

        A search (``q``) shows its matches with records around them and pages on with the API's cursor (a search
        has no count to page back by); the plain list pages by offset.

        Raises:
            ClientError: an unknown level, a bad attempt, context or offset, or a search too long.
        """
        query = request.query_params
        offset = query.get("offset", "0")
        if not offset.isdigit():
            raise ClientError(f"offset: {offset!r} is not a number of records")
        log_query = log_query_from(query, step_id=query.get("step") or None)
        page = await page_reads.logs.list_for_execution(
            page_reads.tenant_id,
            execution_id,
            log_query,
            PageWanted(limit=LOG_PAGE_SIZE, offset=int(offset), cursor=query.get("cursor") or None),
        )
        steps = await page_reads.executions.steps(page_reads.tenant_id, execution_id)
        kept = [(name, value) for name, value in query.multi_items() if name in LOG_PARAMETERS and value]
        if log_query.text is not None:
            previous = None
            following = urlencode([*kept, ("cursor", page.next_cursor)]) if page.next_cursor else None
        else:
            previous = urlencode([*kept, ("offset", max(0, page.offset - LOG_PAGE_SIZE))]) if page.offset else None
            shown = page.offset + len(page.logs)
            following = urlencode([*kept, ("offset", shown)]) if shown < (page.total or 0) else None
        context = page_context(
            caller,
            execution_id=str(execution_id),
            page=page,
            query=query,
            search=log_query.text,
            context=log_query.context if log_query.text is not None else SEARCH_CONTEXT,
            levels=LEVELS,
            steps=sorted({step.step_id for step in steps.steps}),
            previous=previous,
            following=following,
        )
        return Template("logs.html", context=context)

    @get("/{execution_id:str}/logs.txt", opt=VIEWER, name="console:logs")
    async def download_logs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_id: ExecutionId,
        log_service: NamedDependency[LogService],
    ) -> Stream:
        """Every log record of the execution as a text file (the API's download)."""
        await log_service.require_execution(tenant_id, execution_id)
        return Stream(
            log_service.download(tenant_id, execution_id, "text"),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{execution_id}.log"'},
        )


@dataclass(frozen=True, slots=True)
class PageReads:
    """The services an execution page reads from, for the caller's tenant."""

    tenant_id: uuid.UUID
    executions: ExecutionService
    workflows: WorkflowService
    logs: LogService
    version_steps: VersionStepsCache


def provide_page_reads(
    tenant_id: NamedDependency[uuid.UUID],
    execution_service: NamedDependency[ExecutionService],
    workflow_service: NamedDependency[WorkflowService],
    log_service: NamedDependency[LogService],
    state: State,
) -> PageReads:
    """The reads of an execution page (its actions show the page again when the API refuses them)."""
    return PageReads(tenant_id, execution_service, workflow_service, log_service, state.version_steps)


async def execution_context(
    request: Request[Principal, Any, State], reads: PageReads, execution_id: uuid.UUID, **extra: Any
) -> dict[str, Any]:
    """Everything the execution page shows; ``extra`` adds an action's answer (``notice``, ``error``, ``retry_form``).

    Raises:
        NotFound: no such execution in this tenant.
        ClientError: a bad ``level`` or ``after`` in the query string.
    """
    query = request.query_params
    tenant_id, caller = reads.tenant_id, request.user
    # Read before the view: the page shows at least this much, so its live stream need not resend it unchanged.
    shown_sequence = await reads.executions.event_sequence(tenant_id, execution_id)
    view = await execution_view(reads.executions, reads.workflows, reads.version_steps, tenant_id, execution_id, query)
    pane = await step_pane(
        view, reads.executions, reads.logs, tenant_id, query.get("step") or None, log_query_from(query)
    )
    after = query.get("after", "0")
    if not after.isdigit():
        raise ClientError(f"after: {after!r} is not an event sequence")
    events = await reads.executions.events(tenant_id, execution_id, since_sequence=int(after), limit=EVENT_PAGE)
    links = PageLinks.of(query)
    children = await reads.executions.children(tenant_id, execution_id, caller)
    return page_context(
        caller,
        view=view,
        execution=view.execution,
        graph=view.graph,
        pane=pane,
        selected=pane.step_id if pane else None,
        events=events,
        children=children.children,
        levels=LEVELS,
        pretty=pretty,
        summary=view.summary,
        links=links,
        step_log_query=urlencode(
            [(name, value) for name, value in query.multi_items() if name in LOG_PARAMETERS and value]
        ),
        # The live fragments are rendered for the same step, logs query, pages and expanded fan-outs as the page.
        live_query=links.live,
        shown_sequence=shown_sequence,
        notice=extra.get("notice") or query.get("notice"),
        error=extra.get("error"),
        retry_form=extra.get("retry_form"),  # the retry form as filled in, with its preview, once previewed
    )
