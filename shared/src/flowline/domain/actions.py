"""Built-in actions and the ``flowline.actions`` entry-point group through which packs add their own."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

ENTRY_POINT_GROUP = "flowline.actions"


class ActionFailed(Exception):
    """An action reports a failure of the step (as opposed to a bug in the action)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the other side asked us to wait (Retry-After)


class ActionLogger(Protocol):
    """Where an action writes task log records."""

    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Record one log line for the running attempt."""


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """What an action may know about the attempt running it."""

    execution_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    logger: ActionLogger
    extra: Mapping[str, Any] = field(default_factory=dict)


Action = Callable[[Any, ActionContext], Awaitable[Any]]


async def echo(step_input: Any, context: ActionContext) -> Any:
    """Output the input unchanged."""
    return step_input


async def noop(step_input: Any, context: ActionContext) -> Any:
    """Do nothing; output null."""
    return None


async def log(step_input: Any, context: ActionContext) -> Any:
    """Write ``input.message`` (or the input itself) as a log record at ``input.level`` (INFO)."""
    if isinstance(step_input, Mapping):
        message = str(step_input.get("message", ""))
        level = str(step_input.get("level", "INFO")).upper()
    else:
        message, level = str(step_input), "INFO"
    context.logger.log(level, message)
    return {"logged": message}


async def fail(step_input: Any, context: ActionContext) -> Any:
    """Fail with ``input.message``; ``input.retryable`` (default false) says whether retries help."""
    if isinstance(step_input, Mapping):
        message = str(step_input.get("message", "core.fail"))
        retryable = bool(step_input.get("retryable", False))
    else:
        message, retryable = str(step_input or "core.fail"), False
    raise ActionFailed(message, retryable=retryable)


async def transform(step_input: Any, context: ActionContext) -> Any:
    """Output the rendered input (templates are rendered before any action runs)."""
    return step_input


BUILTIN_ACTIONS: dict[str, Action] = {
    "core.echo": echo,
    "core.noop": noop,
    "core.log": log,
    "core.fail": fail,
    "core.transform": transform,
}


def load_actions() -> dict[str, Action]:
    """The built-in actions plus every action installed under the ``flowline.actions`` entry points.

    A pack's entry point named ``slack.post_message`` pointing at an async function adds that action.
    """
    actions = dict(BUILTIN_ACTIONS)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            actions[entry_point.name] = entry_point.load()
        except Exception:  # a broken pack must not take the built-ins down with it
            logging.getLogger(__name__).exception("cannot load action %s", entry_point.name)
    return actions
