"""Execution commands: each is one transaction (state, event log, outbox) that the engine then applies."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from aiokafka.errors import KafkaConnectionError
from flowline.db.audit import Actor, record_audit
from flowline.db.events import NewEvent
from flowline.db.steps import list_reusable_steps
from flowline.db.workflows import read_workflow
from flowline.domain.commands import lock_execution, preview_retry, request_cancel, request_retry, write_command
from flowline.domain.credentials import Principal
from flowline.domain.definitions import WorkflowDefinition, downstream
from flowline.domain.jsonschemas import check_instance
from flowline.domain.removal import Remover
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.domain.starting import Rerun, caller_started_by, start_execution
from flowline.errors import Conflict, NotFound
from flowline.kafka.outbox import OutboxPublisher, outgoing
from flowline.messages import AdvanceExecution, ExecutionEvent, ExecutionRequested
from flowline.settings import Settings, Topics
from flowline_schemas.control import Cancelled, RecoveryPreview, RerunAccepted, RetryAccepted, StatusChanged
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES
from flowline_schemas.streams import FINAL_EVENTS
from litestar.datastructures import State
from litestar.di import NamedDependency

from flowline_api.domain.control.schemas import RerunRequest, RetryRequest
from flowline_api.domain.streams.hub import StreamHub


# How long a cancel waits for the engine to apply it before answering with the status it has by then.
class ControlService:
    """Cancels, pauses, resumes, retries and deletes executions."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        hub: StreamHub,
        *,
        wait_seconds: float,
        archive_dir: Path | None = None,
    ) -> None:
        self._wait_seconds = wait_seconds
        self._remover = Remover(archive_dir)
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._hub = hub

    async def cancel(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, reason: str | None, actor: Actor
    ) -> Cancelled:
        """Record the request and ask the engine to cancel; wait briefly for it to be applied.

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: the execution has already finished.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await request_cancel(
                connection,
                self._topics,
                tenant_id=tenant_id,
                execution_id=execution_id,
                reason=reason,
                requested_by=actor.principal or "api",
            )
            await _audit(connection, tenant_id, execution_id, "cancel", actor, {"reason": reason})
        await self._outbox.publish(rows)
        status, cancelled_at = await self._await_final(tenant_id, execution_id)
        return Cancelled(execution_id=str(execution_id), status=status, cancelled_at=cancelled_at)

    async def _await_final(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> tuple[str, datetime | None]:
        """The execution's status once final, or after the wait (``cancel_wait_seconds``), with its cancellation time.

        The database has the last word; the execution's events only say when to read it. Without a broker to
        follow, the engine cannot apply the cancel either: the answer is the status as it stands.
        """
        with contextlib.suppress(TimeoutError, KafkaConnectionError):
            async with asyncio.timeout(self._wait_seconds):
                await self._until_final_event(tenant_id, execution_id)
        row = await self._pool.fetchrow(
            "SELECT status, cancelled_at FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
        )
        return row["status"], row["cancelled_at"]

    async def _until_final_event(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        """Return once the execution is final, as its events on the stream hub tell (or its row, if sooner).

        The hub follows the events topic before the row is read: a final event published afterwards arrives, and
        one published before is in the row already (the engine commits a change before it publishes its events).

        Raises:
            KafkaConnectionError: the hub cannot follow the events topic.
        """
        subscription = await self._hub.subscribe(tenant_id)
        try:
            subscription.follow(execution_id)
            status = await self._pool.fetchval(
                "SELECT status FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
            )
            if status in TERMINAL_EXECUTION_STATUSES:
                return
            while True:
                item = await subscription.get(self._wait_seconds)
                if not isinstance(item, ExecutionEvent) or item.event in FINAL_EVENTS:
                    return  # final, or the hub cut this subscription off: the row tells
        finally:
            subscription.close()

    async def delete(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, actor: Actor) -> None:
        """Remove a finished root execution whole (archived first when configured), with an audit row.

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: not finished, a child, or a descendant still running.
            ArchiveFailed: its archive could not be written; nothing was removed.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            await self._remover.delete_execution(connection, tenant_id, execution_id)
            await _audit(connection, tenant_id, execution_id, "delete", actor)

    async def pause(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, actor: Actor) -> StatusChanged:
        """Stop starting new steps; running attempts finish and their results are recorded.

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: the execution is not pending or running.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            execution = await lock_execution(connection, tenant_id, execution_id)
            if execution["status"] not in ("pending", "running"):
                raise Conflict(
                    f"execution {execution_id} is {execution['status']}; only a running or pending one pauses"
                )
            await connection.execute("UPDATE executions SET status = 'paused' WHERE id = $1", execution_id)
            event = NewEvent("WORKFLOW_SUSPENDED", WorkflowSnapshot(status="paused"))
            rows = await write_command(connection, self._topics, execution, tenant_id, [event], [])
            await _audit(connection, tenant_id, execution_id, "pause", actor)
        await self._outbox.publish(rows)
        return StatusChanged(execution_id=str(execution_id), status="paused")

    async def resume(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, actor: Actor) -> StatusChanged:
        """Let a paused execution go on: it advances at once (or starts, if it was paused before it started).

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: the execution is not paused.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            execution = await lock_execution(connection, tenant_id, execution_id)
            if execution["status"] != "paused":
                raise Conflict(f"execution {execution_id} is {execution['status']}; only a paused one resumes")
            started = execution["started_at"] is not None
            status = "running" if started else "pending"
            await connection.execute("UPDATE executions SET status = $2 WHERE id = $1", execution_id, status)
            message = (
                outgoing(self._topics.control, AdvanceExecution(tenant_id=tenant_id, execution_id=execution_id))
                if started
                else outgoing(self._topics.requests, ExecutionRequested(tenant_id=tenant_id, execution_id=execution_id))
            )
            event = NewEvent("WORKFLOW_RESUMED", WorkflowSnapshot(status=status))
            rows = await write_command(connection, self._topics, execution, tenant_id, [event], [message])
            await _audit(connection, tenant_id, execution_id, "resume", actor)
        await self._outbox.publish(rows)
        return StatusChanged(execution_id=str(execution_id), status=status)

    async def rerun(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        request: RerunRequest,
        caller: Principal,
        actor: Actor,
    ) -> RerunAccepted:
        """Start an execution that runs ``fromStep`` and what follows it again, reusing the other outputs.

        The reused outputs are ``execution_id``'s, of every step not downstream of ``fromStep``.

        Raises:
            NotFound: no such execution in this tenant, or it has no step ``fromStep``; unknown version.
            Conflict: the chosen version lacks ``fromStep`` or steps whose outputs would be reused.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            plan = await _plan_rerun(connection, tenant_id, execution_id, request, lock_source=True)
            started = await start_execution(
                connection,
                self._topics,
                tenant_id=tenant_id,
                workflow_ref=plan.workflow_ref,
                version=plan.version,
                execution_input=plan.execution_input,
                idempotency_key=None,
                triggered_by="rerun",
                started_by=caller_started_by(caller.subject),
                owned_by=actor.principal,
                rerun=Rerun(execution_id, request.from_step),
            )
            details = {"fromStep": request.from_step, "rerun": str(started.id)}
            await _audit(connection, tenant_id, execution_id, "rerun", actor, details)
        await self._outbox.publish(started.outbox)
        return RerunAccepted(
            execution_id=str(started.id),
            status=started.status,
            created_at=started.created_at,
            rerun_of=str(execution_id),
        )

    async def preview_rerun(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, request: RerunRequest
    ) -> RecoveryPreview:
        """Which steps a rerun from ``fromStep`` would run again and which outputs it would reuse; starts nothing.

        Raises:
            NotFound, Conflict: as ``rerun`` (a disabled workflow too).
            ValidationFailed: the input does not match the chosen version's input schema.
        """
        async with self._pool.acquire() as connection:
            plan = await _plan_rerun(connection, tenant_id, execution_id, request)
        if not plan.enabled:
            raise Conflict(f"workflow {plan.workflow_ref!r} is disabled")  # as the rerun would be refused
        if plan.input_schema is not None:
            check_instance(plan.input_schema, plan.execution_input, "/input")
        return RecoveryPreview(
            execution_id=str(execution_id),
            steps=[step for step in plan.steps if step not in plan.reused],
            kept=[step for step in plan.steps if step in plan.reused],
        )

    async def retry(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, request: RetryRequest, actor: Actor
    ) -> RetryAccepted:
        """Make a failed execution pending again, with a new input if given; the engine resumes its failed steps.

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: the execution has not failed.
            ValidationFailed: the new input does not match the execution's input schema.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await request_retry(
                connection,
                self._topics,
                tenant_id=tenant_id,
                execution_id=execution_id,
                note=request.note,
                execution_input=request.input,
            )
            details = {"note": request.note, "input": request.input}
            await _audit(connection, tenant_id, execution_id, "retry", actor, details)
        await self._outbox.publish(rows)
        return RetryAccepted(
            workflow_execution_id=str(execution_id),
            status="pending",
            message=f"Execution {execution_id} reset for retry. Status: PENDING",
            success=True,
        )

    async def preview_retry(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, request: RetryRequest
    ) -> RecoveryPreview:
        """Which steps a retry would run again and which keep their output; changes nothing.

        Raises:
            NotFound, Conflict, ValidationFailed: as ``retry``.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            again, kept = await preview_retry(
                connection, tenant_id=tenant_id, execution_id=execution_id, execution_input=request.input
            )
        return RecoveryPreview(execution_id=str(execution_id), steps=again, kept=kept)


@dataclass(frozen=True, slots=True)
class _RerunPlan:
    """What a rerun from a step starts: which workflow version, with which input, reusing which steps' outputs."""

    workflow_ref: str
    version: int
    enabled: bool
    execution_input: dict[str, Any]
    input_schema: Any
    steps: list[str]  # the version's, in definition order
    reused: set[str]


