"""Schedule rows and their runs: the one way a schedule starts an execution (api trigger, scheduler, backfill)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import asyncpg

from flowline.db.sql import bind
from flowline.domain.batch_starts import start_executions
from flowline.domain.schedules import Timing, first_fire_time
from flowline.domain.starting import (
    ScheduledRun,
    StartedExecution,
    StartRequest,
    WorkflowCache,
    start_execution,
)
from flowline.errors import NotFound
from flowline.settings import Topics

# The statuses of a run that is still going, which the overlap policies look at.
ACTIVE_STATUSES = ("pending", "running", "paused")


def schedule_started_by(schedule_id: uuid.UUID) -> str:
    """The ``started_by`` of a schedule's runs (see ``flowline.domain.starting``)."""
    return f"schedule:{schedule_id}"


def run_idempotency_key(schedule_id: uuid.UUID, scheduled_for: datetime) -> str:
    """The idempotency key of the run of ``schedule_id`` for ``scheduled_for``: one execution per fire time.

    Two scheduler replicas, a scheduler that started the run but died before its bookkeeping, and a backfill
    over times the live loop also fired all derive the same key, so the run starts once.
    """
    return f"schedule:{schedule_id}:{scheduled_for.isoformat(timespec='microseconds')}"


def timing_of(record: Mapping[str, Any]) -> Timing:
    """When a schedule row fires."""
    interval_ms = record["interval_ms"]
    return Timing(
        cron=record["cron"],
        interval=None if interval_ms is None else timedelta(milliseconds=interval_ms),
        timezone=ZoneInfo(record["timezone"]),
        anchor=record["start_at"] or record["created_at"],
        start_at=record["start_at"],
        end_at=record["end_at"],
    )


def next_run_after(record: Mapping[str, Any], after: datetime) -> datetime | None:
    """The schedule's first fire time after ``after``, or None when it has ended."""
    return first_fire_time(timing_of(record), after)


