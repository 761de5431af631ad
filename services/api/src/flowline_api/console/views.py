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
from urllib.parse import urlencode

from flowline.domain.credentials import Principal, role_allows
from flowline.errors import ClientError, NotFound
from flowline_schemas.executions import AttemptList, Execution, StepExecution, TaskAttempt
from flowline_schemas.logs import TaskLogPage
from markupsafe import Markup, escape

from flowline_api.console.graph import (
    SUMMARY_ABOVE,
    FanOut,
    Graph,
    GroupCounts,
    group_counts,
    layout,
)
from flowline_api.console.version_steps import VersionSteps, VersionStepsCache
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.logs.search import MAX_CONTEXT, MAX_SEARCH_LENGTH, LogQuery
from flowline_api.domain.logs.service import LogService, PageWanted
from flowline_api.domain.workflows.service import WorkflowService

LOG_PAGE: Final = 200
SUMMARY_PAGE: Final = 50  # rows of each table of a summarised execution
UNSETTLED: Final = ("failed", "running")  # the steps a summarised execution lists one by one
EMPTY_GRAPH: Final = Graph(nodes=[], edges=[], width=0, height=0)
# What of an execution page's query string says what it shows; its live fragments are rendered with the same.
VIEW_PARAMETERS: Final = (
    *("step", "level", "attempt", "q", "context", "after"),
    *("expand", "summaryOffset", "stepsAfter"),
)
LOG_PARAMETERS: Final = ("step", "level", "attempt", "q", "context")  # what of it the step's logs link keeps
SEARCH_CONTEXT: Final = 2  # records shown around each match of a search unless the page asks for another number
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
    log_query: LogQuery  # the level, attempt and search the pane's logs are shown with
    reruns: list[str]  # the steps a rerun from this one runs again: it and every step that needs it

    @property
    def promise(self) -> str | None:
        """The promise a waiting ``wait`` step waits on, which an operator may resolve or reject."""
        if self.definition.get("type") != "wait" or self.run is None or self.run.status in ("completed", "failed"):
            return None
        return str(self.definition.get("promise") or self.step_id)


@dataclass(slots=True)
class StepsSummary:
    """What the execution page shows instead of a graph too big to draw (more than ``SUMMARY_ABOVE`` nodes).

    ``rows``: one page of the definition's fan-outs and single steps with their counts per status;
    ``unsettled``: one page of the steps that failed or run, in definition order. Only those pages are read.
    """

    rows: list[GroupCounts]
    total_rows: int
    rows_offset: int
    unsettled: list[StepExecution]
    unsettled_after: int
    next_unsettled: int | None

    @property
    def previous_offset(self) -> int:
        """Where the page of rows before this one starts."""
        return max(0, self.rows_offset - SUMMARY_PAGE)


@dataclass(slots=True)
class ExecutionView:
    """An execution with its graph (or the summary that replaces it) and its definition's steps.

    ``runs`` holds the step executions of the steps drawn one by one: every one of a small execution's, none
    of a summarised one's (fan-outs and summaries are counted in the database).
    """

    execution: Execution
    shape: VersionSteps  # its version's steps and what is derived from them
    graph: Graph
    runs: dict[str, StepExecution]
    fan_outs: list[FanOut]
    expanded: list[str]
    summary: StepsSummary | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps of the execution's version, in definition order."""
        return self.shape.steps

    @property
    def finished(self) -> bool:
        """Whether the execution reached a final status (its live stream has ended)."""
        return self.execution.status in ("completed", "failed", "cancelled")


def page_number(query: Any, name: str, default: int) -> int:
    """A whole number of the query string (an offset or a position), ``default`` when not given.

    Raises:
        ClientError: not a whole number.
    """
    value = query.get(name)
    if not value:
        return default
    if not value.lstrip("-").isdigit():
        raise ClientError(f"{name}: {value!r} is not a whole number")
    return int(value)