async def _plan_rerun(
    connection: asyncpg.Connection,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    request: RerunRequest,
    *,
    lock_source: bool = False,
) -> _RerunPlan:
    """Work out a rerun of ``execution_id`` from ``request.fromStep``.

    Reused are the completed and skipped steps of ``execution_id`` not downstream of ``fromStep``; the others
    run again. ``lock_source``: the original is locked (``FOR KEY SHARE``) until the caller's transaction ends, so
    that a removal skips it until the rerun is written (then keeps it until the rerun starts), or, removing it
    already, makes this wait and answer 404: a rerun never points at an execution that is gone.

    Raises:
        NotFound: no such execution in this tenant, or it has no step ``fromStep``; unknown version.
        Conflict: the chosen version lacks ``fromStep`` or steps whose outputs would be reused.
    """
    source = await connection.fetchrow(
        "SELECT e.id, e.workflow_ref, e.workflow_version, e.input, v.definition FROM executions e "
        "JOIN workflow_versions v ON v.id = e.workflow_version_id WHERE e.id = $1 AND e.tenant_id = $2"
        + (" FOR KEY SHARE OF e" if lock_source else ""),
        execution_id,
        tenant_id,
    )
    if source is None:
        raise NotFound(f"execution {execution_id} does not exist")
    source_steps = {step["id"] for step in source["definition"]["steps"]}
    if request.from_step not in source_steps:
        raise NotFound(f"execution {execution_id} has no step {request.from_step!r}")
    version = request.version or source["workflow_version"]
    target = await read_workflow(connection, tenant_id, source["workflow_ref"], version)
    definition = msgspec.convert(target["definition"], WorkflowDefinition)
    if request.from_step not in {step.id for step in definition.steps}:
        raise Conflict(f"version {version} of {source['workflow_ref']!r} has no step {request.from_step!r}")
    reused = {step.id for step in definition.steps} - downstream(definition, request.from_step)
    if missing := sorted(reused - source_steps):
        raise Conflict(
            f"version {version} has steps the rerun would reuse but execution {execution_id} never ran: "
            + ", ".join(missing)
        )
    finished = {step.step_id for step in await list_reusable_steps(connection, execution_id)}
    return _RerunPlan(
        workflow_ref=source["workflow_ref"],
        version=version,
        enabled=target["enabled"],
        execution_input=source["input"] if request.input is None else request.input,
        input_schema=target["input_schema"],
        steps=[step.id for step in definition.steps],
        reused=reused & finished,
    )


async def _audit(
    connection: asyncpg.Connection,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    action: str,
    actor: Actor,
    details: dict[str, Any] | None = None,
) -> None:
    """An audit row for a command on an execution, with what came with it (reason, note, …)."""
    changes = {name: {"before": None, "after": value} for name, value in (details or {}).items() if value is not None}
    await record_audit(
        connection,
        tenant_id=tenant_id,
        entity_type="execution",
        entity_id=str(execution_id),
        action=action,
        actor=actor,
        changes=changes or None,
    )


def provide_control_service(
    pool: NamedDependency[asyncpg.Pool],
    outbox: NamedDependency[OutboxPublisher],
    settings: NamedDependency[Settings],
    state: State,
) -> ControlService:
    """An execution command service for this request, waiting on the process's stream hub."""
    hub: StreamHub = state.stream_hub
    return ControlService(
        pool,
        outbox,
        settings.topics,
        hub,
        wait_seconds=settings.cancel_wait_seconds,
        archive_dir=Path(settings.archive_dir) if settings.archive_dir else None,
    )
