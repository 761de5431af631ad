"""The executor never runs more attempts than its capacity, and a failed claim gives its slot back.

The database here is a stand-in: only the engine's slot accounting is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flowline.domain.definitions import StepDefinition
from flowline.messages import TaskDispatched
from flowline.settings import Settings
from flowline_executor import attempts
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

STEP = StepDefinition(id="a", type="action", action="core.echo")


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> bool:
        return False


class _Connection:
    def transaction(self) -> _Transaction:
        return _Transaction()

    async def execute(self, *args: Any) -> None:
        return None

    async def fetchval(self, *args: Any) -> int:
        return 1

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [{"sequenced": 1}] if "sequenced" in sql else []

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any]:
        if "FROM executions" in sql:
            return {
                "id": args[0],
                "status": "running",
                "tenant_id": uuid.uuid4(),
                "input": {},
                "workflow_ref": "demo",
                "workflow_version": 1,
                "workflow_version_id": uuid.uuid4(),
                "parent_execution_id": None,
                "parent_step_id": None,
                "root_execution_id": args[0],
                "last_event_sequence": 0,
                "started_at": None,
                "rerun_of": None,
                "rerun_from_step": None,
                "owned_by": None,
            }
        await asyncio.sleep(0.01)  # let concurrent claims interleave
        return {
            "id": args[0],
            "step_id": "a",
            "step_type": "action",
            "status": "scheduled",
            "input": {},
            "output": None,
            "error": None,
            "attempts": 0,
            "generation": 0,
            "owner": None,
        }


class _Pool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Connection]:
        yield _Connection()


class _Outbox:
    async def publish(self, rows: Any) -> bool:
        return True


def _engine() -> Engine:
    return Engine(
        Settings(max_concurrent_tasks=4, secret_key=Fernet.generate_key().decode()),
        _Pool(),
        _Outbox(),
        {},
        ExecutorMetrics(CollectorRegistry()),
    )  # type: ignore[arg-type]


def _dispatch() -> TaskDispatched:
    return TaskDispatched(
        tenant_id=uuid.uuid4(),
        execution_id=uuid.uuid4(),
        step_execution_id=uuid.uuid4(),
        step_id="a",
        generation=0,
        attempt=1,
    )


async def test_concurrent_claims_never_exceed_the_capacity() -> None:
    engine = _engine()
    release = asyncio.Event()

    async def graph(connection: Any, version_id: Any) -> Any:
        class Graph:
            steps = {"a": STEP}

        return Graph()

    async def run(claimed: Any) -> None:
        await release.wait()

    engine.executor.graph = graph  # type: ignore[method-assign]
    engine._run = run  # type: ignore[method-assign]
    claims = [asyncio.create_task(engine.handle_task(_dispatch())) for _ in range(20)]
    await asyncio.wait(claims, timeout=0.5)
    assert engine.running_attempts == 4
    release.set()
    await asyncio.wait_for(asyncio.gather(*claims), timeout=10)  # the others get their turn as slots free
    await engine.drain(grace_seconds=5)
    assert engine.running_attempts == 0


async def test_a_claim_that_fails_gives_its_slot_back(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine()

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr(attempts, "start_attempt", broken)
    for _ in range(6):

        async def apply(change: Any) -> None:
            await attempts.dispatch(change, STEP, uuid.uuid4(), 0, 1, {})

        with contextlib.suppress(ConnectionResetError):
            await engine._transactions.run(uuid.uuid4(), uuid.uuid4(), apply)
    assert engine.executor.slots.busy == 0
