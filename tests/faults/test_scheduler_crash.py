"""A scheduler killed with SIGKILL while schedules fire doubles no run and misses none within the catch-up window."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import asyncpg
import httpx
from flowline.settings import Settings
from flowline_devstack.processes import ServiceGroup

from tests.support import api_key, bearer, define

SCHEDULES = 20
NOOP = {"ref": "faults.tick", "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}}


async def _fewest_runs(connection: asyncpg.Connection) -> int:
    counts = await connection.fetch(
        "SELECT count(e.id) AS n FROM schedules s LEFT JOIN executions e ON e.schedule_id = s.id GROUP BY s.id"
    )
    return min((row["n"] for row in counts), default=0)


async def test_killing_the_scheduler_doubles_and_misses_nothing(stack: ServiceGroup, settings: Settings) -> None:
    api = f"{stack['api'].url}/api/v1/tenants/dev"
    headers = bearer(await api_key(settings.database_url))
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        assert (await define(client, NOOP)).status_code == 201
        for n in range(SCHEDULES):
            body = {"name": f"tick-{n}", "workflowRef": "faults.tick", "interval": "1s", "overlap": "allow"}
            assert (await client.post("/schedules", json=body)).status_code == 201

    connection = await asyncpg.connect(settings.database_url)
    try:
        async with asyncio.timeout(120):
            while await _fewest_runs(connection) < 3:
                await asyncio.sleep(0.1)
        stack.kill("scheduler")
        before = await connection.fetchval("SELECT count(*) FROM executions")
        await asyncio.sleep(3)  # down for a few fire times, well within the one-minute catch-up window
        stack["scheduler"].start()
        stack["scheduler"].wait_healthy()
        async with asyncio.timeout(120):
            while await _fewest_runs(connection) < before // SCHEDULES + 6:
                await asyncio.sleep(0.1)
        stack["scheduler"].stop()

        runs = await connection.fetch(
            "SELECT schedule_id, scheduled_for FROM executions ORDER BY schedule_id, scheduled_for"
        )
        for _, times in itertools.groupby(runs, key=lambda run: run["schedule_id"]):
            scheduled = [run["scheduled_for"] for run in times]
            gaps = [later - earlier for earlier, later in itertools.pairwise(scheduled)]
            # One second apart throughout: no time twice, none missing, across the kill and the downtime.
            assert set(gaps) == {timedelta(seconds=1)}, scheduled
    finally:
        await connection.close()
