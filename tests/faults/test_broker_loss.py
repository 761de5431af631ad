"""The broker restarted with all its data gone mid-run: executions are delayed, none is lost, and every webhook
delivery of their endings still arrives, once each."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from flowline.settings import Settings, load_settings
from flowline_devstack.broker import TansuBroker
from flowline_devstack.processes import ServiceGroup

from tests.ports import free_port
from tests.support import CountingServer, api_key, assert_each_ran_once, bearer, define, eventually

EXECUTIONS = 60


def _workflow(ref: str, nap: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "definition": {
            "steps": [
                {"id": "before", "type": "action", "action": "core.echo", "input": "{{ input.n }}"},
                {"id": "nap", "type": "sleep", "duration": nap, "needs": ["before"]},
                {"id": "after", "type": "action", "action": "core.echo", "needs": ["nap"], "input": "{{ input.n }}"},
            ],
            "output": "{{ steps.after.output }}",
        },
    }


# Half the executions finish before the broker dies; the other half sleep through its loss, so the kill always
# falls mid-run however fast the engine is.
QUICK, SLOW = _workflow("faults.nap", "300ms"), _workflow("faults.long", "8s")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of this test's own, since the test throws its data away."""
    broker = TansuBroker(free_port(), log_path=tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def stack_env(stack_env: dict[str, str], broker: TansuBroker) -> dict[str, str]:
    return {
        **stack_env,
        "FLOWLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FLOWLINE_LEASE_SECONDS": "2",
        "FLOWLINE_REDRIVE_AFTER_SECONDS": "3",
        # The events the broker lost reach the webhooks through the sweep of stored events: soon, for the test.
        "FLOWLINE_WEBHOOK_SWEEP_INTERVAL_SECONDS": "1",
        "FLOWLINE_WEBHOOK_SWEEP_GRACE_SECONDS": "2",
    }


@pytest.fixture
def receiver() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


@pytest.fixture
def settings(stack_env: dict[str, str]) -> Settings:
    return load_settings(stack_env)


async def _unfinished(connection: asyncpg.Connection) -> str:
    """What a stuck run looks like: each unfinished execution's steps, timers and events, and what waits to be sent."""
    executions = await connection.fetch(
        """
        SELECT e.id, e.status, e.last_event_sequence,
               (SELECT string_agg(s.step_id || ':' || s.status || '/' || s.attempts || coalesce('@' || s.owner, ''),
                                  ' ' ORDER BY s.position) FROM step_executions s WHERE s.execution_id = e.id) AS steps,
               (SELECT string_agg(t.kind || ':' || t.status, ' ') FROM timers t WHERE t.execution_id = e.id) AS timers,
               (SELECT string_agg(v.event_type, ' ' ORDER BY v.sequence)
                  FROM execution_events v WHERE v.execution_id = e.id) AS events
        FROM executions e WHERE e.status <> 'completed' ORDER BY e.created_at
        """
    )
    outbox = await connection.fetch("SELECT topic, count(*) FROM outbox GROUP BY topic ORDER BY topic")
    return "\n".join([*(str(dict(row)) for row in executions), f"outbox: {[tuple(row) for row in outbox]}"])


def _deliveries(receiver: CountingServer) -> Counter[str]:
    """How many times each webhook-id arrived."""
    return Counter(headers["webhook-id"] for _method, _path, headers, _body in receiver.requests)


async def test_losing_the_broker_and_its_data_delays_but_loses_nothing(
    stack: ServiceGroup, broker: TansuBroker, settings: Settings, receiver: CountingServer
) -> None:
    api = f"{stack['api'].url}/api/v1/tenants/dev"
    headers = bearer(await api_key(settings.database_url))
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        for workflow in (QUICK, SLOW):
            assert (await define(client, workflow)).status_code == 201
        webhook = await client.post("/webhooks", json={"url": f"{receiver.url}/ok", "events": ["WORKFLOW_COMPLETED"]})
        assert webhook.status_code == 201, webhook.text
        accepted = await asyncio.gather(
            *(
                client.post(f"/workflows/{(QUICK if n % 2 else SLOW)['ref']}/execute", json={"input": {"n": n}})
                for n in range(EXECUTIONS)
            )
        )
    assert all(response.status_code == 202 for response in accepted)

    connection = await asyncpg.connect(settings.database_url)
    try:

        async def completed() -> int:
            return int(await connection.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'"))

        async with asyncio.timeout(120):
            while await completed() < EXECUTIONS // 4:  # a good part of the quick half
                await asyncio.sleep(0.02)
        broker.kill()  # in-memory storage: every topic, message and committed offset is gone
        assert await completed() < EXECUTIONS
        await asyncio.sleep(1)
        broker.start()

        try:
            async with asyncio.timeout(180):
                while await completed() < EXECUTIONS:
                    await asyncio.sleep(0.2)
        except TimeoutError:
            pytest.fail(f"not every execution completed after the broker came back:\n{await _unfinished(connection)}")
        await assert_each_ran_once(connection, EXECUTIONS)

        async def each_delivered() -> bool:
            return len(_deliveries(receiver)) >= EXECUTIONS

        await eventually(each_delivered, timeout=60)
    finally:
        await connection.close()

    assert set(_deliveries(receiver).values()) == {1}  # each delivery arrived once
    ended = Counter(json.loads(body)["data"]["executionId"] for _method, _path, _headers, body in receiver.requests)
    assert sorted(ended) == sorted(response.json()["executionId"] for response in accepted)
    assert set(ended.values()) == {1}
