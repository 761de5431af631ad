"""The console's schedules: the list with their next runs, a schedule's page, and pause, resume, trigger, backfill.

Each action is the API's schedule service call under the same role (operator). Done, it redirects to the
schedule's page, which then shows what it did: a trigger's execution as a link, a backfill's bulk operation with
its progress pushed live by the bulk pages' stream. Refused, the schedule's page comes back with the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, FlowlineError, NotFound, ValidationFailed
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.console.views import page_context, pretty
from flowline_api.domain.bulk.service import BulkOperationService
from flowline_api.domain.executions.filters import execution_filters
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.schedules.schemas import BackfillRequest
from flowline_api.domain.schedules.service import ScheduleService, provide_schedule_service
from flowline_api.path_ids import ScheduleId

PAGE_SIZE: Final = 50
RECENT_EXECUTIONS: Final = 20
PAUSED_CHOICES: Final = {"yes": True, "no": False}


def form_moment(value: str, name: str) -> datetime:
    """A ``datetime-local`` field's value, in UTC when it names no zone (as the executions list reads them).

    Raises:
        ValidationFailed: empty, or not a date and time (the pointer names the field).
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise ValidationFailed(f"{name}: {value!r} is not a date and time", pointer=f"/{name}") from err
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def query_id(query: Any, name: str) -> uuid.UUID | None:
    """An id the page was sent back with after an action (``?started=`` or ``?backfill=``).

    Raises:
        ClientError: a value that is not an id.
    """
    value = query.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as err:
        raise ClientError(f"{name}: {value!r} is not an id") from err


class ScheduleReads:
    """What a schedule's page is built from: the services of this request, its caller and tenant."""

    def __init__(
        self,
        tenant_id: uuid.UUID,
        caller: Principal,
        schedules: ScheduleService,
        executions: ExecutionService,
        bulk_operations: BulkOperationService,
    ) -> None:
        self.tenant_id = tenant_id
        self.caller = caller
        self.schedules = schedules
        self.executions = executions
        self.bulk_operations = bulk_operations

    async def page(self, schedule_id: uuid.UUID, query: Any, **shown: Any) -> dict[str, Any]:
        """The schedule, the executions it started that the caller may see, and what the last action did.

        Raises:
            NotFound: no such schedule.
            ClientError: a ``started`` or ``backfill`` value that is not an id.
        """
        schedule = await self.schedules.read(self.tenant_id, schedule_id)
        filters = execution_filters(
            workflow=None,
            statuses=None,
            triggered_by=None,
            started_by=None,
            parent_id=None,
            created_after=None,
            created_before=None,
            tags=None,
            metadata=None,
            search=None,
            caller=self.caller,
            schedule_id=schedule_id,
        )
        recent = await self.executions.list(
            self.tenant_id, filters, sort="createdAt", order="desc", limit=RECENT_EXECUTIONS, offset=0, cursor=None
        )
        backfill_id = query_id(query, "backfill")
        backfill = error = None
        if backfill_id is not None:
            try:
                backfill = await self.bulk_operations.read(self.tenant_id, backfill_id, self.caller)
            except NotFound:  # a link passed on to someone else: the schedule is still theirs to see
                error = f"backfill {backfill_id} is not one of yours, or no longer exists"
        context = page_context(
            self.caller,
            schedule=schedule,
            recent=recent.items,
            started=query_id(query, "started"),
            operation=backfill,
            error=error,
            form={},
            pretty=pretty,
        )
        context.update(shown)
        return context


def provide_schedule_reads(
    tenant_id: NamedDependency[uuid.UUID],
    caller: NamedDependency[Principal],
    schedule_service: NamedDependency[ScheduleService],
    execution_service: NamedDependency[ExecutionService],
    bulk_operation_service: NamedDependency[BulkOperationService],
) -> ScheduleReads:
    """The reads of this request's schedule page."""
    return ScheduleReads(tenant_id, caller, schedule_service, execution_service, bulk_operation_service)