async def read_schedule(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, schedule_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    """A schedule of this tenant, locked until the transaction ends with ``lock``.

    Raises:
        NotFound: no such schedule in this tenant.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT * FROM schedules WHERE id = $1 AND tenant_id = $2 {'FOR UPDATE' if lock else ''}",
        schedule_id,
        tenant_id,
    )
    if record is None:
        raise NotFound(f"schedule {schedule_id} does not exist")
    return record


async def active_runs(connection: asyncpg.Connection, schedule: asyncpg.Record) -> list[uuid.UUID]:
    """The schedule's runs that have not finished, oldest first."""
    records = await connection.fetch(
        "SELECT id FROM executions WHERE tenant_id = $1 AND schedule_id = $2 AND status = ANY($3::text[]) "
        "ORDER BY created_at, id",
        schedule["tenant_id"],
        schedule["id"],
        list(ACTIVE_STATUSES),
    )
    return [record["id"] for record in records]


async def busy_schedules(connection: asyncpg.Connection, schedules: Sequence[asyncpg.Record]) -> set[uuid.UUID]:
    """Which of ``schedules`` have a run that has not finished, in one statement."""
    if not schedules:
        return set()
    records = await connection.fetch(
        *bind(
            "SELECT DISTINCT e.schedule_id FROM unnest(:tenant_id::uuid[], :schedule_id::uuid[]) AS s(tenant_id, id) "
            "JOIN executions e ON e.tenant_id = s.tenant_id AND e.schedule_id = s.id "
            "WHERE e.status = ANY(:active::text[])",
            tenant_id=[schedule["tenant_id"] for schedule in schedules],
            schedule_id=[schedule["id"] for schedule in schedules],
            active=list(ACTIVE_STATUSES),
        )
    )
    return {record["schedule_id"] for record in records}


def run_request(schedule: Mapping[str, Any], scheduled_for: datetime) -> StartRequest:
    """The start of the schedule's run for ``scheduled_for``, once per fire time by its idempotency key."""
    return StartRequest(
        tenant_id=schedule["tenant_id"],
        workflow_ref=schedule["workflow_ref"],
        version=schedule["workflow_version"],
        execution_input=schedule["input"],
        idempotency_key=run_idempotency_key(schedule["id"], scheduled_for),
        triggered_by="schedule",
        started_by=schedule_started_by(schedule["id"]),
        owned_by=schedule["created_by"],
        metadata=schedule["metadata"],
        tags=list(schedule["tags"]),
        parent=None,
        rerun=None,
        scheduled=ScheduledRun(schedule["id"], scheduled_for),
        audit=None,
    )


async def start_run(
    connection: asyncpg.Connection | asyncpg.Pool, topics: Topics, schedule: asyncpg.Record, scheduled_for: datetime
) -> StartedExecution:
    """Start the schedule's run for ``scheduled_for`` through the one start path, once per fire time.

    Publish the result's ``outbox`` after the caller's transaction commits. A run started before (by another
    replica, before a crash, or by a backfill) is returned as it is, with ``created`` False.

    Raises:
        NotFound: the workflow (or the version) no longer exists.
        Conflict: the workflow is disabled.
        ValidationFailed: the schedule's input does not match the workflow's input schema.
    """
    return await start_execution(connection, topics, **run_request(schedule, scheduled_for)._asdict())


async def start_runs(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    runs: Sequence[tuple[Mapping[str, Any], datetime]],
    *,
    workflows: WorkflowCache,
) -> list[StartedExecution | Exception]:
    """Start the runs (schedule, fire time) together, as ``start_run`` starts one: in one statement normally.

    A run that cannot start has its error in its place (see ``start_executions``).
    """
    requests = [run_request(schedule, scheduled_for) for schedule, scheduled_for in runs]
    return await start_executions(connection, topics, requests, workflows=workflows)


async def count_started_runs(
    connection: asyncpg.Connection | asyncpg.Pool, schedule: Mapping[str, Any], times: Sequence[datetime]
) -> int:
    """How many of the schedule's fire ``times`` have their run already (by its idempotency key)."""
    started: int = await connection.fetchval(
        *bind(
            "SELECT count(*) FROM executions WHERE tenant_id = :tenant_id AND idempotency_key = ANY(:keys::text[])",
            tenant_id=schedule["tenant_id"],
            keys=[run_idempotency_key(schedule["id"], instant) for instant in times],
        )
    )
    return started


async def record_run(
    connection: asyncpg.Connection, schedule_id: uuid.UUID, scheduled_for: datetime, execution_id: uuid.UUID
) -> None:
    """Remember the schedule's latest run (the one with the latest ``scheduledFor``) for ``lastRun``."""
    await connection.execute(
        "UPDATE schedules SET last_run_at = $2, last_execution_id = $3 "
        "WHERE id = $1 AND (last_run_at IS NULL OR last_run_at <= $2)",
        schedule_id,
        scheduled_for,
        execution_id,
    )


async def last_run_status(
    connection: asyncpg.Connection | asyncpg.Pool, records: list[asyncpg.Record]
) -> dict[uuid.UUID, str]:
    """The status of each schedule's last run, by execution id."""
    ids = [record["last_execution_id"] for record in records if record["last_execution_id"] is not None]
    if not ids:
        return {}
    rows = await connection.fetch("SELECT id, status FROM executions WHERE id = ANY($1::uuid[])", ids)
    return {row["id"]: row["status"] for row in rows}


async def read_clock(connection: asyncpg.Connection) -> datetime:
    """PostgreSQL's time now, which schedules are due by (``next_run_at`` is compared with it)."""
    now: datetime = await connection.fetchval("SELECT clock_timestamp()")
    return now


async def sleep_until(connection: asyncpg.Connection, instant: datetime) -> None:
    """Return once PostgreSQL's clock has reached ``instant`` (at once if it has)."""
    await connection.execute(
        *bind(
            "SELECT pg_sleep(greatest(extract(epoch FROM :instant::timestamptz - clock_timestamp()), 0))",
            instant=instant,
        )
    )


async def claim_due_schedules(connection: asyncpg.Connection, *, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Lock up to ``limit`` unpaused schedules due by ``now``, the most overdue first, skipping those held."""
    records: list[asyncpg.Record] = await connection.fetch(
        *bind(
            "SELECT * FROM schedules WHERE NOT paused AND next_run_at <= :now "
            "ORDER BY next_run_at LIMIT :limit FOR UPDATE SKIP LOCKED",
            now=now,
            limit=limit,
        )
    )
    return records


async def claim_schedules_due_at(
    connection: asyncpg.Connection, fire_time: datetime, *, limit: int
) -> list[asyncpg.Record]:
    """Lock up to ``limit`` unpaused schedules whose next fire time is ``fire_time``, skipping those held."""
    records: list[asyncpg.Record] = await connection.fetch(
        *bind(
            "SELECT * FROM schedules WHERE NOT paused AND next_run_at = :fire_time LIMIT :limit FOR UPDATE SKIP LOCKED",
            fire_time=fire_time,
            limit=limit,
        )
    )
    return records


class CrowdedFireTime(NamedTuple):
    """A fire time many schedules share, how many, and PostgreSQL's time when it was found."""

    fire_time: datetime
    schedules: int
    now: datetime


async def next_crowded_fire_time(
    connection: asyncpg.Connection | asyncpg.Pool, *, within: timedelta, at_least: int
) -> CrowdedFireTime | None:
    """The first fire time in the coming ``within`` at which ``at_least`` unpaused schedules are due, if any."""
    record = await connection.fetchrow(
        *bind(
            "WITH clock AS (SELECT clock_timestamp() AS now) "
            "SELECT s.next_run_at AS fire_time, count(*) AS schedules, clock.now FROM schedules s, clock "
            "WHERE NOT s.paused AND s.next_run_at > clock.now AND s.next_run_at <= clock.now + :within "
            "GROUP BY s.next_run_at, clock.now HAVING count(*) >= :at_least ORDER BY s.next_run_at LIMIT 1",
            within=within,
            at_least=at_least,
        )
    )
    return None if record is None else CrowdedFireTime(**record)


class SchedulePass(NamedTuple):
    """A schedule's bookkeeping after a pass: where it goes on, its waiting run, its latest run (time, id)."""

    schedule_id: uuid.UUID
    next_run_at: datetime | None
    buffered_for: datetime | None
    last_run: tuple[datetime, uuid.UUID] | None


async def record_passes(connection: asyncpg.Connection, passes: Sequence[SchedulePass]) -> None:
    """The bookkeeping of a batch of schedules after a pass, in one statement (``record_run``: one run)."""
    last_runs = [one.last_run or (None, None) for one in passes]
    await connection.execute(
        *bind(
            "UPDATE schedules s SET next_run_at = p.next_run_at, buffered_for = p.buffered_for, "
            "last_execution_id = CASE WHEN p.last_run_at >= s.last_run_at OR s.last_run_at IS NULL "
            "    THEN coalesce(p.last_execution_id, s.last_execution_id) ELSE s.last_execution_id END, "
            "last_run_at = CASE WHEN p.last_run_at >= s.last_run_at OR s.last_run_at IS NULL "
            "    THEN coalesce(p.last_run_at, s.last_run_at) ELSE s.last_run_at END "
            "FROM unnest(:id::uuid[], :next_run_at::timestamptz[], :buffered_for::timestamptz[], "
            "    :last_run_at::timestamptz[], :last_execution_id::uuid[]) "
            "    AS p(id, next_run_at, buffered_for, last_run_at, last_execution_id) "
            "WHERE s.id = p.id",
            id=[one.schedule_id for one in passes],
            next_run_at=[one.next_run_at for one in passes],
            buffered_for=[one.buffered_for for one in passes],
            last_run_at=[last_run_at for last_run_at, _ in last_runs],
            last_execution_id=[last_execution_id for _, last_execution_id in last_runs],
        )
    )


async def set_last_runs(
    connection: asyncpg.Connection, last_runs: Sequence[tuple[uuid.UUID, datetime | None, uuid.UUID | None]]
) -> None:
    """Set each schedule's latest run (schedule id, its time, its execution id) as given, in one statement.

    Unlike ``record_passes``, whatever the schedule held: for correcting what a pass recorded ahead.
    """
    await connection.execute(
        *bind(
            "UPDATE schedules s SET last_run_at = r.last_run_at, last_execution_id = r.last_execution_id "
            "FROM unnest(:id::uuid[], :last_run_at::timestamptz[], :last_execution_id::uuid[]) "
            "    AS r(id, last_run_at, last_execution_id) "
            "WHERE s.id = r.id",
            id=[schedule_id for schedule_id, _, _ in last_runs],
            last_run_at=[last_run_at for _, last_run_at, _ in last_runs],
            last_execution_id=[last_execution_id for _, _, last_execution_id in last_runs],
        )
    )


async def claim_released_buffers(connection: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """Lock up to ``limit`` schedules holding a buffered run whose previous runs have all finished."""
    records: list[asyncpg.Record] = await connection.fetch(
        *bind(
            "SELECT * FROM schedules s WHERE buffered_for IS NOT NULL AND NOT paused AND NOT EXISTS ("
            "    SELECT FROM executions e WHERE e.tenant_id = s.tenant_id AND e.schedule_id = s.id"
            "    AND e.status = ANY(:active::text[])"
            ") ORDER BY buffered_for LIMIT :limit FOR UPDATE SKIP LOCKED",
            limit=limit,
            active=list(ACTIVE_STATUSES),
        )
    )
    return records


async def clear_buffered_run(connection: asyncpg.Connection, schedule_id: uuid.UUID) -> None:
    """Forget a schedule's buffered run (started, or given up)."""
    await connection.execute("UPDATE schedules SET buffered_for = NULL WHERE id = $1", schedule_id)


class SchedulesAhead(NamedTuple):
    """What the schedule loop waits for: the earliest unpaused schedule, and whether a buffered run waits."""

    due_in: float | None  # seconds from now (negative: due already); None: no schedule will fire
    buffered: bool


async def read_schedules_ahead(connection: asyncpg.Connection | asyncpg.Pool) -> SchedulesAhead:
    """When the earliest unpaused schedule is due, by PostgreSQL's clock, and whether a buffered run waits."""
    record = await connection.fetchrow(
        "SELECT extract(epoch FROM (SELECT min(next_run_at) FROM schedules WHERE NOT paused) - clock_timestamp()) "
        "AS due_in, EXISTS (SELECT FROM schedules WHERE buffered_for IS NOT NULL AND NOT paused) AS buffered"
    )
    assert record is not None
    return SchedulesAhead(None if record["due_in"] is None else float(record["due_in"]), record["buffered"])
