"""Following executions and tasks as they run: ``--wait``, ``watch`` and ``logs --follow``, all from SSE streams."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES
from flowline_schemas.logs import LogLevel

from flowline_client import AsyncFlowlineClient, FlowlineApiError
from flowline_client.cli.output import Output, duration, error_message, format_table, text
from flowline_client.models import Execution, StepExecution, StreamEvent, StreamLog, TaskLog, TaskLogPage

EXECUTION_FAILED = 3
GAVE_UP_WAITING = 124  # as timeout(1) exits: the execution is still running, nothing failed
LEVELS: tuple[str, ...] = get_args(LogLevel)  # lowest first
# A finished task's stream closes; these are the task statuses that end a `tasks watch` well.
TASK_SUCCEEDED = frozenset({"completed", "skipped"})


def log_line(record: TaskLog | StreamLog) -> str:
    """A record as the text download writes it: ``2026-01-01T10:00:00.123Z INFO  [shout#1] message``."""
    moment = record.timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    origin = f" [{record.step_id}#{record.attempt}]" if record.step_id else ""
    return f"{moment} {record.level:<5}{origin} {record.message}"


def print_steps(steps: Sequence[StepExecution], out: Output, *, errors: bool = False) -> None:
    """An execution's steps as a table (with each one's error when ``errors``)."""
    headers = ["STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "TASK ID"]
    rows = [
        [step.step_id, step.type, step.status.upper(), str(step.attempts), duration(step.duration_ms), step.task_id]
        for step in steps
    ]
    if errors:
        headers.append("ERROR")
        for row, step in zip(rows, steps, strict=True):
            row.append(error_message(step.error))
    out.table(headers, rows)


def print_log_page(page: TaskLogPage, out: Output) -> None:
    """A page of records as lines (or the page as JSON); where the next page starts goes to stderr.

    A search's answer with context prints as grep does: a match starts with ``>``, a record around it with a
    space, and ``--`` separates the groups.
    """
    if out.json:
        out.document(page)
        return
    with_context = any(record.matched is False for record in page.logs)
    for number, record in enumerate(page.logs):
        if with_context and number and record.group != page.logs[number - 1].group:
            out.line("--")
        mark = ("> " if record.matched else "  ") if with_context else ""
        out.line(mark + log_line(record))
    if page.next_cursor is None:
        return
    if page.total is None:
        out.hint(f"the search goes on; more: --cursor {page.next_cursor}")
    else:
        out.hint(f"{page.offset + len(page.logs)} of {page.total} records; more: --cursor {page.next_cursor}")


def event_line(event: StreamEvent) -> str:
    """``10:30:00.123  TASK_FAILED  charge  attempt 1  Fail: card declined`` for a log of events."""
    clock = event.occurred_at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    parts = [clock, event.event.ljust(24), event.step_id or "-"]
    if (attempt := event.data.get("attempt")) is not None:
        parts.append(f"attempt {attempt}")
    if error := event.data.get("error"):
        parts.append(error_message(error))
    return "  ".join(parts).rstrip()


async def wait_and_report(client: AsyncFlowlineClient, execution_id: str, out: Output) -> int:
    """Follow an execution's stream until it is finished, then print it; exit code 3 unless it completed."""
    async for _ in client.stream_execution(execution_id):
        pass  # the stream ends once the execution is finished (a retried one runs on)
    return report_finished(await client.get_execution(execution_id), out)


async def report_gave_up(client: AsyncFlowlineClient, execution_id: str, seconds: float, out: Output) -> int:
    """Say how an execution stands after waiting ``seconds`` for it in vain; exit code 124."""
    execution = await client.get_execution(execution_id)
    if out.json:
        out.document(execution)
    message = f"gave up waiting after {seconds:g}s; execution {execution_id} is {execution.status}"
    print(f"flowline: {message}", file=sys.stderr)
    return GAVE_UP_WAITING


def report_finished(execution: Execution, out: Output) -> int:
    """Print a finished execution's outcome; its exit code (0 completed, 3 otherwise)."""
    if out.json:
        out.document(execution)
    else:
        out.line(
            f"Execution {execution.id} finished. Status: {out.status(execution.status)} "
            f"({duration(execution.duration_ms)})"
        )
        if execution.error:
            out.line(f"Error: {error_message(execution.error)}")
        elif execution.output is not None:
            out.line(f"Output: {text(execution.output)}")
    return 0 if execution.status == "completed" else EXECUTION_FAILED


@dataclass
class _StepState:
    step_id: str
    type: str
    status: str
    attempt: int
    started_at: datetime | None
    duration_ms: int | None


class ExecutionView:
    """What ``executions watch`` shows: the execution's status and a row per step, kept current by its events."""

    def __init__(self, execution: Execution) -> None:
        self.execution_id = execution.id
        self.title = f"{execution.workflow_ref} v{execution.workflow_version}"
        self.status = execution.status
        self.started_at = execution.started_at or execution.created_at
        self.steps = {
            step.step_id: _StepState(
                step.step_id, step.type, step.status, step.attempts, step.started_at, step.duration_ms
            )
            for step in execution.steps
        }

    def apply(self, event: StreamEvent) -> None:
        """Take an event's snapshot into the view (the stream replays history first, so the view converges)."""
        status = event.data.get("status")
        if event.event.startswith("WORKFLOW_") or event.event == "RETRY_REQUESTED":
            self.status = status or self.status
            return
        if event.step_id is None or not isinstance(status, str):
            return
        step = self.steps.setdefault(event.step_id, _StepState(event.step_id, "-", status, 0, None, None))
        step.status = status
        if isinstance(attempt := event.data.get("attempt"), int):
            step.attempt = attempt
        if event.event == "TASK_STARTED":
            step.started_at, step.duration_ms = event.occurred_at, None
        elif event.event in ("TASK_COMPLETED", "TASK_FAILED", "TASK_CANCELLED") and step.started_at:
            step.duration_ms = int((event.occurred_at - step.started_at).total_seconds() * 1000)

    def render(self, out: Output, now: datetime) -> str:
        """The view as text: a headline, then the steps table (running steps show their time so far)."""
        elapsed = int((now - self.started_at).total_seconds() * 1000)
        headline = f"Execution {self.execution_id}  {self.title}  {out.status(self.status)}  {duration(elapsed)}"
        rows = [
            [
                step.step_id,
                step.type,
                step.status.upper(),
                str(step.attempt),
                self._step_time(step, now),
            ]
            for step in self.steps.values()
        ]
        table = format_table(["STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION"], rows, colour=out.colour)
        return f"{headline}\n\n{table}"

    @staticmethod
    def _step_time(step: _StepState, now: datetime) -> str:
        if step.duration_ms is not None:
            return duration(step.duration_ms)
        if step.status == "running" and step.started_at is not None:
            return duration(int((now - step.started_at).total_seconds() * 1000)) + "…"
        return "-"


class _Screen:
    """Redraws a block of text in place on a terminal (cursor up over the previous block, clear below)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.lines = 0

    def draw(self, block: str) -> None:
        prefix = f"\x1b[{self.lines}F\x1b[J" if self.lines else ""
        self.out.stdout.write(prefix + block + "\n")
        self.out.stdout.flush()
        self.lines = block.count("\n") + 1


async def watch_execution(client: AsyncFlowlineClient, execution_id: str, out: Output) -> int:
    """Show an execution live until it finishes, then its outcome; exit code 3 unless it completed.

    On a terminal the view is redrawn in place (events, and once a second for running steps' times); otherwise
    each event is a line. With ``--output json`` only the finished execution is printed.
    """
    view = ExecutionView(await client.get_execution(execution_id))
    screen = _Screen(out) if out.terminal and not out.json else None

    async def tick(screen: _Screen) -> None:
        while True:
            screen.draw(view.render(out, datetime.now(UTC)))
            await asyncio.sleep(1.0)

    ticker = asyncio.create_task(tick(screen)) if screen is not None else None
    try:
        async for message in client.stream_execution(execution_id):
            if not isinstance(message, StreamEvent):
                continue
            view.apply(message)
            if screen is not None:
                screen.draw(view.render(out, datetime.now(UTC)))
            elif not out.json:
                out.line(event_line(message))
    finally:
        if ticker is not None:
            ticker.cancel()
    final = await client.get_execution(execution_id)
    if screen is not None:
        screen.draw(ExecutionView(final).render(out, final.completed_at or datetime.now(UTC)))
    elif not out.json:
        out.line()
        print_steps(final.steps, out)
    return report_finished(final, out)


def _shown(record: StreamLog, level: str | None, attempt: int | None) -> bool:
    if attempt is not None and record.attempt != attempt:
        return False
    if level is None:
        return True
    return record.level in LEVELS and LEVELS.index(record.level) >= LEVELS.index(level)


def _print_record(record: TaskLog | StreamLog, out: Output) -> None:
    if out.json:  # one record per line: a stream has no single document
        out.compact(record)
    else:
        out.line(log_line(record))


async def follow_task_logs(
    client: AsyncFlowlineClient,
    task_id: str,
    out: Output,
    *,
    level: str | None = None,
    attempt: int | None = None,
    printed: set[str] | None = None,
) -> None:
    """Print a task's log records, stored ones first, then live until the task finished.

    Args:
        client: the api.
        task_id: the task.
        out: where to print.
        level: print records of this level and above only.
        attempt: print this attempt's records only.
        printed: the ids of records printed so far; this adds to it.
    """
    printed = set() if printed is None else printed
    async for message in client.stream_task(task_id):
        if isinstance(message, StreamLog) and _shown(message, level, attempt):
            _print_record(message, out)
            printed.add(message.id)


async def follow_execution_logs(
    client: AsyncFlowlineClient,
    execution_id: str,
    out: Output,
    *,
    level: str | None,
    step_id: str | None,
    attempt: int | None = None,
) -> None:
    """Print an execution's log records as they come, until it finished and its tasks' last records are in.

    Logs travel on the task streams, so each task the execution stream names gets a stream of its own. A task
    stream closes a moment after its task finished; records stored later still (a busy log-ingest) are read
    from the stored logs at the end, so the tail misses none that reached the database by then. An execution
    already finished has only its stored records printed.
    """
    printed: set[str] = set()
    if (await client.get_execution(execution_id)).status not in TERMINAL_EXECUTION_STATUSES:
        await _tail_tasks(client, execution_id, out, level=level, step_id=step_id, attempt=attempt, printed=printed)
    cursor = None
    while True:
        page = await client.get_execution_logs(
            execution_id, level=level, step_id=step_id, attempt=attempt, limit=100, cursor=cursor
        )
        for record in page.logs:
            if record.id not in printed:
                _print_record(record, out)
        cursor = page.next_cursor
        if cursor is None:
            return


async def _tail_tasks(
    client: AsyncFlowlineClient,
    execution_id: str,
    out: Output,
    *,
    level: str | None,
    step_id: str | None,
    attempt: int | None,
    printed: set[str],
) -> None:
    followed: set[str] = set()
    try:
        async with asyncio.TaskGroup() as group:
            async for message in client.stream_execution(execution_id):
                if not isinstance(message, StreamEvent) or message.task_id is None or message.task_id in followed:
                    continue
                if step_id is None or message.step_id == step_id:
                    followed.add(message.task_id)
                    group.create_task(
                        follow_task_logs(client, message.task_id, out, level=level, attempt=attempt, printed=printed)
                    )
    except* (FlowlineApiError, BrokenPipeError) as failed:  # the first one stopped the other tails: report it
        raise failed.exceptions[0] from None


async def watch_task(client: AsyncFlowlineClient, task_id: str, out: Output) -> int:
    """Print a task's events and log records live until it finished; exit code 3 unless it completed or skipped."""
    async for message in client.stream_task(task_id):
        if out.json:
            continue
        out.line(event_line(message) if isinstance(message, StreamEvent) else log_line(message))
    task = await client.get_task(task_id)
    if out.json:
        out.document(task)
    else:
        out.line(
            f"Task {task.task_id} ({task.step_id}) finished. Status: {out.status(task.status)} "
            f"({duration(task.duration_ms)})"
        )
        if task.error:
            out.line(f"Error: {error_message(task.error)}")
    return 0 if task.status in TASK_SUCCEEDED else EXECUTION_FAILED
