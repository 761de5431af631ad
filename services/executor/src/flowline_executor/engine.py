"""The executor's dispatcher: each message it consumes becomes a state change, and each claimed attempt a task."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from flowline.domain.actions import Action
from flowline.kafka.outbox import OutboxPublisher
from flowline.messages import (
    CancelSubmission,
    ControlMessage,
    ExecutionRequested,
    RequestMessage,
    SubmissionMessage,
    SubmitExecution,
    TaskDispatched,
)
from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.settings import Settings

from flowline_executor.attempt_work import AttemptWork, Claimed, Outcome
from flowline_executor.attempts import claim
from flowline_executor.change import Change
from flowline_executor.control import apply_control
from flowline_executor.executor import Executor
from flowline_executor.failures import failure
from flowline_executor.group_commit import GroupCommit
from flowline_executor.leases import renew_leases
from flowline_executor.metrics import ExecutorMetrics
from flowline_executor.results import record_result
from flowline_executor.starting import start
from flowline_executor.submissions import submit
from flowline_executor.transaction import Transactions

logger = logging.getLogger(__name__)


class Engine:
    """Handles the executor's messages; one instance per process."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        actions: dict[str, Action],
        metrics: ExecutorMetrics,
        *,
        group_commit: GroupCommit | None = None,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._metrics = metrics
        self._work = AttemptWork(settings, pool, actions)
        self.executor = Executor(settings, self._work)
        self.worker = self.executor.worker
        self._transactions = Transactions(
            self.executor, pool, outbox, metrics, group_commit or GroupCommit(pool), self._launch
        )

    @property
    def running_attempts(self) -> int:
        """Attempts this process is running now."""
        return len(self.executor.slots.running)

    async def handle_command(self, message: SubmissionMessage | RequestMessage | ControlMessage) -> None:
        """Apply a message of the submissions, requests or control topic (one consumer follows the three)."""
        match message:
            case SubmitExecution() | CancelSubmission():
                await submit(self._pool, self._outbox, self.executor.topics, message)
            case ExecutionRequested():
                await self.handle_request(message)
            case _:
                await self.handle_control(message)

    async def handle_request(self, message: RequestMessage) -> None:
        """Start the execution an ExecutionRequested asks for."""

        async def locked(change: Change) -> None:
            await start(change, message)

        async def ahead(change: Change) -> None:
            await start(change, message, ahead=True)

        await self._transactions.run(message.tenant_id, message.execution_id, locked, ahead=ahead)

    async def handle_control(self, message: ControlMessage) -> None:
        """Apply a message of the control topic: a fired timer, a settled promise or a cancellation."""

        async def apply(change: Change) -> None:
            await apply_control(change, message)

        await self._transactions.run(message.tenant_id, message.execution_id, apply)

    async def handle_task(self, message: TaskDispatched) -> None:
        """Claim the attempt and run it in the background; the offset is committed once it is claimed.

        A claimed attempt is owned under a lease: if this process dies, the scheduler finds the expired
        lease and dispatches the step again. With no room for another attempt, wait for one to finish.
        """
        await self.executor.slots.take()  # taken now, so that concurrent claims cannot overshoot the capacity
        claimed: Change | None = None

        async def apply(change: Change) -> None:
            nonlocal claimed
            claimed = change if await claim(change, message) else None

        try:
            await self._transactions.run(message.tenant_id, message.execution_id, apply)
        finally:
            # A change that rolled back may have been written again alone, so only a committed claim counts.
            if claimed is None or not claimed.committed:
                await self.executor.slots.release(1)

    async def renew_leases(self) -> None:
        """Extend the leases of the attempts this process is running, and stop those no longer its own."""
        await renew_leases(self._pool, self.executor)

    async def close(self) -> None:
        """Release the shared HTTP client (after ``drain``)."""
        await self._work.close()

    async def drain(self, grace_seconds: float) -> None:
        """Let running attempts finish for up to ``grace_seconds``, then cancel the rest (leases recover them)."""
        running = self.executor.slots.running
        if running:
            await asyncio.wait(list(running), timeout=grace_seconds)
        for task in list(running):
            task.cancel()

    def _launch(self, change: Change) -> None:
        """Run in the background the attempts a committed change claimed (their slots are taken)."""
        for message, step, step_input in change.eager:
            task = asyncio.create_task(self._run(Claimed(message, step, step_input, time.perf_counter())))
            self.executor.slots.running[task] = message.step_execution_id
            task.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self.executor.slots.running.pop(task, None)
        asyncio.get_running_loop().create_task(self.executor.slots.release(1))
        if not task.cancelled() and task.exception() is not None:
            logger.error("attempt crashed before its result was recorded", exc_info=task.exception())

    async def _run(self, claimed: Claimed) -> None:
        """Run a claimed attempt and record its result, however long the database takes to accept it."""
        outcome = await self._work.run_claimed(claimed)
        duration = time.perf_counter() - claimed.started
        self._metrics.attempt_finished(claimed.step.type, outcome.error is not None, duration)
        message = claimed.message

        async def record(change: Change) -> None:
            await record_result(change, claimed, outcome, duration)

        while True:
            try:
                await self._transactions.run(message.tenant_id, message.execution_id, record, fail_on_error=False)
                return
            except OUTAGE_ERRORS as err:  # keep the result until the database takes it
                logger.warning("recording the result of %s failed, retrying: %s", message.step_execution_id, err)
                await asyncio.sleep(1)
            except Exception as err:
                if outcome.error is not None and outcome.error.get("type") == "Unrecordable":
                    raise
                # The result itself cannot be stored (e.g. text PostgreSQL refuses): fail the attempt instead,
                # so that the step never stays running behind a lease this process keeps renewing.
                logger.exception("the result of %s cannot be recorded", message.step_execution_id)
                error = failure(
                    f"the result cannot be recorded: {type(err).__name__}: {err}", type="Unrecordable", retryable=False
                )
                outcome = Outcome(None, error, outcome.logger, outcome.policy)
