"""Group commit: several executions' state changes in one transaction, each applied exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from flowline.domain.actions import ActionContext, load_actions
from flowline.domain.starting import start_execution
from flowline.messages import CreatedExecution, ExecutionRequested
from flowline.runtime.ids import uuid7
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.group_commit import GroupCommit
from flowline_executor.metrics import ExecutorMetrics

from tests.support import define_and_start, eventually


def _one_step(action: str) -> dict[str, Any]:
    return {"steps": [{"id": "a", "type": "action", "action": action, "input": "{{ input.n }}"}]}


class Gate:
    """Actions that wait until the test opens the gate, so that their results arrive together."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def pass_through(self, step_input: Any, context: ActionContext) -> Any:
        await self.open.wait()
        return step_input

    async def unstorable(self, step_input: Any, context: ActionContext) -> Any:
        await self.open.wait()
        return "PostgreSQL refuses \u0000 in JSON"  # the result's statement raises inside the group


class Holder:
    """Keeps the group committer's only writer busy, so that the changes submitted meanwhile form one group."""

    def __init__(self, group_commit: GroupCommit) -> None:
        self._group_commit = group_commit
        self._held = asyncio.Event()
        self._release = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def hold(self) -> None:
        async def wait(connection: asyncpg.Connection) -> None:
            self._held.set()
            await self._release.wait()

        self._task = asyncio.create_task(self._group_commit.run(uuid7(), wait))
        await self._held.wait()

    async def release_when_waiting(self, changes: int) -> None:
        async def queued() -> bool:
            return self._group_commit.waiting == changes

        await eventually(queued)
        self._release.set()
        assert self._task is not None
        await self._task


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@pytest.fixture
async def group_commit(runtime: Runtime) -> GroupCommit:
    return GroupCommit(runtime.pool, max_groups=1)


@pytest.fixture
async def engine(runtime: Runtime, settings: Settings, gate: Gate, group_commit: GroupCommit) -> AsyncIterator[Engine]:
    actions = {**load_actions(), "test.pass": gate.pass_through, "test.unstorable": gate.unstorable}
    engine = Engine(
        settings, runtime.pool, runtime.outbox, actions, ExecutorMetrics(runtime.registry), group_commit=group_commit
    )
    yield engine
    await engine.drain(grace_seconds=5)
    await engine.close()


async def _start(pool: asyncpg.Pool, settings: Settings, ref: str, action: str, count: int) -> list[uuid.UUID]:
    """``count`` pending executions of a one-step workflow running ``action``."""
    first = await define_and_start(pool, settings, ref, _one_step(action), {"n": 0})
    ids = [first.id]
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    for n in range(1, count):
        async with pool.acquire() as connection, connection.transaction():
            started = await start_execution(
                connection,
                settings.topics,
                tenant_id=tenant_id,
                workflow_ref=ref,
                version=None,
                execution_input={"n": n},
                idempotency_key=None,
                triggered_by="test",
                started_by="test",
            )
        ids.append(started.id)
    return ids


async def _request(pool: asyncpg.Pool, execution_id: uuid.UUID, *, carried: bool = False) -> ExecutionRequested:
    """A request to start the execution; ``carried``, with the version and the execution as the api sends it."""
    execution = await pool.fetchrow(
        "SELECT tenant_id, workflow_version_id, input, workflow_ref, workflow_version, root_execution_id "
        "FROM executions WHERE id = $1",
        execution_id,
    )
    if not carried:
        return ExecutionRequested(tenant_id=execution["tenant_id"], execution_id=execution_id)
    created = CreatedExecution(
        input=execution["input"],
        workflow_ref=execution["workflow_ref"],
        workflow_version=execution["workflow_version"],
        root_execution_id=execution["root_execution_id"],
    )
    return ExecutionRequested(
        tenant_id=execution["tenant_id"],
        execution_id=execution_id,
        workflow_version_id=execution["workflow_version_id"],
        created=created,
    )


async def _finished(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> None:
    async def all_terminal() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT bool_and(status IN ('completed', 'failed')) FROM executions WHERE id = ANY($1::uuid[])", ids
            )
        )

    await eventually(all_terminal, timeout=30)