class ConsoleScheduleController(Controller):
    """``/ui/schedules``, ``/ui/schedules/{id}`` and its actions."""

    path = "/schedules"
    dependencies = {
        "schedule_service": Provide(provide_schedule_service, sync_to_thread=False),
        "schedule_reads": Provide(provide_schedule_reads, sync_to_thread=False),
    }

    @get("/", opt=VIEWER, name="console:schedules")
    async def list_page(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        schedule_service: NamedDependency[ScheduleService],
    ) -> Template:
        """Schedules by name, filtered by workflow and paused, each with its next runs and its last run."""
        query = request.query_params
        page = await schedule_service.list(
            tenant_id,
            workflow=query.get("workflow") or None,
            paused=PAUSED_CHOICES.get(query.get("paused", "")),
            limit=PAGE_SIZE,
            offset=0,
            cursor=query.get("cursor") or None,
        )
        kept = [(name, query[name]) for name in ("workflow", "paused") if query.get(name)]
        next_url = "?" + urlencode([*kept, ("cursor", page.next_cursor)]) if page.next_cursor else None
        return Template("schedules.html", context=page_context(caller, page=page, query=query, next_url=next_url))

    @get("/{schedule_id:str}", opt=VIEWER, name="console:schedule")
    async def schedule_page(
        self,
        request: Request[Principal, Any, State],
        schedule_id: ScheduleId,
        schedule_reads: NamedDependency[ScheduleReads],
    ) -> Template:
        """The schedule's settings, next runs, recent executions and, for operators, its actions."""
        context = await schedule_reads.page(schedule_id, request.query_params)
        return Template("schedule.html", context=context)

    async def _answer(
        self,
        request: Request[Principal, Any, State],
        schedule_id: uuid.UUID,
        reads: ScheduleReads,
        action: Callable[[], Awaitable[dict[str, str]]],
    ) -> Redirect | Template:
        """Run the action; back to the schedule's page with what it did, or with the refusal's message."""
        try:
            shown = await action()
        except FlowlineError as error:
            if not isinstance(error, ClientError):
                raise
            form = await request.form()
            context = await reads.page(schedule_id, {}, error=error.detail, form=form)
            return Template("schedule.html", context=context, status_code=error.status_code)
        return Redirect(f"/ui/schedules/{schedule_id}?{urlencode(shown)}", status_code=303)

    @post("/{schedule_id:str}/paused", opt=OPERATOR, name="console:schedule-paused")
    async def set_paused(
        self,
        request: Request[Principal, Any, State],
        schedule_id: ScheduleId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        schedule_service: NamedDependency[ScheduleService],
        schedule_reads: NamedDependency[ScheduleReads],
    ) -> Redirect | Template:
        """Pause the schedule, or resume it from its next fire time after now."""
        paused = (await request.form()).get("paused") == "true"

        async def pause_or_resume() -> dict[str, str]:
            await schedule_service.set_paused(tenant_id, schedule_id, paused, actor)
            return {}

        return await self._answer(request, schedule_id, schedule_reads, pause_or_resume)

    @post("/{schedule_id:str}/trigger", opt=OPERATOR, name="console:schedule-trigger")
    async def trigger(
        self,
        request: Request[Principal, Any, State],
        schedule_id: ScheduleId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        schedule_service: NamedDependency[ScheduleService],
        schedule_reads: NamedDependency[ScheduleReads],
    ) -> Redirect | Template:
        """Start one run now; the schedule's page links to its execution."""

        async def start_now() -> dict[str, str]:
            run = await schedule_service.trigger(tenant_id, schedule_id, actor)
            return {"started": run.execution_id}

        return await self._answer(request, schedule_id, schedule_reads, start_now)

    @post("/{schedule_id:str}/backfill", opt=OPERATOR, name="console:schedule-backfill")
    async def backfill(
        self,
        request: Request[Principal, Any, State],
        schedule_id: ScheduleId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        schedule_service: NamedDependency[ScheduleService],
        schedule_reads: NamedDependency[ScheduleReads],
    ) -> Redirect | Template:
        """Start one run per fire time in [start, end) as a bulk operation; the page follows its progress."""
        form = await request.form()

        async def start_backfill() -> dict[str, str]:
            window = BackfillRequest(
                start=form_moment(str(form.get("start") or ""), "start"),
                end=form_moment(str(form.get("end") or ""), "end"),
            )
            operation = await schedule_service.backfill(tenant_id, schedule_id, window, caller, actor)
            return {"backfill": operation.id}

        return await self._answer(request, schedule_id, schedule_reads, start_backfill)
