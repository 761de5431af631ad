"""Schedule use cases: create, read, list, change, delete, pause, resume, trigger, backfill; every change audited."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.bulk_operations import BulkSelection, ScheduleWindow, create_bulk_operation
from flowline.db.schedules import (
    count_started_runs,
    last_run_status,
    next_run_after,
    read_schedule,
    record_run,
    start_run,
    timing_of,
)
from flowline.db.workflows import read_workflow
from flowline.domain.credentials import Principal
from flowline.domain.definitions import parse_duration
from flowline.domain.schedules import (
    check_cron,
    check_interval,
    check_timezone,
    fire_times,
    format_interval,
    next_fire_times,
)
from flowline.errors import ClientError, Conflict, NotFound, ValidationFailed
from flowline.kafka.outbox import OutboxPublisher
from flowline.runtime.ids import uuid7
from flowline.settings import Settings, Topics
from flowline_schemas.bulk import BulkOperation
from flowline_schemas.pagination import Page
from flowline_schemas.schedules import BackfillPreview, LastRun, Schedule, TriggeredRun
from litestar.di import NamedDependency

from flowline_api.domain.bulk.service import to_operation
from flowline_api.domain.schedules.schemas import BackfillRequest, ScheduleCreate, ScheduleUpdate
from flowline_api.pagination import decode_cursor, encode_cursor

ENTITY_TYPE = "schedule"
# How many fire times a response previews as ``nextRunAt``.
PREVIEW_RUNS = 5
# A backfill starts at most this many runs: a wider window is refused rather than queued for days.
MAX_BACKFILL_RUNS = 10_000
_ZERO = re.compile(r"0+(\.0+)?(ms|s|m|h|d)?")
# The columns a client sets, in the order of the INSERT and UPDATE statements.
_FIELDS = (
    "name",
    "description",
    "workflow_ref",
    "workflow_version",
    "cron",
    "interval_ms",
    "timezone",
    "input",
    "overlap",
    "catchup_window_ms",
    "start_at",
    "end_at",
    "paused",
    "metadata",
    "tags",
)
# The columns that decide when a schedule fires: a change to one works out its next run again, from now.
_TIMING_FIELDS = ("cron", "interval_ms", "timezone", "start_at", "end_at", "paused")
# The API's name of each column that differs.
_API_NAMES = {
    "workflow_ref": "workflowRef",
    "workflow_version": "version",
    "interval_ms": "interval",
    "catchup_window_ms": "catchupWindow",
    "start_at": "startAt",
    "end_at": "endAt",
}


def _catchup_ms(value: str | int) -> int:
    """Milliseconds of a catch-up window: a duration, or seconds; zero (``0``, ``"0s"``) is never.

    Raises:
        ValidationFailed: neither, or negative (pointer ``/catchupWindow``).
    """
    if value == 0 or (isinstance(value, str) and _ZERO.fullmatch(value.strip())):
        return 0
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise ValidationFailed(f"catchupWindow: {err}", pointer="/catchupWindow") from err
    return round(seconds * 1000)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _check_values(values: dict[str, Any]) -> None:
    """Check a schedule's fields together (each of them alone was checked by its type or when converted).

    Raises:
        ValidationFailed: both or neither of cron and interval, or an end before the start.
    """
    if (values["cron"] is None) == (values["interval_ms"] is None):
        given = "both" if values["cron"] is not None else "neither"
        raise ValidationFailed(f"cron: give exactly one of cron and interval, not {given}", pointer="/cron")
    if values["start_at"] is not None and values["end_at"] is not None and values["end_at"] <= values["start_at"]:
        raise ValidationFailed("endAt: must be after startAt", pointer="/endAt")


def _audited(record: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    audited = {_API_NAMES.get(field, field): record[field] for field in _FIELDS}
    audited["tags"] = list(audited["tags"] or [])
    return audited


def to_schedule(record: asyncpg.Record, statuses: dict[uuid.UUID, str], now: datetime) -> Schedule:
    """The response body of a schedule row, with its next fire times after ``now`` and its last run."""
    last_run = None
    if record["last_execution_id"] is not None:
        last_run = LastRun(
            scheduled_for=record["last_run_at"],
            execution_id=str(record["last_execution_id"]),
            status=statuses.get(record["last_execution_id"]),
        )
    interval_ms = record["interval_ms"]
    return Schedule(
        id=str(record["id"]),
        name=record["name"],
        description=record["description"],
        workflow_ref=record["workflow_ref"],
        version=record["workflow_version"],
        cron=record["cron"],
        interval=None if interval_ms is None else format_interval(timedelta(milliseconds=interval_ms)),
        timezone=record["timezone"],
        input=record["input"],
        overlap=record["overlap"],
        catchup_window=format_interval(timedelta(milliseconds=record["catchup_window_ms"]))
        if record["catchup_window_ms"]
        else "0s",
        start_at=record["start_at"],
        end_at=record["end_at"],
        paused=record["paused"],
        metadata=record["metadata"],
        tags=list(record["tags"]),
        next_run_at=[] if record["paused"] else next_fire_times(timing_of(record), now, PREVIEW_RUNS),
        last_run=last_run,
        created_by=record["created_by"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


class ScheduleService:
    """Stores schedules; the scheduler fires them (flowline_scheduler.schedules)."""

    def __init__(self, pool: asyncpg.Pool, outbox: OutboxPublisher, topics: Topics) -> None:
        self._pool = pool
        self._outbox = outbox
        self._topics = topics

    async def _respond(self, connection: asyncpg.Connection | asyncpg.Pool, record: asyncpg.Record) -> Schedule:
        statuses = await last_run_status(connection, [record])
        return to_schedule(record, statuses, datetime.now(UTC))

    async def _check_workflow(
        self, connection: asyncpg.Connection, tenant_id: uuid.UUID, values: dict[str, Any]
    ) -> None:
        """Raises NotFound for an unknown workflow, or version of it."""
        await read_workflow(connection, tenant_id, values["workflow_ref"], values["workflow_version"])

    async def create(self, tenant_id: uuid.UUID, data: ScheduleCreate, caller: Principal, actor: Actor) -> Schedule:
        """Store a schedule; the scheduler fires it from its first fire time after now.

        Raises:
            ValidationFailed: a bad cron, interval, time zone or catch-up window, both or neither of cron and
                interval, or an end before the start (the pointer names the field).
            NotFound: no such workflow (or version of it).
            Conflict: the tenant has a schedule of this name.
        """
        values: dict[str, Any] = {
            "name": data.name,
            "description": data.description,
            "workflow_ref": data.workflow_ref,
            "workflow_version": data.version,
            "cron": None if data.cron is None else check_cron(data.cron),
            "interval_ms": None if data.interval is None else _interval_ms(data.interval),
            "timezone": check_timezone(data.timezone).key,
            "input": data.input,
            "overlap": data.overlap,
            "catchup_window_ms": _catchup_ms(data.catchup_window),
            "start_at": _utc(data.start_at),
            "end_at": _utc(data.end_at),
            "paused": data.paused,
            "metadata": data.metadata or {},
            "tags": data.tags or [],
        }
        _check_values(values)
        async with self._pool.acquire() as connection, connection.transaction():
            await self._check_workflow(connection, tenant_id, values)
            schedule_id = uuid7()
            now: datetime = await connection.fetchval("SELECT now()")
            columns = ", ".join(_FIELDS)
            placeholders = ", ".join(f"${position}" for position in range(5, len(_FIELDS) + 5))
            try:
                record = await connection.fetchrow(
                    f"INSERT INTO schedules (id, tenant_id, created_by, created_at, {columns}) "
                    f"VALUES ($1, $2, $3, $4, {placeholders}) RETURNING *",
                    schedule_id,
                    tenant_id,
                    caller.subject,
                    now,
                    *(values[field] for field in _FIELDS),
                )
            except asyncpg.UniqueViolationError as err:
                raise Conflict(f"schedule {data.name!r} already exists") from err
            assert record is not None
            record = await self._set_next_run(connection, record, now)
            await self._audit(connection, tenant_id, record, "create", actor, field_changes(None, _audited(record)))
            return await self._respond(connection, record)

    async def _set_next_run(
        self, connection: asyncpg.Connection, record: asyncpg.Record, after: datetime
    ) -> asyncpg.Record:
        """Store the schedule's first fire time after ``after`` as when the scheduler takes it next."""
        updated: asyncpg.Record = await connection.fetchrow(
            "UPDATE schedules SET next_run_at = $2 WHERE id = $1 RETURNING *",
            record["id"],
            next_run_after(record, after),
        )
        return updated

    async def _audit(
        self,
        connection: asyncpg.Connection,
        tenant_id: uuid.UUID,
        record: asyncpg.Record,
        action: str,
        actor: Actor,
        changes: dict[str, dict[str, Any]] | None,
    ) -> None:
        await record_audit(
            connection,
            tenant_id=tenant_id,
            entity_type=ENTITY_TYPE,
            entity_id=str(record["id"]),
            action=action,
            actor=actor,
            changes=changes,
        )

    async def read(self, tenant_id: uuid.UUID, schedule_id: uuid.UUID) -> Schedule:
        """One schedule with its next fire times and last run.

        Raises:
            NotFound: no such schedule in this tenant.
        """
        async with self._pool.acquire() as connection:
            return await self._respond(connection, await read_schedule(connection, tenant_id, schedule_id))

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        workflow: str | None,
        paused: bool | None,
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> Page[Schedule]:
        """One page of schedules ordered by name (unique in a tenant), optionally of one workflow or pause state.

        Raises:
            ClientError: a cursor this list did not write, or a cursor together with an offset.
        """
        where = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        if workflow:
            args.append(workflow)
            where.append(f"workflow_ref = ${len(args)}")
        if paused is not None:
            args.append(paused)
            where.append(f"paused = ${len(args)}")
        count_sql = f"SELECT count(*) FROM schedules WHERE {' AND '.join(where)}"
        count_args = list(args)
        if cursor is not None:
            if offset:
                raise ClientError("give either offset or cursor, not both")
            (after_name,) = decode_cursor(cursor, 1)
            if not isinstance(after_name, str):
                raise ClientError("cursor: not a cursor returned by this list")
            args.append(after_name)
            where.append(f"name > ${len(args)}")
        args.extend([limit + 1, offset])
        async with self._pool.acquire() as connection:
            total = await connection.fetchval(count_sql, *count_args)
            records = await connection.fetch(
                f"SELECT * FROM schedules WHERE {' AND '.join(where)} "
                f"ORDER BY name LIMIT ${len(args) - 1} OFFSET ${len(args)}",
                *args,
            )
            page = records[:limit]
            statuses = await last_run_status(connection, page)
        now = datetime.now(UTC)
        next_cursor = encode_cursor([page[-1]["name"]]) if len(records) > limit and page else None
        return Page(
            items=[to_schedule(record, statuses, now) for record in page],
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=next_cursor,
        )

    async def update(
        self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, data: ScheduleUpdate, actor: Actor
    ) -> Schedule:
        """Change a schedule's fields; a change of its timing works out its next fire time again, from now.

        Raises:
            NotFound: no such schedule, or a new workflow (or version) that does not exist.
            ValidationFailed: as for create.
            Conflict: another schedule has the new name.
        """
        changed = msgspec.structs.asdict(data)
        async with self._pool.acquire() as connection, connection.transaction():
            current = await read_schedule(connection, tenant_id, schedule_id, lock=True)
            values = {field: current[field] for field in _FIELDS}
            values["tags"] = list(values["tags"])
            given = {name: value for name, value in changed.items() if value is not msgspec.UNSET}
            values.update(_column_values(given))
            if "cron" in given and given["cron"] is not None and "interval" not in given:
                values["interval_ms"] = None
            if "interval" in given and given["interval"] is not None and "cron" not in given:
                values["cron"] = None
            _check_values(values)
            if "workflow_ref" in given or "version" in given:
                await self._check_workflow(connection, tenant_id, values)
            changes = field_changes(_audited(current), _audited(values))
            if not changes:
                return await self._respond(connection, current)
            assignments = ", ".join(f"{field} = ${position}" for position, field in enumerate(_FIELDS, start=3))
            try:
                record = await connection.fetchrow(
                    f"UPDATE schedules SET {assignments}, updated_at = now() WHERE tenant_id = $1 AND id = $2 "
                    "RETURNING *",
                    tenant_id,
                    schedule_id,
                    *(values[field] for field in _FIELDS),
                )
            except asyncpg.UniqueViolationError as err:
                raise Conflict(f"schedule {values['name']!r} already exists") from err
            assert record is not None
            if any(values[field] != current[field] for field in _TIMING_FIELDS):
                record = await self._set_next_run(connection, record, await connection.fetchval("SELECT now()"))
            await self._audit(connection, tenant_id, record, "update", actor, changes)
            return await self._respond(connection, record)

    async def delete(self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, actor: Actor) -> None:
        """Delete a schedule: it fires no more; the executions it started stay.

        Raises:
            NotFound: no such schedule.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            record = await connection.fetchrow(
                "DELETE FROM schedules WHERE tenant_id = $1 AND id = $2 RETURNING *", tenant_id, schedule_id
            )
            if record is None:
                raise NotFound(f"schedule {schedule_id} does not exist")
            await self._audit(connection, tenant_id, record, "delete", actor, field_changes(_audited(record), None))

    async def set_paused(self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, paused: bool, actor: Actor) -> Schedule:
        """Pause a schedule, or resume it from its first fire time after now (what it missed meanwhile is not run).

        Pausing a paused schedule, or resuming a running one, changes nothing.

        Raises:
            NotFound: no such schedule.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            current = await read_schedule(connection, tenant_id, schedule_id, lock=True)
            if current["paused"] == paused:
                return await self._respond(connection, current)
            record = await connection.fetchrow(
                "UPDATE schedules SET paused = $2, buffered_for = NULL, updated_at = now() WHERE id = $1 RETURNING *",
                schedule_id,
                paused,
            )
            if not paused:
                record = await self._set_next_run(connection, record, await connection.fetchval("SELECT now()"))
            action = "pause" if paused else "resume"
            await self._audit(
                connection, tenant_id, record, action, actor, {"paused": {"before": not paused, "after": paused}}
            )
            return await self._respond(connection, record)

    async def trigger(self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, actor: Actor) -> TriggeredRun:
        """Start one run now (``scheduledFor`` now), whatever the overlap policy and even when paused.

        Raises:
            NotFound: no such schedule, or its workflow no longer exists.
            Conflict: its workflow is disabled.
            ValidationFailed: its input does not match the workflow's input schema.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            schedule = await read_schedule(connection, tenant_id, schedule_id, lock=True)
            now: datetime = await connection.fetchval("SELECT now()")
            started = await start_run(connection, self._topics, schedule, now)
            await record_run(connection, schedule_id, now, started.id)
            await self._audit(
                connection,
                tenant_id,
                schedule,
                "trigger",
                actor,
                {"execution": {"before": None, "after": str(started.id)}},
            )
        await self._outbox.publish(started.outbox)
        return TriggeredRun(execution_id=str(started.id), scheduled_for=now)

    async def backfill(
        self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, data: BackfillRequest, caller: Principal, actor: Actor
    ) -> BulkOperation:
        """A bulk operation that starts one run per fire time in [start, end) (paused schedules too).

        A time that already has its run (a backfill of the same window, or the live schedule) starts nothing
        new: the operation counts it as skipped.

        Raises:
            NotFound: no such schedule.
            ValidationFailed: an end not after the start, or more than 10,000 fire times in the window.
        """
        start, end = _window(data)
        async with self._pool.acquire() as connection, connection.transaction():
            schedule = await read_schedule(connection, tenant_id, schedule_id)
            times = _window_times(schedule, start, end)
            record = await create_bulk_operation(
                connection,
                tenant_id=tenant_id,
                kind="backfill",
                selection=BulkSelection(backfill=ScheduleWindow(schedule_id=schedule_id, start=start, end=end)),
                note=f"backfill of schedule {schedule['name']}",
                dry_run=False,
                created_by=caller.subject,
                total=len(times),
            )
            await self._audit(
                connection,
                tenant_id,
                schedule,
                "backfill",
                actor,
                {"backfill": {"before": None, "after": {"start": start.isoformat(), "end": end.isoformat()}}},
            )
        return to_operation(record)

    async def preview_backfill(
        self, tenant_id: uuid.UUID, schedule_id: uuid.UUID, data: BackfillRequest
    ) -> BackfillPreview:
        """What ``backfill`` would start: the fire times in [start, end) and how many have no run yet.

        Raises:
            NotFound: no such schedule.
            ValidationFailed: as for ``backfill``.
        """
        start, end = _window(data)
        async with self._pool.acquire() as connection:
            schedule = await read_schedule(connection, tenant_id, schedule_id)
            times = _window_times(schedule, start, end)
            started = await count_started_runs(connection, schedule, times)
        return BackfillPreview(times=times, total=len(times), new=len(times) - started)


def _window(data: BackfillRequest) -> tuple[datetime, datetime]:
    """A backfill's [start, end), in UTC.

    Raises:
        ValidationFailed: the end is not after the start.
    """
    start, end = _utc(data.start), _utc(data.end)
    assert start is not None and end is not None
    if end <= start:
        raise ValidationFailed("end: must be after start", pointer="/end")
    return start, end


def _window_times(schedule: asyncpg.Record, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's fire times in [start, end).

    Raises:
        ValidationFailed: more than ``MAX_BACKFILL_RUNS`` of them.
    """
    times: list[datetime] = []
    for instant in fire_times(timing_of(schedule), start - timedelta(microseconds=1)):
        if instant >= end:
            break
        if len(times) == MAX_BACKFILL_RUNS:
            raise ValidationFailed(
                f"end: the window holds more than {MAX_BACKFILL_RUNS:,} fire times; backfill it in parts",
                pointer="/end",
            )
        times.append(instant)
    return times


