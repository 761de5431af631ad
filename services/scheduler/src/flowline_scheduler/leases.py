"""Recovery of step attempts whose worker died: an expired lease re-dispatches the step."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from flowline.db.events import NewEvent, append_events
from flowline.db.execution_runs import lock_execution
from flowline.db.steps import (
    ExpiredLease,
    ExpiredStep,
    fail_expired_attempt,
    fail_expired_step,
    list_expired_leases,
    lock_expired_step,
    reschedule_expired_step,
)
from flowline.db.workflows import read_version_definition
from flowline.domain.agents import read_agent_max_attempts
from flowline.domain.snapshots import TaskSnapshot
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, outgoing
from flowline.messages import AdvanceExecution
from flowline.runtime.loops import LoopService
from flowline.settings import Topics

from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)


# Attempts a step may lose to workers that died, beyond its own retry budget, before it fails.
LOST_ATTEMPTS_ALLOWED = 3


class LeaseRecovery(LoopService):
    """Finds running steps whose lease expired, fails that attempt and dispatches the next one."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        metrics: SchedulerMetrics,
        interval_seconds: float,
    ) -> None:
        super().__init__("lease-recovery", interval_seconds)
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._metrics = metrics

    async def _attempt_limit(self, connection: asyncpg.Connection, step: ExpiredStep, version_id: uuid.UUID) -> int:
        """How many attempts a step may lose to dead workers: its retry budget plus a margin for crashes.

        An agent step without a ``retry`` of its own has its agent's retryConfig as its budget.
        """
        definition = await read_version_definition(connection, version_id)
        step_definition = next((each for each in definition.steps if each.id == step.step_id), None)
        max_attempts = None
        if step_definition is not None and step_definition.retry is not None:
            max_attempts = step_definition.retry.max_attempts
        elif step_definition is not None and step_definition.type == "agent" and step_definition.agent:
            max_attempts = await read_agent_max_attempts(connection, step.tenant_id, step_definition.agent)
        return (max_attempts or 1) + LOST_ATTEMPTS_ALLOWED

    async def run_once(self) -> None:
        """Recover every step whose lease has expired."""
        for lease in await list_expired_leases(self._pool, limit=500):
            await self.recover(lease)

    async def recover(self, lease: ExpiredLease) -> bool:
        """Re-dispatch one step if its lease is still expired once locked, or fail it past its attempt limit.

        Returns:
            Whether the step was recovered (re-dispatched or failed).
        """
        async with self._pool.acquire() as connection, connection.transaction():
            # Lock order as everywhere: the execution first, then its step.
            execution = await lock_execution(connection, lease.tenant_id, lease.execution_id)
            step = await lock_expired_step(connection, lease.id)
            if execution is None or step is None:
                return False
            error = {
                "message": f"lease expired: worker {step.owner} stopped answering",
                "type": "LeaseExpired",
                "retryable": True,
            }
            await fail_expired_attempt(connection, step, error)
            limit = await self._attempt_limit(connection, step, execution.workflow_version_id)
            if step.attempts >= limit:
                event, message, outcome = await self._give_up(connection, step, error)
            else:
                await reschedule_expired_step(connection, step)
                snapshot = TaskSnapshot(status="scheduled", attempt=step.attempts + 1, recovered_from=step.owner)
                event = NewEvent("TASK_CREATED", snapshot, step.step_id, step.id)
                message, outcome = outgoing(self._topics.tasks, step.dispatched()), "redispatched"
            rows = await append_events(
                connection,
                tenant_id=step.tenant_id,
                execution_id=lease.execution_id,
                after_sequence=execution.last_event_sequence,
                events=[event],
                topic=self._topics.events,
                outbox=[message],
            )
        self._metrics.lease_recoveries.labels(outcome).inc()
        logger.warning("recovered step %s after its worker %s stopped", lease.id, step.owner)
        await self._outbox.publish(rows)
        return True

    async def _give_up(
        self, connection: asyncpg.Connection, step: ExpiredStep, error: dict[str, Any]
    ) -> tuple[NewEvent, OutboxRow, str]:
        """Fail a step that keeps taking its worker down: it must not take every executor down in turn."""
        error = {
            **error,
            "message": f"gave up after {step.attempts} attempts whose workers stopped answering",
            "retryable": False,
        }
        await fail_expired_step(connection, step, error)
        event = NewEvent("TASK_FAILED", TaskSnapshot(status="failed", error=error), step.step_id, step.id)
        advance = AdvanceExecution(tenant_id=step.tenant_id, execution_id=step.execution_id)
        return event, outgoing(self._topics.control, advance), "failed"