@dataclass(frozen=True, slots=True)
class PageLinks:
    """Query strings of this execution page with one thing changed and the rest of what it shows kept."""

    kept: list[tuple[str, str]]

    @classmethod
    def of(cls, query: Any) -> PageLinks:
        """The links of the page ``query`` shows."""
        return cls([(name, value) for name, value in query.multi_items() if name in VIEW_PARAMETERS and value])

    def _with(self, dropped: tuple[str, ...], *added: tuple[str, str]) -> str:
        return "?" + urlencode([*((name, value) for name, value in self.kept if name not in dropped), *added])

    def step(self, step_id: str) -> str:
        """The page with ``step_id`` selected."""
        return self._with(("step",), ("step", step_id))

    def expand(self, name: str) -> str:
        """The page with the fan-out ``name`` drawn branch by branch too."""
        return self._with(("summaryOffset", "stepsAfter"), ("expand", name))

    def fold(self, name: str) -> str:
        """The page with the fan-out ``name`` drawn as one node again."""
        kept = [(key, value) for key, value in self.kept if (key, value) != ("expand", name)]
        return PageLinks(kept)._with(("summaryOffset", "stepsAfter"))

    def page(self, name: str, value: int) -> str:
        """The page with the summary's table ``name`` (``summaryOffset`` or ``stepsAfter``) at ``value``."""
        return self._with((name,), (name, str(value)))

    @property
    def live(self) -> str:
        """The query string of the page's live fragments (empty, or without its ``?``)."""
        return urlencode(self.kept)


async def execution_view(
    executions: ExecutionService,
    workflows: WorkflowService,
    version_steps: VersionStepsCache,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    query: Any,
) -> ExecutionView:
    """The execution, its version's steps, and its graph, or above ``SUMMARY_ABOVE`` nodes its summary.

    Fan-outs are folded into group nodes but for those the query expands (``?expand=<name>``). Only the step
    executions of the steps drawn one by one are read; groups and summaries are counted in the database.

    Raises:
        NotFound: no such execution in this tenant.
        ClientError: a bad ``summaryOffset`` or ``stepsAfter``.
    """
    execution = await executions.read(tenant_id, execution_id, with_steps=False)
    try:
        shape = await version_steps.steps_of(workflows, tenant_id, execution.workflow_ref, execution.workflow_version)
    except NotFound:  # the workflow was deleted since: draw the steps that ran, without their edges
        # An execution's steps all have rows from its start, at their places in the definition: the places in
        # this list are theirs, which fan-outs are counted by.
        ran = await executions.steps(tenant_id, execution_id)
        shape = VersionSteps.of([{"id": step.step_id, "type": step.type} for step in ran.steps], size=0)
    groups = shape.fan_outs
    expanded = [name for name in query.getall("expand", []) if any(group.name == name for group in groups)]
    drawn = shape.drawn(expanded)
    folding = {group.key: group for group in groups if group.name not in expanded}
    view = ExecutionView(execution, shape, EMPTY_GRAPH, runs={}, fan_outs=groups, expanded=expanded)
    if len(drawn) > SUMMARY_ABOVE:
        view.summary = await steps_summary(executions, tenant_id, view, drawn, folding, query)
        return view
    singles = [str(step["id"]) for step in drawn if str(step["id"]) not in folding]
    view.runs = {run.step_id: run for run in await executions.step_runs(tenant_id, execution_id, singles)}
    spans = [(first, last, group.key) for group in folding.values() for first, last in group.spans]
    counted = await executions.step_counts_in_spans(tenant_id, execution_id, spans)
    counts = {key: group_counts(group, counted.get(key, {})) for key, group in folding.items()}
    view.graph = layout(drawn, view.runs, counts)
    return view


def _single(shape: VersionSteps, step_id: str) -> FanOut:
    """A step drawn one by one, as a summary row of one member."""
    place = shape.position[step_id]
    return FanOut(step_id, [step_id], [(place, place)])


