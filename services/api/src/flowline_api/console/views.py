"""What the console's pages show, gathered from the api's domain services (the same reads the API answers with)."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from flowline.domain.credentials import Principal, role_allows
from flowline.errors import ClientError, NotFound
from flowline_schemas.executions import AttemptList, Execution, StepExecution, TaskAttempt
from flowline_schemas.logs import TaskLogPage
from markupsafe import Markup, escape

from flowline_api.console.graph import Graph, layout
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.logs.service import LogService
from flowline_api.domain.workflows.service import WorkflowService

LOG_PAGE: Final = 200
EVENT_PAGE: Final = 50
LEVELS: Final = ("DEBUG", "INFO", "WARN", "ERROR")
# The ``opt`` of routes that answer with a stream of events, which the console's compression leaves alone: each
# event must reach the page as soon as it is sent, and a proxy may hold a compressed stream back to fill a buffer.
UNCOMPRESSED: Final = "console_uncompressed"
STREAM: Final = {UNCOMPRESSED: True}


def flowline_version() -> str:
    """The installed api's version, for the About line."""
    try:
        return version("flowline-api")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "unknown"


def page_context(caller: Principal | None, **values: Any) -> dict[str, Any]:
    """What every page's frame needs: who is signed in, and whether to offer operator and admin actions."""
    return {
        "user": caller,
        "can_operate": caller is not None and role_allows(caller.role, "operator"),
        "is_admin": caller is not None and caller.role == "admin",
        "version": flowline_version(),
        **values,
    }


def utc_time(moment: datetime | None) -> str:
    """A moment as the console shows times: to the second, in UTC, saying so (empty for none)."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def compact(value: Any) -> Any:
    """A definition without the fields it leaves unset (nulls and empty lists): what its author wrote."""
    if isinstance(value, dict):
        return {key: compact(item) for key, item in value.items() if item is not None and item != []}
    if isinstance(value, list):
        return [compact(item) for item in value]
    return value


_JSON_TOKEN = re.compile(r'("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


def highlighted(value: Any) -> Markup:
    """``pretty(value)`` with its keys, strings, numbers and literals in classed spans (every piece escaped)."""
    text = pretty(value)
    parts: list[str] = []
    position = 0
    for match in _JSON_TOKEN.finditer(text):
        parts.append(str(escape(text[position : match.start()])))
        string, colon, literal, number = match.groups()
        if string is not None:
            kind = "key" if colon else "string"
            parts.append(f'<span class="json-{kind}">{escape(string)}</span>{escape(colon or "")}')
        else:
            parts.append(f'<span class="json-{"literal" if literal else "number"}">{escape(literal or number)}</span>')
        position = match.end()
    parts.append(str(escape(text[position:])))
    return Markup("".join(parts))


def pretty(value: Any) -> str:
    """A JSON value indented for reading (a ``pre`` block)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(slots=True)
class StepPane:
    """The selected step: its latest run, its attempts and a page of its logs."""

    step_id: str
    definition: dict[str, Any]
    run: StepExecution | None
    attempts: AttemptList | None
    logs: TaskLogPage | None
    level: str | None
    reruns: list[str]  # the steps a rerun from this one runs again: it and every step that needs it

    @property
    def promise(self) -> str | None:
        """The promise a waiting ``wait`` step waits on, which an operator may resolve or reject."""
        if self.definition.get("type") != "wait" or self.run is None or self.run.status in ("completed", "failed"):
            return None
        return str(self.definition.get("promise") or self.step_id)


@dataclass(slots=True)
class ExecutionView:
    """An execution with its graph and its definition's steps."""

    execution: Execution
    steps: list[dict[str, Any]]
    graph: Graph

    @property
    def finished(self) -> bool:
        """Whether the execution reached a final status (its live stream has ended)."""
        return self.execution.status in ("completed", "failed", "cancelled")


