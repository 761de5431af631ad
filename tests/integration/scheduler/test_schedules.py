"""The schedule loop over real servers: firing, pause, overlap policies, catch-up, and replicas sharing the work."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from flowline.db.schedules import read_schedule, start_run
from flowline.messages import CancelExecution, ControlMessage, decoder
from flowline.runtime.service import Runtime
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Settings
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.schedules import ScheduleLoop
from flowline_scheduler.schedules_ahead import ScheduleAheadLoop
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from tests.integration.api.clients import admin_client
from tests.support import define, eventually, listening, read_topic, run_until_finished

Client = AsyncTestClient  # type: ignore[type-arg]
NOOP = {"ref": "demo.tick", "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Client]:
    async with admin_client(settings) as client:
        assert (await define(client, NOOP)).status_code == 201
        yield client


class Loop:
    """A schedule loop of this process with a registry of its own, to read its metrics."""

    def __init__(self, runtime: Runtime, settings: Settings, batch_size: int = 100) -> None:
        self.registry = CollectorRegistry()
        metrics = SchedulerMetrics(self.registry)
        self.loop = ScheduleLoop(
            runtime.pool, runtime.outbox, settings.topics, metrics, interval_seconds=0.05, batch_size=batch_size
        )

    def count(self, outcome: str) -> float:
        return self.registry.get_sample_value("flowline_schedule_runs_total", {"outcome": outcome}) or 0.0


async def _create(api: Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "tick", "workflowRef": "demo.tick", "interval": "1s", **fields}
    response = await api.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _runs(pool: asyncpg.Pool, schedule_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, status, scheduled_for, triggered_by, started_by, cancelled_by FROM executions "
        "WHERE schedule_id = $1::uuid ORDER BY scheduled_for",
        schedule_id,
    )


async def _fire_until(loop: Loop, pool: asyncpg.Pool, schedule_id: str, runs: int) -> list[asyncpg.Record]:
    async def enough() -> bool:
        await loop.loop.run_once()
        return len(await _runs(pool, schedule_id)) >= runs

    await eventually(enough, timeout=60)
    return await _runs(pool, schedule_id)


async def test_an_interval_schedule_fires_each_time_once_in_order(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, overlap="allow")
    loop = Loop(runtime, settings)

    runs = await _fire_until(loop, pool, created["id"], 3)

    times = [run["scheduled_for"] for run in runs]
    assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(times))
    assert {(run["triggered_by"], run["started_by"]) for run in runs} == {("schedule", f"schedule:{created['id']}")}
    assert loop.registry.get_sample_value("flowline_schedule_lateness_seconds_count") == loop.count("started")
    assert loop.count("started") == len(runs)
    last = (await api.get(f"/schedules/{created['id']}")).json()["lastRun"]
    assert datetime.fromisoformat(last["scheduledFor"]) == times[-1]


class CountedLoop(ScheduleLoop):
    """A schedule loop that counts its passes, to know when it has gone to sleep."""

    passes = 0

    async def run_once(self) -> None:
        await super().run_once()
        self.passes += 1


async def test_a_sleeping_loop_is_woken_by_a_new_schedule_and_fires_it_when_due(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    # Polls an hour apart, listening or not: only the new schedule's notification and its due time wake the loop.
    wakeups = Wakeups(settings.database_url, fallback_seconds=3600)
    metrics = SchedulerMetrics(CollectorRegistry())
    loop = CountedLoop(runtime.pool, runtime.outbox, settings.topics, metrics, interval_seconds=3600, wakeups=wakeups)
    async with listening(wakeups):
        running = asyncio.create_task(loop.start())
        try:

            async def asleep() -> bool:
                return loop.passes >= 1

            await eventually(asleep)
            created = await _create(api, overlap="allow")  # first due a second from now

            async def fired_twice() -> bool:
                return len(await _runs(pool, created["id"])) >= 2

            await eventually(fired_twice, timeout=30)
        finally:
            loop.stop()
            await running


async def test_pause_stops_it_and_resume_and_trigger_start_runs(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, overlap="allow")
    loop = Loop(runtime, settings)
    await _fire_until(loop, pool, created["id"], 1)

    assert (await api.post(f"/schedules/{created['id']}/pause")).status_code == 201
    fired = len(await _runs(pool, created["id"]))
    # Due long ago, as far as the row tells: a paused schedule is still not taken.
    await pool.execute(
        "UPDATE schedules SET next_run_at = now() - interval '1 second' WHERE id = $1::uuid", created["id"]
    )
    assert await loop.loop.fire_due() == 0
    assert len(await _runs(pool, created["id"])) == fired

    assert (await api.post(f"/schedules/{created['id']}/resume")).status_code == 201
    await _fire_until(loop, pool, created["id"], fired + 1)
    triggered = (await api.post(f"/schedules/{created['id']}/trigger")).json()
    runs = await _runs(pool, created["id"])
    assert str(runs[-1]["id"]) == triggered["executionId"]


async def test_skip_starts_nothing_while_the_previous_run_goes_on(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api)  # overlap: skip
    loop = Loop(runtime, settings)
    [first] = await _fire_until(loop, pool, created["id"], 1)

    async def skipped_twice() -> bool:
        await loop.loop.run_once()
        return loop.count("skipped") >= 2

    await eventually(skipped_twice, timeout=60)
    assert len(await _runs(pool, created["id"])) == 1  # the first run, pending: no executor runs here

    assert await run_until_finished(runtime, settings, first["id"]) == "completed"
    runs = await _fire_until(loop, pool, created["id"], 2)
    assert runs[1]["scheduled_for"] > first["scheduled_for"]


async def test_buffer_one_keeps_one_run_waiting_until_the_previous_finishes(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, overlap="buffer_one")
    loop = Loop(runtime, settings)
    [first] = await _fire_until(loop, pool, created["id"], 1)

    async def one_waits_and_more_skipped() -> bool:
        await loop.loop.run_once()
        return loop.count("buffered") == 1 and loop.count("skipped") >= 1

    await eventually(one_waits_and_more_skipped, timeout=60)
    waiting = await pool.fetchval("SELECT buffered_for FROM schedules WHERE id = $1::uuid", created["id"])
    assert waiting is not None and waiting > first["scheduled_for"]
    assert len(await _runs(pool, created["id"])) == 1

    assert await run_until_finished(runtime, settings, first["id"]) == "completed"
    assert await loop.loop.release_buffered() == 1
    runs = await _runs(pool, created["id"])
    assert [run["scheduled_for"] for run in runs] == [first["scheduled_for"], waiting]
    assert await pool.fetchval("SELECT buffered_for FROM schedules WHERE id = $1::uuid", created["id"]) is None


async def test_cancel_previous_cancels_the_running_run_through_the_cancel_command(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, overlap="cancel_previous")
    loop = Loop(runtime, settings)

    first, second = (await _fire_until(loop, pool, created["id"], 2))[:2]

    assert first["cancelled_by"] == f"schedule:{created['id']}" and second["cancelled_by"] is None
    control = decoder(ControlMessage)
    [cancel] = await read_topic(
        settings,
        settings.topics.control,
        1,
        keep=lambda record: isinstance(control.decode(record.value), CancelExecution),
    )
    message = control.decode(cancel.value)
    assert isinstance(message, CancelExecution) and message.execution_id == first["id"]


def _fire_times(start: datetime, count: int, every: timedelta) -> list[datetime]:
    return [start + every * n for n in range(count)]


@pytest.mark.parametrize(("window", "caught_up"), [("2m", 2), ("0", 0)])
async def test_after_downtime_only_the_runs_within_the_catch_up_window_start(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool, window: str, caught_up: int
) -> None:
    """Fire times 570, 510, … 30 seconds ago: those of the last two minutes (90 and 30 s ago) catch up."""
    now = datetime.now(UTC)
    start = now - timedelta(seconds=570)
    created = await _create(api, interval="1m", startAt=start.isoformat(), catchupWindow=window, overlap="allow")
    # The scheduler was down since the first fire time.
    await pool.execute("UPDATE schedules SET next_run_at = start_at WHERE id = $1::uuid", created["id"])
    loop = Loop(runtime, settings)

    await loop.loop.run_once()

    times = [run["scheduled_for"] for run in await _runs(pool, created["id"])]
    expected = _fire_times(start, 10, timedelta(minutes=1))
    assert times == expected[len(expected) - caught_up :]
    assert loop.count("missed") == 10 - caught_up
    following = await pool.fetchval("SELECT next_run_at FROM schedules WHERE id = $1::uuid", created["id"])
    assert following == start + timedelta(minutes=10)


async def test_two_loops_share_the_schedules_and_never_start_a_run_twice(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    schedules = [(await _create(api, name=f"tick-{n}", overlap="allow"))["id"] for n in range(20)]
    # Small batches: neither loop can take every due schedule in one transaction.
    loops = [Loop(runtime, settings, batch_size=5), Loop(runtime, settings, batch_size=5)]
    running = [asyncio.create_task(loop.loop.start()) for loop in loops]

    async def three_runs_each() -> bool:
        counts = await pool.fetch(
            "SELECT schedule_id, count(*) AS n FROM executions WHERE schedule_id IS NOT NULL GROUP BY schedule_id"
        )
        return len(counts) == len(schedules) and all(row["n"] >= 3 for row in counts)

    try:
        await eventually(three_runs_each, timeout=90)
    finally:
        for loop in loops:
            loop.loop.stop()
        await asyncio.gather(*running)

    assert all(loop.count("started") > 0 for loop in loops)  # both did some of the work
    assert sum(loop.count("already_started") for loop in loops) == 0  # neither fired what the other had
    for schedule_id in schedules:
        times = [run["scheduled_for"] for run in await _runs(pool, schedule_id)]
        assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(times))
    total = await pool.fetchval("SELECT count(*) FROM executions")
    assert total == sum(loop.count("started") for loop in loops)


async def test_a_batch_finds_a_run_started_before_and_a_run_that_cannot_start_spoils_no_other(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    assert (await define(api, {**NOOP, "ref": "demo.off"})).status_code == 201
    early = await _create(api, name="early", overlap="allow")
    off = await _create(api, name="off", workflowRef="demo.off", overlap="allow")
    plain = await _create(api, name="plain", overlap="allow")
    assert (await api.patch("/workflows/demo.off", json={"enabled": False})).status_code == 200
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    schedule = await read_schedule(pool, tenant_id, early["id"])
    before = await start_run(pool, settings.topics, schedule, schedule["next_run_at"])  # as a crashed pass left it
    loop = Loop(runtime, settings)
    last_due = (await read_schedule(pool, tenant_id, plain["id"]))["next_run_at"]
    await asyncio.sleep((last_due - datetime.now(UTC)).total_seconds() + 0.1)

    assert await loop.loop.fire_due() == 3

    assert loop.count("already_started") == 1
    assert loop.count("failed") >= 1 and loop.count("started") >= 1  # more if the pass came late: more were due
    assert next(run["id"] for run in await _runs(pool, early["id"])) == before.id
    assert await _runs(pool, off["id"]) == []
    assert len(await _runs(pool, plain["id"])) >= 1
    assert (await read_schedule(pool, tenant_id, off["id"]))["next_run_at"] > schedule["next_run_at"]


async def test_templates_see_the_time_a_run_stands_for(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    workflow = {
        "ref": "demo.when",
        "definition": {
            "steps": [{"id": "only", "type": "action", "action": "core.noop"}],
            "output": "{{ execution.scheduledFor }}",
        },
    }
    assert (await define(api, workflow)).status_code == 201
    created = await _create(api, name="when", workflowRef="demo.when", paused=True)
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    schedule = await read_schedule(pool, tenant_id, created["id"])
    scheduled_for = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)

    started = await start_run(pool, settings.topics, schedule, scheduled_for)
    await runtime.outbox.publish(started.outbox)

    assert await run_until_finished(runtime, settings, started.id) == "completed"
    output = await pool.fetchval("SELECT output FROM executions WHERE id = $1", started.id)
    assert output == scheduled_for.isoformat()


async def test_a_crowded_fire_time_is_prepared_ahead_and_its_runs_appear_once_each_at_it(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    assert (await define(api, {**NOOP, "ref": "demo.off"})).status_code == 201
    names = {
        "early": "demo.tick",
        "off": "demo.off",
        "plain-1": "demo.tick",
        "plain-2": "demo.tick",
        "alone": "demo.tick",
        "skip-idle": "demo.tick",
        "skip-busy": "demo.tick",
    }
    ids: dict[str, str] = {}
    for name, ref in names.items():
        overlap = "skip" if name.startswith("skip") else "allow"
        body = {"name": name, "workflowRef": ref, "cron": "* * * * * *", "overlap": overlap, "paused": True}
        response = await api.post("/schedules", json=body)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    assert (await api.patch("/workflows/demo.off", json={"enabled": False})).status_code == 200
    # All due at one whole second a little ahead, as thousands of `* * * * *` schedules are each minute.
    fire_time: datetime = await pool.fetchval(
        "UPDATE schedules SET paused = false, next_run_at = date_trunc('second', clock_timestamp()) + interval '3s' "
        "RETURNING next_run_at"
    )
    alone_due = fire_time - timedelta(seconds=1)  # not one of the crowd: the ordinary pass fires it at its time
    await pool.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1::uuid", ids["alone"], alone_due)
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    early = await read_schedule(pool, tenant_id, ids["early"])
    before = await start_run(pool, settings.topics, early, fire_time)  # by a backfill, say
    busy = await read_schedule(pool, tenant_id, ids["skip-busy"])
    going = await start_run(pool, settings.topics, busy, fire_time - timedelta(minutes=1))  # still pending
    registry = CollectorRegistry()
    ahead = ScheduleAheadLoop(
        runtime.pool, runtime.outbox, settings.topics, SchedulerMetrics(registry), 0.05, lead_seconds=5, crowded=2
    )
    firing = asyncio.create_task(ahead.run_once())
    seen_early: list[int] = []  # runs others could see before the fire time, by PostgreSQL's clock
    while not firing.done():
        row = await pool.fetchrow(
            "SELECT clock_timestamp() < $1 AS early, count(*) AS runs FROM executions "
            "WHERE schedule_id = ANY($2::uuid[]) AND scheduled_for = $1",
            fire_time,
            [ids["plain-1"], ids["plain-2"]],
        )
        if row["early"]:
            seen_early.append(row["runs"])
        await asyncio.sleep(0.05)
    await firing

    assert seen_early and set(seen_early) == {0}
    for name in ("plain-1", "plain-2", "skip-idle"):
        runs = await pool.fetch(
            "SELECT id, created_at FROM executions WHERE schedule_id = $1::uuid AND scheduled_for = $2",
            ids[name],
            fire_time,
        )
        assert len(runs) == 1 and runs[0]["created_at"] >= fire_time
        schedule = await read_schedule(pool, tenant_id, ids[name])
        assert schedule["last_execution_id"] == runs[0]["id"]
        assert schedule["next_run_at"] == fire_time + timedelta(seconds=1)
    assert [run["id"] for run in await _runs(pool, ids["early"])] == [before.id]
    assert (await read_schedule(pool, tenant_id, ids["early"]))["last_execution_id"] == before.id
    assert await _runs(pool, ids["off"]) == [] and await _runs(pool, ids["alone"]) == []
    assert (await read_schedule(pool, tenant_id, ids["alone"]))["next_run_at"] == alone_due
    # Whether its running run goes on at the fire time decides: the ordinary pass looks then, not this one.
    assert [run["id"] for run in await _runs(pool, ids["skip-busy"])] == [going.id]
    assert (await read_schedule(pool, tenant_id, ids["skip-busy"]))["next_run_at"] == fire_time
    off = await read_schedule(pool, tenant_id, ids["off"])
    assert off["last_execution_id"] is None and off["next_run_at"] == fire_time + timedelta(seconds=1)
    assert registry.get_sample_value("flowline_schedule_runs_total", {"outcome": "started"}) == 3
    assert registry.get_sample_value("flowline_schedule_runs_total", {"outcome": "already_started"}) == 1
    assert registry.get_sample_value("flowline_schedule_runs_total", {"outcome": "failed"}) == 1


async def test_the_prepare_ahead_loop_sleeps_until_a_crowded_fire_time_is_the_lead_ahead(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    # Looks an hour apart while listening: only a crowd's lead and a schedule's notification bring it sooner.
    wakeups = Wakeups(settings.database_url, fallback_seconds=3600)
    metrics = SchedulerMetrics(CollectorRegistry())
    ahead = ScheduleAheadLoop(
        runtime.pool, runtime.outbox, settings.topics, metrics, 0.05, lead_seconds=5, crowded=2, wakeups=wakeups
    )
    async with listening(wakeups):
        await ahead.start(loops=1)
        assert ahead.wait_seconds() == 3600  # no crowded fire time at all

        crowd = [await _create(api, name=f"crowd-{n}", paused=True) for n in range(3)]
        ahead._wake.clear()  # whatever woke it so far (listening started) is done with
        fire_time: datetime = await pool.fetchval(
            "UPDATE schedules SET paused = false, next_run_at = date_trunc('second', clock_timestamp()) "
            "+ interval '10 minutes' RETURNING next_run_at"
        )

        async def woken() -> bool:  # resumed: the notification has it look again
            return ahead._wake.is_set()

        await eventually(woken)
        await ahead.start(loops=1)
        # Asleep toward the fire time's lead rather than the fallback; nothing fired yet (below).
        assert ahead._due_at is not None
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    for schedule in crowd:  # nothing claimed or started before then
        assert await _runs(pool, schedule["id"]) == []
        assert (await read_schedule(pool, tenant_id, schedule["id"]))["next_run_at"] == fire_time
