"""Retention on the running stack: an execution run for real (a child, a sleep, log records) goes whole once its
workflow's retention has passed, and every route then answers 404 for it."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from flowline.settings import Settings

from tests.integration.execution_trees import rows_left
from tests.support import define, eventually

CHILD = {
    "ref": "demo.kept-child",
    "definition": {"steps": [{"id": "note", "type": "action", "action": "core.log", "input": {"message": "child"}}]},
}
PARENT = {
    "ref": "demo.short-lived",
    # Long enough for log-ingest to have written the records before the scheduler looks (every 10 s).
    "retention": "3s",
    "definition": {
        "steps": [
            {"id": "note", "type": "action", "action": "core.log", "input": {"message": "parent"}},
            {"id": "nap", "type": "sleep", "duration": "100ms", "needs": ["note"]},
            {"id": "call", "type": "workflow", "workflow": "demo.kept-child", "needs": ["nap"]},
        ]
    },
}


async def _finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal body
        body = (await client.get(f"/executions/{execution_id}")).json()
        return body.get("status") in ("completed", "failed", "cancelled")

    await eventually(done, timeout=60)
    return body


async def test_a_run_goes_whole_once_its_workflows_retention_has_passed(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (CHILD, PARENT):
            assert (await define(client, workflow)).status_code == 201
        started = await client.post("/workflows/demo.short-lived/execute", json={"input": {}})
        root = started.json()["executionId"]
        finished = await _finished(client, root)
        assert finished["status"] == "completed", finished
        children = (await client.get(f"/executions/{root}/children")).json()
        child = children["children"][0]["childWorkflowExecutionId"]
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            ids = [root, child]
            before = await rows_left(pool, ids)
            assert all(before[table] > 0 for table in ("executions", "step_executions", "execution_events", "timers"))

            async def gone() -> bool:
                return (await client.get(f"/executions/{root}")).status_code == 404

            await eventually(gone, timeout=90)
            assert set((await rows_left(pool, ids)).values()) == {0}
        finally:
            await pool.close()
        for path in (
            f"/executions/{root}",
            f"/executions/{root}/steps",
            f"/executions/{child}",
            f"/executions/{root}/logs",
        ):
            assert (await client.get(path)).status_code == 404, path
