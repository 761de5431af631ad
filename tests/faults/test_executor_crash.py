"""An executor killed with SIGKILL in the middle of work loses nothing and applies nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from flowline.settings import Settings
from flowline_devstack.processes import ServiceGroup

from tests.support import api_key, bearer, define

EXECUTIONS = 120
CHAIN = {
    "ref": "faults.chain",
    "definition": {
        "steps": [
            {"id": "first", "type": "action", "action": "core.echo", "input": "{{ input.n }}"},
            {"id": "pause", "type": "sleep", "duration": "200ms", "needs": ["first"]},
            {"id": "second", "type": "action", "action": "core.echo", "needs": ["pause"], "input": "{{ input.n }}"},
            {"id": "third", "type": "action", "action": "core.echo", "needs": ["second"], "input": "{{ input.n }}"},
        ],
        "output": "{{ steps.third.output }}",
    },
}


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    # Recover quickly: short leases, and lost messages re-sent after a few seconds.
    return {**stack_env, "FLOWLINE_LEASE_SECONDS": "2", "FLOWLINE_REDRIVE_AFTER_SECONDS": "3"}


async def _count(connection: asyncpg.Connection, status: str) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM executions WHERE status = $1", status))


async def test_killing_the_executor_mid_run_loses_nothing(stack: ServiceGroup, settings: Settings) -> None:
    api = f"{stack['api'].url}/api/v1/tenants/dev"
    headers = bearer(await api_key(settings.database_url))
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        assert (await define(client, CHAIN)).status_code == 201
        accepted = await asyncio.gather(
            *(client.post("/workflows/faults.chain/execute", json={"input": {"n": n}}) for n in range(EXECUTIONS))
        )
    assert all(response.status_code == 202 for response in accepted)
    ids = [uuid.UUID(response.json()["executionId"]) for response in accepted]

    connection = await asyncpg.connect(settings.database_url)
    try:
        async with asyncio.timeout(120):
            while await _count(connection, "completed") < EXECUTIONS // 4:
                await asyncio.sleep(0.02)
        stack.kill("executor")
        killed_while = {
            "completed": await _count(connection, "completed"),
            "running attempts": await connection.fetchval(
                "SELECT count(*) FROM task_attempts WHERE status = 'running'"
            ),
        }
        await asyncio.sleep(1)
        stack["executor"].start()
        stack["executor"].wait_healthy()

        async with asyncio.timeout(180):
            while await _count(connection, "completed") < EXECUTIONS:
                await asyncio.sleep(0.2)

        assert killed_while["completed"] < EXECUTIONS, "the executor was killed after all work was done"
        outputs = await connection.fetch("SELECT id, output FROM executions ORDER BY id")
        assert {row["id"] for row in outputs} == set(ids)
        by_id = {row["id"]: row["output"] for row in outputs}
        assert sorted(int(by_id[execution_id]) for execution_id in ids) == list(range(EXECUTIONS))

        # Nothing was applied twice: one final event per execution, one completion per step.
        duplicates = await connection.fetch(
            """
            SELECT execution_id, step_id, count(*) FROM execution_events
            WHERE event_type IN ('TASK_COMPLETED', 'WORKFLOW_COMPLETED', 'WORKFLOW_STARTED')
            GROUP BY execution_id, step_id, event_type HAVING count(*) > 1
            """
        )
        assert duplicates == []
        assert await connection.fetchval("SELECT count(*) FROM step_executions WHERE status <> 'completed'") == 0
        assert await connection.fetchval("SELECT count(*) FROM step_executions") == EXECUTIONS * 4
        assert await connection.fetchval("SELECT count(*) FROM task_attempts WHERE status = 'running'") == 0
    finally:
        await connection.close()
