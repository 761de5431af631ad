"""An attempt's work: running an action, an http call or an agent call, and the error that failed it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import asyncpg
import msgspec
from flowline.domain.actions import Action, ActionContext, ActionFailed
from flowline.domain.agents import Agent, auth_cipher, load_agent, open_secret
from flowline.domain.definitions import HttpRequest, RetryPolicy, StepDefinition, request_secrets
from flowline.errors import FlowlineError
from flowline.messages import TaskDispatched
from flowline.runtime.outbound import OutboundPolicy
from flowline.settings import Settings
from flowline_schemas.logs import LogLevel

from flowline_executor import http_step
from flowline_executor.agent_step import call_agent, retry_policy
from flowline_executor.failures import failure

LOG_LEVELS: dict[str, LogLevel] = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
}


class AttemptLogger:
    """The logger an action gets: records are kept and written with the attempt's result."""

    def __init__(self) -> None:
        self.records: list[tuple[LogLevel, str, dict[str, Any]]] = []

    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Keep one record for the attempt's result transaction."""
        self.records.append((LOG_LEVELS.get(level.upper(), "INFO"), message, metadata))


class Claimed(msgspec.Struct, frozen=True):
    """A step attempt this worker owns until it records the result."""

    message: TaskDispatched
    step: StepDefinition
    step_input: Any
    started: float


class Outcome(msgspec.Struct, frozen=True):
    """What an attempt's work came to, and the retry policy its result is settled by."""

    output: Any
    error: dict[str, Any] | None
    logger: AttemptLogger
    policy: RetryPolicy | None


class AttemptWork:
    """Runs attempts' work with what it needs: the actions, the outbound HTTP client and the secrets' cipher."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, actions: Mapping[str, Action]) -> None:
        self.actions = actions
        self._pool = pool
        self._http = http_step.create_client(
            OutboundPolicy.from_setting(settings.outbound_allowed_networks),
            max_response_bytes=settings.outbound_response_max_bytes,
            deadline_seconds=settings.outbound_deadline_seconds,
        )
        self._cipher = auth_cipher(settings.secret_key)

    async def close(self) -> None:
        """Release the shared HTTP client."""
        await self._http.aclose()

    async def run_claimed(self, claimed: Claimed) -> Outcome:
        """Run a claimed attempt (loading an agent step's agent, whose retry policy applies by default)."""
        message, step = claimed.message, claimed.step
        attempt_logger = AttemptLogger()
        if step.type != "agent":
            output, error = await self.run(message, step, claimed.step_input, attempt_logger)
            return Outcome(output, error, attempt_logger, step.retry)
        try:
            agent = await load_agent(self._pool, self._cipher, message.tenant_id, step.agent or "")
        except FlowlineError as err:  # the agent is gone, inactive or its credentials unreadable
            return Outcome(
                None, failure(err.detail, type=type(err).__name__, retryable=False), attempt_logger, step.retry
            )
        output, error = await self.run(message, step, claimed.step_input, attempt_logger, agent)
        return Outcome(output, error, attempt_logger, step.retry or retry_policy(agent))

    async def run(
        self,
        message: TaskDispatched,
        step: StepDefinition,
        step_input: Any,
        attempt_logger: AttemptLogger,
        agent: Agent | None = None,
    ) -> tuple[Any, dict[str, Any] | None]:
        """Run one attempt of an action, agent or http step: its output, or the error that failed it."""
        context = ActionContext(
            execution_id=str(message.execution_id),
            step_id=message.step_id,
            attempt=message.attempt,
            idempotency_key=f"{message.execution_id}:{message.step_id}:{message.generation}",
            logger=attempt_logger,
        )
        work: Awaitable[Any]
        try:
            if step.type == "http":
                request = msgspec.convert(step_input, HttpRequest)
                secrets = {
                    name: open_secret(self._cipher, sealed, f"the header {name!r} of step {step.id!r}")
                    for name, sealed in request_secrets(step.request).items()
                }
                work = http_step.send(
                    self._http, request, context, secret_headers=secrets, timeout_seconds=step.timeout
                )
            elif agent is not None:
                work = call_agent(self._http, agent, step_input, context)
            else:
                work = self.actions[step.action or ""](step_input, context)
            return msgspec.to_builtins(await asyncio.wait_for(work, timeout=step.timeout)), None
        except ActionFailed as err:
            error = failure(str(err), type="ActionFailed", retryable=err.retryable)
            if err.retry_after is not None:
                error["retryAfter"] = err.retry_after
            return None, error
        except FlowlineError as err:  # credentials that cannot be opened
            return None, failure(err.detail, type=type(err).__name__, retryable=False)
        except TimeoutError:
            return None, failure(f"timed out after {step.timeout} s", type="Timeout", retryable=True)
        except Exception as err:
            return None, failure(f"{type(err).__name__}: {err}", type=type(err).__name__, retryable=True)