async def steps_summary(
    executions: ExecutionService,
    tenant_id: uuid.UUID,
    view: ExecutionView,
    drawn: list[dict[str, Any]],
    folding: dict[str, FanOut],
    query: Any,
) -> StepsSummary:
    """What the summary shows, and all it reads: two pages.

    A page of the fan-outs and single steps with their counts per status (``?summaryOffset=``), and a page of
    the steps that failed or run, in definition order (``?stepsAfter=``, the position the page starts after).

    Raises:
        ClientError: a bad ``summaryOffset`` or ``stepsAfter``.
    """
    execution_id = uuid.UUID(view.execution.id)
    offset = max(0, page_number(query, "summaryOffset", 0))
    shown = drawn[offset : offset + SUMMARY_PAGE]
    entries = [folding.get(str(step["id"])) or _single(view.shape, str(step["id"])) for step in shown]
    spans = [(first, last, entry.key) for entry in entries for first, last in entry.spans]
    counted = await executions.step_counts_in_spans(tenant_id, execution_id, spans)
    after = page_number(query, "stepsAfter", -1)
    unsettled, following = await executions.steps_in(
        tenant_id, execution_id, UNSETTLED, after=after, limit=SUMMARY_PAGE
    )
    return StepsSummary(
        rows=[group_counts(entry, counted.get(entry.key, {})) for entry in entries],
        total_rows=len(drawn),
        rows_offset=offset,
        unsettled=unsettled,
        unsettled_after=after,
        next_unsettled=following,
    )


async def step_pane(
    view: ExecutionView,
    executions: ExecutionService,
    logs: LogService,
    tenant_id: uuid.UUID,
    step_id: str | None,
    log_query: LogQuery,
) -> StepPane | None:
    """The pane of the step chosen with ``?step=`` (None when none is, or it is not a step of this execution).

    Raises:
        ClientError: ``log_query`` has an unknown level.
    """
    definition = view.shape.step(step_id)
    if step_id is None or definition is None:
        return None
    run = view.runs.get(step_id)
    if run is None:  # a branch of a folded fan-out or of a summary (or a step not reached yet): read just it
        found = await executions.step_runs(tenant_id, uuid.UUID(view.execution.id), [step_id])
        run = found[0] if found else None
    attempts = log_page = None
    if run is not None:
        execution_id, task_id = uuid.UUID(view.execution.id), uuid.UUID(run.task_id)
        attempts = await executions.attempts(tenant_id, execution_id, task_id)
        log_page = await logs.list_for_task(tenant_id, task_id, log_query, PageWanted(limit=LOG_PAGE))
    return StepPane(
        step_id=step_id,
        definition=definition,
        run=run,
        attempts=attempts,
        logs=log_page,
        log_query=log_query,
        reruns=view.shape.downstream_of(step_id),
    )


def _whole_number(value: str | None, name: str, *, low: int, high: int) -> int | None:
    """A number field of a query string (None when empty).

    Raises:
        ClientError: not a whole number from ``low`` to ``high``.
    """
    if not value:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise ClientError(f"{name}: {value!r} is not a whole number from {low} to {high}")
    return int(value)


def log_query_from(query: Any, *, step_id: str | None = None) -> LogQuery:
    """The log filters and search of a console page's query string (``level``, ``attempt``, ``q``, ``context``).

    A search shows ``SEARCH_CONTEXT`` records around each match unless ``context`` says otherwise.

    Raises:
        ClientError: an unknown level, a bad attempt or context, or a search text that is too long.
    """
    level = query.get("level") or None
    if level and level.upper() not in LEVELS:
        raise ClientError(f"level: {level!r} is not a level; use one of {', '.join(LEVELS)}")
    text = query.get("q") or None
    if text is not None and len(text) > MAX_SEARCH_LENGTH:
        raise ClientError(f"q: a search is at most {MAX_SEARCH_LENGTH} characters")
    context = _whole_number(query.get("context"), "context", low=0, high=MAX_CONTEXT)
    return LogQuery(
        level=level,
        step_id=step_id,
        attempt=_whole_number(query.get("attempt"), "attempt", low=1, high=1_000),
        text=text,
        context=(SEARCH_CONTEXT if context is None else context) if text is not None else 0,
    )


def marked(message: str, text: str | None) -> Markup:
    """``message`` escaped, with each occurrence of ``text`` (in any case) in a ``<mark>``."""
    if not text:
        return Markup(escape(message))
    pieces = re.split(f"({re.escape(text)})", message, flags=re.IGNORECASE)
    return Markup(
        "".join(
            f"<mark>{escape(piece)}</mark>" if index % 2 else str(escape(piece)) for index, piece in enumerate(pieces)
        )
    )


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