async def _assert_applied_once(pool: asyncpg.Pool, execution_id: uuid.UUID, outcome: str) -> None:
    """One start, one attempt, one result and a gapless event sequence: nothing lost or applied twice."""
    events = [
        row["event_type"]
        for row in await pool.fetch(
            "SELECT event_type FROM execution_events WHERE execution_id = $1 ORDER BY sequence", execution_id
        )
    ]
    assert events == [
        "WORKFLOW_CREATED",
        "WORKFLOW_STARTED",
        "TASK_CREATED",
        "TASK_STARTED",
        outcome,
        outcome.replace("TASK", "WORKFLOW"),
    ]
    sequences = await pool.fetchval(
        "SELECT array_agg(sequence ORDER BY sequence) FROM execution_events WHERE execution_id = $1", execution_id
    )
    assert sequences == list(range(1, len(events) + 1))
    assert await pool.fetchval("SELECT last_event_sequence FROM executions WHERE id = $1", execution_id) == len(events)
    attempts = await pool.fetch("SELECT status FROM task_attempts WHERE execution_id = $1", execution_id)
    assert [row["status"] for row in attempts] == [outcome.removeprefix("TASK_").lower()]


async def test_a_failing_change_does_not_roll_back_or_repeat_the_others_of_its_group(
    runtime: Runtime, settings: Settings, engine: Engine, gate: Gate, group_commit: GroupCommit
) -> None:
    pool = runtime.pool
    good = await _start(pool, settings, "group.good", "test.pass", 5)
    bad = await _start(pool, settings, "group.bad", "test.unstorable", 1)
    for execution_id in [*good, *bad]:
        await engine.handle_request(await _request(pool, execution_id))
    assert engine.running_attempts == 6

    # Every attempt's result is submitted while the writer is held: the six results form one group,
    # in which the bad one's statement raises.
    holder = Holder(group_commit)
    await holder.hold()
    gate.open.set()
    await holder.release_when_waiting(6)
    await _finished(pool, [*good, *bad])

    for execution_id in good:
        await _assert_applied_once(pool, execution_id, "TASK_COMPLETED")
    assert await pool.fetchval(
        "SELECT array_agg(output ORDER BY (input ->> 'n')::int) FROM executions WHERE id = ANY($1::uuid[])", good
    ) == [{"a": n} for n in range(5)]
    await _assert_applied_once(pool, bad[0], "TASK_FAILED")
    error = await pool.fetchval("SELECT error FROM step_executions WHERE execution_id = $1", bad[0])
    assert error["type"] == "Unrecordable"


async def test_a_message_delivered_twice_into_one_group_applies_once(
    runtime: Runtime, settings: Settings, engine: Engine, gate: Gate, group_commit: GroupCommit
) -> None:
    pool = runtime.pool
    ids = await _start(pool, settings, "group.twice", "test.pass", 3)
    requests = [await _request(pool, execution_id) for execution_id in ids]

    holder = Holder(group_commit)
    await holder.hold()
    handled = [asyncio.create_task(engine.handle_request(request)) for request in [*requests, *requests]]
    await holder.release_when_waiting(6)
    await asyncio.gather(*handled)
    assert engine.running_attempts == 3  # each step claimed once

    gate.open.set()
    await _finished(pool, ids)
    for execution_id in ids:
        await _assert_applied_once(pool, execution_id, "TASK_COMPLETED")


async def test_starts_worked_out_ahead_and_delivered_twice_into_one_group_apply_once(
    runtime: Runtime, settings: Settings, engine: Engine, gate: Gate, group_commit: GroupCommit
) -> None:
    pool = runtime.pool
    ids = await _start(pool, settings, "group.ahead", "test.pass", 4)
    requests = [await _request(pool, execution_id, carried=True) for execution_id in ids]
    await engine.handle_request(requests[0])  # reads the workflow's version: the other starts go ahead

    holder = Holder(group_commit)
    await holder.hold()
    handled = [asyncio.create_task(engine.handle_request(request)) for request in [*requests[1:], *requests[1:]]]
    await holder.release_when_waiting(6)
    await asyncio.gather(*handled)
    assert engine.running_attempts == 4  # each step claimed once

    gate.open.set()
    await _finished(pool, ids)
    for execution_id in ids:
        await _assert_applied_once(pool, execution_id, "TASK_COMPLETED")


async def test_one_statement_alone_in_its_group_runs_without_a_transaction(group_commit: GroupCommit) -> None:
    async def in_transaction(connection: asyncpg.Connection) -> bool:
        return connection.is_in_transaction()

    assert await group_commit.run(uuid7(), in_transaction, statement=True) is False
    assert await group_commit.run(uuid7(), in_transaction) is True
    holder = Holder(group_commit)
    await holder.hold()
    together = [asyncio.create_task(group_commit.run(uuid7(), in_transaction, statement=True)) for _ in range(2)]
    await holder.release_when_waiting(2)
    assert await asyncio.gather(*together) == [True, True]  # with others, it shares their transaction
