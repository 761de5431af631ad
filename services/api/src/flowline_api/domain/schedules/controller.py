"""Routes of schedules: cron and interval runs of a workflow, fired by the scheduler."""

from __future__ import annotations

import uuid
from typing import Annotated

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline_schemas.bulk import BulkOperation
from flowline_schemas.schedules import BackfillPreview, Schedule, TriggeredRun
from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.openapi import NO_TENANT, example_response, problems
from flowline_api.domain.schedules.examples import (
    BACKFILL_EXAMPLE,
    BAD_CRON,
    CREATE_EXAMPLE,
    NOT_FOUND,
    PATCH_EXAMPLE,
    PATH,
    PREVIEW_EXAMPLE,
    SCHEDULE_ID,
)
from flowline_api.domain.schedules.schemas import BackfillRequest, ScheduleCreate, ScheduleUpdate
from flowline_api.domain.schedules.service import ScheduleService, provide_schedule_service
from flowline_api.pagination import Cursor, Limit, Offset, SchedulePage
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, ScheduleId

ONE_PROBLEMS = problems(f"{PATH}/{SCHEDULE_ID}", not_found=NOT_FOUND)


class ScheduleController(Controller):
    """``/api/v1/tenants/{tenant}/schedules``: runs of a workflow on a cron or an interval."""

    path = "/schedules"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["schedules"]
    dependencies = {"schedule_service": Provide(provide_schedule_service, sync_to_thread=False)}

    @post(
        "/",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Create a schedule",
        responses=problems(
            PATH,
            not_found="workflow 'billing.invoice' does not exist",
            conflict="schedule 'nightly-invoices' already exists",
            invalid=BAD_CRON,
        ),
    )
    async def create_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        data: Annotated[ScheduleCreate, Body(examples=[Example(summary="every night at 3", value=CREATE_EXAMPLE)])],
    ) -> Schedule:
        """Run `workflowRef` on a `cron` (in `timezone`) or every `interval`: exactly one of the two.

        `cron` takes five fields, six with seconds first, or `@hourly`, `@daily`, `@weekly`, `@monthly`,
        `@yearly`. A local time that does not exist (DST starts) is skipped; one that happens twice (DST ends)
        runs once. `overlap` says what a due run does while the previous one still runs: `skip` (default),
        `buffer_one` (start it when that one finishes; at most one waits), `allow`, or `cancel_previous`.
        Runs missed while the scheduler was down start on its return if no later than `catchupWindow`
        (default `1m`; `0` never), oldest first. Runs are owned by the caller. 422 names the bad field; 404
        for an unknown workflow; 409 when the name is taken.
        """
        return await schedule_service.create(tenant_id, data, caller, actor)

    @get(
        "/",
        opt=VIEWER,
        summary="List schedules",
        responses=problems(PATH, bad_request="cursor: not a cursor returned by this list", not_found=NO_TENANT),
    )
    async def list_schedules(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        workflow: Annotated[
            str | None, QueryParameter(max_length=200, description="only schedules of this workflow ref")
        ] = None,
        paused: Annotated[bool | None, QueryParameter(description="only paused (true) or active (false)")] = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> SchedulePage:
        """Schedules ordered by name, one page at a time (`nextCursor` for stable deep pages)."""
        return await schedule_service.list(
            tenant_id, workflow=workflow, paused=paused, limit=limit, offset=offset, cursor=cursor
        )

    @get("/{schedule_id:str}", opt=VIEWER, summary="Read a schedule", responses=ONE_PROBLEMS)
    async def get_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        schedule_id: ScheduleId,
    ) -> Schedule:
        """One schedule, with its next five fire times (`nextRunAt`) and its latest run (`lastRun`)."""
        return await schedule_service.read(tenant_id, schedule_id)

    @patch(
        "/{schedule_id:str}",
        opt=OPERATOR,
        summary="Change some fields of a schedule",
        responses=problems(
            f"{PATH}/{SCHEDULE_ID}",
            not_found=NOT_FOUND,
            conflict="schedule 'nightly-invoices' already exists",
            invalid=BAD_CRON,
        ),
    )
    async def patch_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
        data: Annotated[
            ScheduleUpdate,
            Body(
                description="Fields to change; absent fields keep their value",
                examples=[Example(summary="every five minutes, runs may overlap", value=PATCH_EXAMPLE)],
            ),
        ],
    ) -> Schedule:
        """A JSON merge patch (RFC 7396) of the schedule's fields, as `application/merge-patch+json` or JSON.

        Omitted fields keep their value, null clears an optional one; `cron` replaces `interval` and the other
        way round. The next run is worked out again from now.
        """
        return await schedule_service.update(tenant_id, schedule_id, data, actor)

    @delete(
        "/{schedule_id:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a schedule",
        responses=ONE_PROBLEMS,
    )
    async def delete_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
    ) -> None:
        """Delete a schedule: no more runs start; the executions it started stay."""
        await schedule_service.delete(tenant_id, schedule_id, actor)

    @post("/{schedule_id:str}/pause", opt=OPERATOR, summary="Pause a schedule", responses=ONE_PROBLEMS)
    async def pause_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
    ) -> Schedule:
        """Stop starting runs until resumed (a waiting `buffer_one` run is dropped); runs going on continue."""
        return await schedule_service.set_paused(tenant_id, schedule_id, True, actor)

    @post("/{schedule_id:str}/resume", opt=OPERATOR, summary="Resume a schedule", responses=ONE_PROBLEMS)
    async def resume_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
    ) -> Schedule:
        """Start runs again from the next fire time after now: times missed while paused are not run."""
        return await schedule_service.set_paused(tenant_id, schedule_id, False, actor)

    @post(
        "/{schedule_id:str}/trigger",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Start a run now",
        responses=problems(f"{PATH}/{SCHEDULE_ID}/trigger", not_found=NOT_FOUND, conflict="workflow is disabled"),
    )
    async def trigger_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
    ) -> TriggeredRun:
        """Start one run now, with `scheduledFor` now, whatever the overlap policy and even when paused."""
        return await schedule_service.trigger(tenant_id, schedule_id, actor)

    @post(
        "/{schedule_id:str}/backfill",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Backfill a window of a schedule",
        responses={
            **example_response(BackfillPreview, "a dry run: the times, nothing started", PREVIEW_EXAMPLE),
            **problems(
                f"{PATH}/{SCHEDULE_ID}/backfill", not_found=NOT_FOUND, invalid=("end: must be after start", "/end")
            ),
        },
    )
    async def backfill_schedule(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        schedule_service: NamedDependency[ScheduleService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        schedule_id: ScheduleId,
        data: Annotated[
            BackfillRequest,
            Body(description="The window [start, end)", examples=[Example(summary="one day", value=BACKFILL_EXAMPLE)]),
        ],
    ) -> Response[BulkOperation | BackfillPreview]:
        """Start one run per time the schedule would have fired in [`start`, `end`), at a bounded rate.

        Answers 202 with a bulk operation (`GET /bulk-operations/{id}` shows its progress); paused schedules
        can be backfilled too. Each run has the `scheduledFor` of its fire time, and a time that already has its
        run (the same window backfilled again, or the live schedule) starts nothing new: it counts as skipped.
        At most 10,000 fire times per backfill. `dryRun: true` answers 200 with the fire times and how many of
        them are `new` (have no run yet), and starts and stores nothing.
        """
        if data.dry_run:
            preview = await schedule_service.preview_backfill(tenant_id, schedule_id, data)
            return Response(preview, status_code=HTTP_200_OK)
        operation = await schedule_service.backfill(tenant_id, schedule_id, data, caller, actor)
        return Response(operation, status_code=HTTP_202_ACCEPTED)