async def execution_view(
    executions: ExecutionService, workflows: WorkflowService, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> ExecutionView:
    """The execution, its version's steps and the laid-out graph.

    Raises:
        NotFound: no such execution in this tenant.
    """
    execution = await executions.read(tenant_id, execution_id)
    try:
        workflow = await workflows.read(tenant_id, execution.workflow_ref, execution.workflow_version)
        steps: list[dict[str, Any]] = list(workflow.definition.get("steps", []))
    except NotFound:  # the workflow was deleted since: draw the steps that ran, without their edges
        steps = [{"id": step.step_id, "type": step.type} for step in execution.steps]
    runs = {step.step_id: step for step in execution.steps}  # in definition order: the latest generation last
    return ExecutionView(execution=execution, steps=steps, graph=layout(steps, runs))


async def step_pane(
    view: ExecutionView,
    executions: ExecutionService,
    logs: LogService,
    tenant_id: uuid.UUID,
    step_id: str | None,
    level: str | None,
) -> StepPane | None:
    """The pane of the step chosen with ``?step=`` (None when none is, or it is not a step of this execution).

    Raises:
        ClientError: ``level`` is not a log level.
    """
    definition = next((step for step in view.steps if step.get("id") == step_id), None)
    if step_id is None or definition is None:
        return None
    if level and level.upper() not in LEVELS:
        raise ClientError(f"level: {level!r} is not a level; use one of {', '.join(LEVELS)}")
    run = next((step for step in reversed(view.execution.steps) if step.step_id == step_id), None)
    attempts = log_page = None
    if run is not None:
        execution_id, task_id = uuid.UUID(view.execution.id), uuid.UUID(run.task_id)
        attempts = await executions.attempts(tenant_id, execution_id, task_id)
        log_page = await logs.list_for_task(tenant_id, task_id, level=level or None, limit=LOG_PAGE, offset=0)
    return StepPane(
        step_id=step_id,
        definition=definition,
        run=run,
        attempts=attempts,
        logs=log_page,
        level=level,
        reruns=downstream_of(view.steps, step_id),
    )


def downstream_of(steps: list[dict[str, Any]], step_id: str) -> list[str]:
    """``step_id`` and every step that needs it, directly or through others, in definition order."""
    found = {step_id}
    grew = True
    while grew:
        grew = False
        for step in steps:
            if step["id"] not in found and found.intersection(step.get("needs") or []):
                found.add(step["id"])
                grew = True
    return [str(step["id"]) for step in steps if step["id"] in found]


def attempt_key(attempt: TaskAttempt) -> str:
    """How the console names an attempt in a query string: ``<generation>.<attempt>`` (``0.2``)."""
    return f"{attempt.generation}.{attempt.attempt}"


@dataclass(frozen=True, slots=True)
class AttemptDiff:
    """Two attempts of a step side by side: what changed in their input and in their output (unified diffs)."""

    before: TaskAttempt
    after: TaskAttempt
    input_lines: list[str]
    output_lines: list[str]


def diff_attempts(attempts: AttemptList, before_key: str, after_key: str) -> AttemptDiff:
    """The diff of two of ``attempts`` named by ``attempt_key``: their pretty-printed input and output.

    Raises:
        ClientError: a key names none of the attempts.
    """
    chosen = {attempt_key(attempt): attempt for attempt in attempts.attempts}
    for name, key in (("a", before_key), ("b", after_key)):
        if key not in chosen:
            known = ", ".join(chosen) or "none"
            raise ClientError(f"{name}: {key!r} is not an attempt of this step (generation.attempt: {known})")
    before, after = chosen[before_key], chosen[after_key]
    return AttemptDiff(
        before=before,
        after=after,
        input_lines=_unified(before.input, after.input, before, after),
        output_lines=_unified(before.output, after.output, before, after),
    )


def _unified(old: Any, new: Any, before: TaskAttempt, after: TaskAttempt) -> list[str]:
    """A unified diff of two JSON values as indented lines, headed by their attempts (empty when equal)."""
    return list(
        difflib.unified_diff(
            pretty(old).splitlines(),
            pretty(new).splitlines(),
            f"attempt {before.attempt} (generation {before.generation})",
            f"attempt {after.attempt} (generation {after.generation})",
            lineterm="",
        )
    )
