"""Agent steps with the executor SIGKILLed twice mid-run: every execution completes, and an agent that
deduplicates on the Idempotency-Key applies each step's side effect exactly once (DESIGN §3 invariant 4).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from flowline.settings import Settings
from flowline_devstack.processes import ServiceGroup

from tests.support import CountingServer, api_key, bearer

EXECUTIONS = 200
AGENT_STEPS = ("charge", "ship")
# The agent answers a little late, so that a kill finds calls in flight: the agent has applied them, the
# executor never recorded their result, and the step is recovered as a new attempt under the same key.
AGENT_PATH = "/slow/0.05"
AGENT = {
    "name": "fulfilment",
    "authType": "none",
    "retryConfig": {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 50, "maxIntervalMs": 50},
}
WORKFLOW = {
    "ref": "faults.fulfil",
    "definition": {
        "steps": [
            {"id": "charge", "type": "agent", "agent": "fulfilment", "input": {"order": "{{ input.n }}"}},
            {
                "id": "ship",
                "type": "agent",
                "agent": "fulfilment",
                "needs": ["charge"],
                "input": {"order": "{{ input.n }}", "charged": "{{ steps.charge.output.got }}"},
            },
        ],
        "output": "{{ input.n }}",
    },
}


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    # Recover quickly: short leases, and lost messages re-sent after a few seconds.
    return {**stack_env, "FLOWLINE_LEASE_SECONDS": "2", "FLOWLINE_REDRIVE_AFTER_SECONDS": "3"}


@pytest.fixture
def agent_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def _create_pack(client: httpx.AsyncClient, ref: str) -> None:
    """Create the workflow's pack where packs are a resource (404/405: not yet, workflows need none)."""
    created = await client.post("/packs", json={"ref": ref})
    assert created.status_code in (201, 404, 405), created.text


async def _completed(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'"))


async def _kill_executor_at(stack: ServiceGroup, connection: asyncpg.Connection, completions: int) -> int:
    """SIGKILL the executor once ``completions`` executions completed, restart it; completions at the kill."""
    async with asyncio.timeout(120):
        while await _completed(connection) < completions:
            await asyncio.sleep(0.02)
    stack.kill("executor")
    completed_at_kill = await _completed(connection)
    await asyncio.sleep(1)
    stack["executor"].start()
    await asyncio.to_thread(stack["executor"].wait_healthy)
    return completed_at_kill


async def test_each_agent_side_effect_is_applied_once_across_executor_kills(
    stack: ServiceGroup, pool: asyncpg.Pool, agent_server: CountingServer, settings: Settings
) -> None:
    api = f"{stack['api'].url}/api/v1/tenants/dev"
    headers = bearer(await api_key(settings.database_url))
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        await _create_pack(client, "faults")
        created = await client.post("/agents", json={**AGENT, "url": agent_server.url + AGENT_PATH})
        assert created.status_code == 201, created.text
        defined = await client.post("/workflows", json=WORKFLOW)
        assert defined.status_code == 201, defined.text
        accepted = await asyncio.gather(
            *(client.post("/workflows/faults.fulfil/execute", json={"input": {"n": n}}) for n in range(EXECUTIONS))
        )
    assert all(response.status_code == 202 for response in accepted)

    started = time.monotonic()
    async with pool.acquire() as connection:
        first_kill = await _kill_executor_at(stack, connection, EXECUTIONS // 4)
        first_kill_at = time.monotonic() - started
        second_kill = await _kill_executor_at(stack, connection, EXECUTIONS // 2)
        second_kill_at = time.monotonic() - started
        async with asyncio.timeout(180):
            while await _completed(connection) < EXECUTIONS:
                await asyncio.sleep(0.2)
        all_completed_at = time.monotonic() - started
        assert second_kill < EXECUTIONS, "the executor was killed after all work was done"

        # The database: every step completed exactly once, every execution once.
        steps = await connection.fetch(
            "SELECT execution_id, step_id, generation, status, output, input FROM step_executions"
        )
        assert len(steps) == EXECUTIONS * len(AGENT_STEPS)
        assert {step["status"] for step in steps} == {"completed"}
        events = await connection.fetch(
            """
            SELECT execution_id, step_id, event_type, count(*) AS n FROM execution_events
            WHERE event_type IN ('TASK_COMPLETED', 'WORKFLOW_COMPLETED')
            GROUP BY execution_id, step_id, event_type
            """
        )
        task_completed = {
            (e["execution_id"], e["step_id"]): e["n"] for e in events if e["event_type"] == "TASK_COMPLETED"
        }
        workflow_completed = [e["n"] for e in events if e["event_type"] == "WORKFLOW_COMPLETED"]
        assert task_completed == {(step["execution_id"], step["step_id"]): 1 for step in steps}
        assert workflow_completed == [1] * EXECUTIONS
        attempts = Counter(
            (row["status"], row["number"]) for row in await connection.fetch("SELECT status, number FROM task_attempts")
        )
        assert await connection.fetchval("SELECT count(*) FROM task_attempts WHERE status = 'running'") == 0

    # The agent, as an idempotent receiver: the first request of a key applies the effect, later ones are
    # answered from what it stored. Every step execution's key arrived, and exactly one effect per key.
    requests = [
        headers for method, path, headers, _ in agent_server.requests if method == "POST" and path == AGENT_PATH
    ]
    by_key: dict[str, list[dict[str, str]]] = defaultdict(list)
    keys_by_step: dict[tuple[str, str], set[str]] = defaultdict(set)
    for headers in requests:
        by_key[headers["idempotency-key"]].append(headers)
        keys_by_step[(headers["x-flowline-execution-id"], headers["x-flowline-step-id"])].add(
            headers["idempotency-key"]
        )
    expected_keys = {f"{step['execution_id']}:{step['step_id']}:{step['generation']}" for step in steps}
    assert set(by_key) == expected_keys
    effects = {key: deliveries[0] for key, deliveries in by_key.items()}
    assert len(effects) == EXECUTIONS * len(AGENT_STEPS)
    assert len(keys_by_step) == EXECUTIONS * len(AGENT_STEPS)
    assert all(len(keys) == 1 for keys in keys_by_step.values()), {
        step: keys for step, keys in keys_by_step.items() if len(keys) > 1
    }
    # Each step's recorded output is the agent's answer to that step's input.
    for step in steps:
        assert step["output"]["path"] == AGENT_PATH
        assert json.loads(step["output"]["got"]) == step["input"]

    # At least once: deliveries after a kill repeat a key with a higher attempt number. Allowed; shown.
    repeated = {
        key: [d["x-flowline-attempt"] for d in deliveries] for key, deliveries in by_key.items() if len(deliveries) > 1
    }
    print(
        f"\nexecutor killed at {first_kill} ({first_kill_at:.1f} s) and {second_kill} ({second_kill_at:.1f} s) of "
        f"{EXECUTIONS} completions, all completed at {all_completed_at:.1f} s; "
        f"{len(requests)} agent requests for {len(effects)} keys; {len(repeated)} keys delivered more than once "
        f"(attempt numbers: {Counter(tuple(v) for v in repeated.values())}); attempts by (status, number): "
        f"{dict(sorted(attempts.items()))}"
    )
    for key, deliveries in by_key.items():
        numbers = [int(d["x-flowline-attempt"]) for d in deliveries]
        assert numbers == sorted(set(numbers)), f"{key}: one attempt number delivered twice: {numbers}"
