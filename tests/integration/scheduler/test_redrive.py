"""Invariant 1: work whose message was lost (broker data loss, dead letter) is re-sent from PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
from flowline.db.execution_runs import list_idle_executions, list_orphaned_children
from flowline.db.promises import list_unapplied_promises
from flowline.db.timers import list_unapplied_timers
from flowline.messages import ExecutionRequested, RequestMessage, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.redrive import BATCH, InboxRetention, Redrive

from tests.support import define_and_start, read_topic


async def test_a_pending_execution_whose_request_was_lost_is_requested_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    started = await define_and_start(
        pool, settings, "demo.lost", {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}, {}
    )
    await pool.execute("DELETE FROM outbox")  # the request was published, then the broker lost it

    redrive = Redrive(pool, runtime.outbox, settings.topics, after_seconds=30, interval_seconds=1)
    await redrive.start(loops=1)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # too recent to be considered lost

    await pool.execute("UPDATE executions SET created_at = now() - interval '1 minute'")
    await redrive.start(loops=1)
    [record] = await read_topic(settings, settings.topics.requests, 1)
    message = decoder(RequestMessage).decode(record.value)
    assert isinstance(message, ExecutionRequested)
    assert message.execution_id == started.id


MINUTE, SECOND = timedelta(minutes=1), timedelta(seconds=1)
ONE_ACTION = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}


async def _execution(pool: asyncpg.Pool, settings: Settings, ref: str, status: str) -> uuid.UUID:
    """An execution of a new workflow ``ref`` with ``status``, last changed a minute ago."""
    started = await define_and_start(pool, settings, ref, ONE_ACTION, {})
    await pool.execute(
        "UPDATE executions SET status = $2, updated_at = now() - interval '1 minute', "
        "completed_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN now() - interval '1 minute' END "
        "WHERE id = $1",
        started.id,
        status,
    )
    execution_id: uuid.UUID = started.id
    return execution_id


async def _step(pool: asyncpg.Pool, execution_id: uuid.UUID, step_id: str, step_type: str, status: str) -> uuid.UUID:
    step_execution_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status) "
        "SELECT gen_random_uuid(), tenant_id, id, $2, 0, $3, $4 FROM executions WHERE id = $1 RETURNING id",
        execution_id,
        step_id,
        step_type,
        status,
    )
    return step_execution_id


async def test_a_fired_timer_whose_step_still_sleeps_is_fired_again(runtime: Runtime, settings: Settings) -> None:
    pool = runtime.pool
    running = await _execution(pool, settings, "demo.sleeps", "running")
    finished = await _execution(pool, settings, "demo.slept", "completed")

    async def fired_timer(
        execution_id: uuid.UUID, step_execution_id: uuid.UUID | None, kind: str, ago: timedelta
    ) -> object:
        return await pool.fetchval(
            "INSERT INTO timers (id, tenant_id, execution_id, step_execution_id, kind, status, fire_at, fired_at) "
            "SELECT gen_random_uuid(), tenant_id, id, $2, $3, 'fired', now() - $4::interval, now() - $4::interval "
            "FROM executions WHERE id = $1 RETURNING id",
            execution_id,
            step_execution_id,
            kind,
            ago,
        )

    lost = await fired_timer(running, await _step(pool, running, "late", "sleep", "running"), "sleep", MINUTE)
    await fired_timer(running, await _step(pool, running, "recent", "sleep", "running"), "sleep", SECOND)
    await fired_timer(running, await _step(pool, running, "woke", "sleep", "completed"), "sleep", MINUTE)
    await fired_timer(finished, await _step(pool, finished, "late", "sleep", "running"), "sleep", MINUTE)
    timed_out = await fired_timer(running, None, "execution_timeout", MINUTE)
    await fired_timer(finished, None, "execution_timeout", MINUTE)

    async with pool.acquire() as connection:
        found = await list_unapplied_timers(connection, older_than=30, limit=BATCH)

    assert {row.id for row in found} == {lost, timed_out}


async def test_a_settled_promise_whose_wait_step_still_waits_is_settled_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    execution_id = await _execution(pool, settings, "demo.waits", "running")

    async def promise(step_id: str, step_status: str, status: str, settled_ago: timedelta | None) -> object:
        return await pool.fetchval(
            "INSERT INTO promises (id, tenant_id, execution_id, step_execution_id, name, status, settled_at) "
            "SELECT gen_random_uuid(), tenant_id, id, $2, $3, $4, now() - $5::interval "
            "FROM executions WHERE id = $1 RETURNING id",
            execution_id,
            await _step(pool, execution_id, step_id, "wait", step_status),
            step_id,
            status,
            settled_ago,
        )

    resolved = await promise("resolved", "running", "resolved", MINUTE)
    rejected = await promise("rejected", "running", "rejected", MINUTE)
    await promise("recent", "running", "resolved", SECOND)
    await promise("pending", "running", "pending", None)
    await promise("applied", "completed", "resolved", MINUTE)

    async with pool.acquire() as connection:
        found = await list_unapplied_promises(connection, older_than=30, limit=BATCH)

    assert {row.id for row in found} == {resolved, rejected}


async def test_a_running_execution_with_no_step_under_way_is_advanced_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    idle = await _execution(pool, settings, "demo.idle", "running")
    await _step(pool, idle, "a", "action", "completed")
    busy = await _execution(pool, settings, "demo.busy", "running")
    await _step(pool, busy, "a", "action", "running")
    recent = await _execution(pool, settings, "demo.recent", "running")
    await pool.execute("UPDATE executions SET updated_at = now() WHERE id = $1", recent)
    await _execution(pool, settings, "demo.done", "completed")

    async with pool.acquire() as connection:
        found = await list_idle_executions(connection, older_than=30, limit=BATCH)

    assert {row.id for row in found} == {idle}


async def test_a_child_still_active_under_a_failed_parent_is_cancelled_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    failed = await _execution(pool, settings, "demo.failed", "failed")
    running = await _execution(pool, settings, "demo.parent", "running")

    async def child(ref: str, parent: uuid.UUID, status: str) -> uuid.UUID:
        execution_id = await _execution(pool, settings, ref, status)
        await pool.execute(
            "UPDATE executions SET parent_execution_id = $2, parent_step_id = 'child' WHERE id = $1",
            execution_id,
            parent,
        )
        return execution_id

    orphan = await child("demo.orphan", failed, "running")
    paused = await child("demo.paused", failed, "paused")
    await child("demo.finished", failed, "cancelled")
    await child("demo.sibling", running, "running")

    async with pool.acquire() as connection:
        found = await list_orphaned_children(connection, older_than=30, limit=BATCH)

    assert {(row.id, row.parent_status) for row in found} == {(orphan, "failed"), (paused, "failed")}


async def test_inbox_retention_forgets_only_ids_past_the_retention(runtime: Runtime) -> None:
    await runtime.pool.execute(
        "INSERT INTO inbox (consumer, message_id, processed_at) "
        "SELECT 'test', gen_random_uuid(), now() - make_interval(days => age) FROM unnest(ARRAY[0, 1, 8, 9, 30]) AS age"
    )
    retention = InboxRetention(runtime.pool, retention_seconds=7 * 86400, interval_seconds=60)

    await retention.run_once()

    kept = await runtime.pool.fetch("SELECT extract(day FROM now() - processed_at)::int AS age FROM inbox")
    assert sorted(row["age"] for row in kept) == [0, 1]
