"""A running attempt's lease is renewed while it runs; one taken from this worker is stopped."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from flowline.domain.actions import ActionContext
from flowline.messages import ExecutionRequested
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics

from tests.support import define_and_start

DEFINITION = {"steps": [{"id": "only", "type": "action", "action": "core.echo", "input": "{{ input.word }}"}]}


async def test_renewal_extends_the_lease_and_stops_an_attempt_taken_over(runtime: Runtime, settings: Settings) -> None:
    pool = runtime.pool
    started = await define_and_start(pool, settings, "demo.renewal", DEFINITION, {"word": "w"})
    never = asyncio.Event()

    async def hang(step_input: Any, context: ActionContext) -> Any:  # not the built-in: runs under a lease
        await never.wait()

    engine = Engine(
        msgspec.structs.replace(settings, worker_id="keeper", lease_seconds=60),
        pool,
        runtime.outbox,
        {"core.echo": hang},
        ExecutorMetrics(runtime.registry),
    )
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    await engine.handle_request(ExecutionRequested(tenant_id=tenant_id, execution_id=started.id))
    assert engine.running_attempts == 1

    await pool.execute("UPDATE step_executions SET lease_expires_at = now() + interval '1 second'")
    await engine.renew_leases()
    left = "SELECT extract(epoch FROM lease_expires_at - now()) FROM step_executions"
    assert await pool.fetchval(left) > 30

    await pool.execute("UPDATE step_executions SET owner = 'another', lease_expires_at = now()")
    await engine.renew_leases()
    assert await pool.fetchval(left) <= 0  # another worker's lease is not this one's to extend
    for _ in range(500):  # the attempt is cancelled: it ends within a few turns of the loop
        if engine.running_attempts == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.running_attempts == 0
    await engine.drain(grace_seconds=0)