def _interval_ms(value: str) -> int:
    return max(round(check_interval(value).total_seconds() * 1000), 1)


def _column_values(given: dict[str, Any]) -> dict[str, Any]:
    """The columns of the fields a patch gives, each checked as on create."""
    converters: dict[str, tuple[str, Any]] = {
        "version": ("workflow_version", lambda value: value),
        "cron": ("cron", lambda value: None if value is None else check_cron(value)),
        "interval": ("interval_ms", lambda value: None if value is None else _interval_ms(value)),
        "timezone": ("timezone", lambda value: check_timezone(value).key),
        "catchup_window": ("catchup_window_ms", _catchup_ms),
        "start_at": ("start_at", _utc),
        "end_at": ("end_at", _utc),
        "metadata": ("metadata", lambda value: value or {}),
        "tags": ("tags", lambda value: value or []),
    }
    columns: dict[str, Any] = {}
    for name, value in given.items():
        column, convert = converters.get(name, (name, lambda value: value))
        columns[column] = convert(value)
    return columns


def provide_schedule_service(
    pool: NamedDependency[asyncpg.Pool], outbox: NamedDependency[OutboxPublisher], settings: NamedDependency[Settings]
) -> ScheduleService:
    """A schedule service for this request, sharing the app's outbox publisher."""
    return ScheduleService(pool, outbox, settings.topics)
