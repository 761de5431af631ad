"""Backfills: a bulk operation that starts a schedule's runs for the fire times of a past window, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from flowline.db.bulk_operations import BulkOperationRow, BulkSelection
from flowline.db.schedules import read_schedule, record_run, start_run, timing_of
from flowline.domain.schedules import next_fire_times
from flowline.errors import FlowlineError, NotFound
from flowline.kafka.outbox import OutboxRow
from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.settings import Topics


@dataclass(slots=True)
class BackfillBatch:
    """What one batch of a backfill did: its runs' outbox rows, counts and errors, and how far it got."""

    rows: list[OutboxRow] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[dict[str, str | None]] = field(default_factory=list)
    last_scheduled_for: datetime | None = None
    finished: bool = False


async def backfill_batch(
    connection: asyncpg.Connection, topics: Topics, operation: BulkOperationRow, selection: BulkSelection, limit: int
) -> BackfillBatch:
    """Start the runs of the next ``limit`` fire times of the window after the operation's cursor.

    A time whose run exists already (this window backfilled before, or the live schedule fired it) is
    skipped: the run's idempotency key is the same. A schedule deleted meanwhile ends the operation.
    """
    window = selection.backfill
    assert window is not None
    batch = BackfillBatch()
    try:
        schedule = await read_schedule(connection, operation.tenant_id, window.schedule_id)
    except NotFound as err:
        batch.errors.append({"executionId": None, "message": err.detail})
        batch.finished = True
        return batch
    after = operation.last_scheduled_for or window.start - timedelta(microseconds=1)
    times = [instant for instant in next_fire_times(timing_of(schedule), after, limit) if instant < window.end]
    for scheduled_for in times:
        try:
            async with connection.transaction():  # a savepoint: a run that cannot start leaves the batch intact
                started = await start_run(connection, topics, schedule, scheduled_for)
                await record_run(connection, schedule["id"], scheduled_for, started.id)
        except OUTAGE_ERRORS:
            raise
        except FlowlineError as err:
            batch.failed += 1
            batch.errors.append({"executionId": None, "message": f"{scheduled_for.isoformat()}: {err.detail}"})
            continue
        if started.created:
            batch.succeeded += 1
            batch.rows.extend(started.outbox)
        else:
            batch.skipped += 1
    batch.last_scheduled_for = times[-1] if times else None
    batch.finished = len(times) < limit
    return batch
