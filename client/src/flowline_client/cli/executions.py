"""``flowline executions …`` and ``flowline promises …``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, get_args

from flowline_schemas.executions import ExecutionStatus

from flowline_client import AsyncFlowlineClient, LogFormat
from flowline_client.cli.archives import register_commands as register_lifecycle_commands
from flowline_client.cli.arguments import Subparsers, UsageError, command, iso_time, json_argument, object_argument
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.live import (
    follow_execution_logs,
    log_line,
    print_log_page,
    print_steps,
    watch_execution,
)
from flowline_client.cli.log_options import add_log_options, log_query
from flowline_client.cli.output import Output, duration, error_message, text, when
from flowline_client.models import RecoveryPreview

EXECUTION_STATUSES: tuple[str, ...] = get_args(ExecutionStatus)


async def _list_executions(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    filters = execution_filters(args)
    return await print_list(
        out,
        args,
        page=lambda: client.list_executions(
            **filters, sort=args.sort, order=args.order, limit=args.limit, cursor=args.cursor
        ),
        every=lambda: client.iter_executions(**filters, sort=args.sort, order=args.order),
        headers=["ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"],
        row=lambda item: [
            item.id,
            item.workflow_ref,
            item.status.upper(),
            when(item.created_at),
            duration(item.duration_ms),
        ],
    )


def add_execution_filters(parser: argparse.ArgumentParser) -> None:
    """The filters of ``GET /executions`` as options (``executions list``, ``bulk cancel|retry``)."""
    parser.add_argument("--workflow", help="a workflow ref")
    parser.add_argument("--status", action="append", help="e.g. failed,cancelled (or repeat)")
    parser.add_argument("--triggered-by", choices=["api", "kafka", "workflow", "schedule"])
    parser.add_argument("--started-by", help="e.g. api-key:<id>, jwt:<sub>, kafka, parent:<execution id>")
    parser.add_argument("--parent", help="children of this execution")
    parser.add_argument("--schedule", help="runs of this schedule (its id)")
    parser.add_argument("--created-after", type=iso_time, metavar="ISO_TIME")
    parser.add_argument("--created-before", type=iso_time, metavar="ISO_TIME")
    parser.add_argument("--tag", action="append", help="with every one of these tags (repeat)")
    parser.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="repeat: all must match")
    parser.add_argument("--search", help="an id prefix or text in the workflow ref")


def execution_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters given, as keyword arguments of ``AsyncFlowlineClient.list_executions``."""
    statuses = [status for value in args.status or [] for status in value.split(",") if status]
    if unknown := sorted(set(statuses) - set(EXECUTION_STATUSES)):
        raise UsageError(f"--status: unknown {', '.join(unknown)} (known: {', '.join(EXECUTION_STATUSES)})")
    metadata = metadata_argument(args.metadata)
    filters = {
        "workflow": args.workflow,
        "status": statuses or None,
        "triggered_by": args.triggered_by,
        "started_by": args.started_by,
        "parent_id": args.parent,
        "schedule_id": args.schedule,
        "created_after": args.created_after,
        "created_before": args.created_before,
        "tag": args.tag,
        "metadata": metadata or None,
        "search": args.search,
    }
    return {name: value for name, value in filters.items() if value is not None}


def metadata_argument(values: list[str] | None) -> dict[str, str]:
    """``--metadata KEY=VALUE`` options as a mapping.

    Raises:
        UsageError: a value without ``=`` or without a key.
    """
    pairs = {}
    for value in values or []:
        key, separator, content = value.partition("=")
        if not separator or not key:
            raise UsageError(f"--metadata: expected KEY=VALUE, got {value!r}")
        pairs[key] = content
    return pairs


async def _get_execution(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    execution = await client.get_execution(args.id, include_logs=args.logs)
    if out.json:
        out.document(execution)
        return 0
    pairs = [
        ("Execution", execution.id),
        ("Workflow", f"{execution.workflow_ref} v{execution.workflow_version}"),
        ("Status", out.status(execution.status)),
        ("Triggered by", execution.triggered_by),
        ("Started by", text(execution.started_by)),
        ("Created", when(execution.created_at)),
        ("Completed", when(execution.completed_at)),
        ("Duration", duration(execution.duration_ms)),
    ]
    if execution.parent_execution_id:
        pairs.append(("Parent", f"{execution.parent_execution_id} (step {execution.parent_step_id})"))
    if execution.rerun_of:
        pairs.append(("Rerun of", execution.rerun_of))
    pairs.append(("Input", text(execution.input)))
    pairs.append(
        ("Output", text(execution.output)) if not execution.error else ("Error", error_message(execution.error))
    )
    out.fields(pairs)
    out.line()
    print_steps(execution.steps, out)
    if execution.logs:
        out.line()
        for record in execution.logs:
            out.line(log_line(record))
    return 0


async def _list_steps(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    steps = await client.get_steps(args.id)
    if out.json:
        out.document({"steps": steps})
    else:
        print_steps(steps, out, errors=True)
    return 0


async def _list_events(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    events = await client.get_events(args.id, since_sequence=args.since, limit=args.limit)
    if out.json:
        out.document(events)
        return 0
    out.table(
        ["SEQ", "EVENT", "STEP", "OCCURRED"],
        [[str(item.sequence), item.event, text(item.step_id), when(item.occurred_at)] for item in events.events],
    )
    if events.has_more:
        out.hint(f"more: --since {events.next_sequence}")
    return 0


async def _cancel(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    cancelled = await client.cancel_execution(args.id, reason=args.reason)
    out.result(cancelled, f"Execution {cancelled.execution_id} cancelled. Status: {out.status(cancelled.status)}")
    return 0


async def _pause(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    changed = await client.pause_execution(args.id)
    out.result(changed, f"Execution {changed.execution_id} paused. Status: {out.status(changed.status)}")
    return 0


async def _resume(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    changed = await client.resume_execution(args.id)
    out.result(changed, f"Execution {changed.execution_id} resumed. Status: {out.status(changed.status)}")
    return 0


async def _retry(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    new_input = object_argument(args.input, "--input")
    if args.dry_run:
        _preview(await client.preview_retry(args.id, input=new_input), "A retry", out)
        return 0
    accepted = await client.retry_execution(args.id, note=args.note, input=new_input)
    out.result(
        accepted, f"Execution {accepted.workflow_execution_id} reset for retry. Status: {out.status(accepted.status)}"
    )
    return 0


async def _rerun(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    new_input = object_argument(args.input, "--input")
    if args.dry_run:
        preview = await client.preview_rerun(args.id, args.from_step, input=new_input, version=args.version)
        _preview(preview, f"A rerun from step {args.from_step}", out)
        return 0
    accepted = await client.rerun_execution(args.id, args.from_step, input=new_input, version=args.version)
    out.result(
        accepted,
        f"Execution {accepted.execution_id} reruns {accepted.rerun_of} from step {args.from_step}. "
        f"Status: {out.status(accepted.status)}",
    )
    return 0


def _preview(preview: RecoveryPreview, what: str, out: Output) -> None:
    """What a retry or rerun would run again, changing nothing (``--dry-run``)."""
    out.result(
        preview,
        f"{what} of {preview.execution_id} would run again: {', '.join(preview.steps) or 'no step'}; "
        f"kept: {', '.join(preview.kept) or 'no step'}. Nothing was changed.",
    )


async def _list_children(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    children = await client.get_children(args.id)
    if out.json:
        out.document({"children": children})
        return 0
    out.table(
        ["CHILD ID", "KIND", "STATUS", "CREATED"],
        [
            [child.child_workflow_execution_id, child.kind, child.status.upper(), when(child.created_at)]
            for child in children
        ],
    )
    return 0


async def _list_attempts(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    attempts = await client.get_task_attempts(args.id, args.task_id)
    if out.json:
        out.document({"attempts": attempts})
        return 0
    out.table(
        ["ATTEMPT", "STATUS", "DURATION", "WORKER", "ERROR"],
        [
            [
                str(attempt.attempt),
                attempt.status.upper(),
                duration(attempt.duration_ms),
                text(attempt.worker_id),
                error_message(attempt.error),
            ]
            for attempt in attempts
        ],
    )
    return 0


async def _show_logs(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    query = log_query(args)
    if args.follow:
        await follow_execution_logs(client, args.id, out, level=args.level, step_id=args.step, attempt=args.attempt)
        return 0
    print_log_page(await client.get_execution_logs(args.id, step_id=args.step, **query), out)
    return 0


async def _watch(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await watch_execution(client, args.id, out)


async def _download_logs(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    log_format: LogFormat = args.format or ("json" if out.json else "text")
    chunks = client.download_execution_logs(args.id, format=log_format)
    if args.output_file is None:
        async for chunk in chunks:  # the file itself is the output
            out.raw(chunk)
        return 0
    path = Path(args.output_file)
    size = 0
    try:
        # Into a file beside the target, renamed when whole: a failed download leaves what was there.
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
            try:
                async for chunk in chunks:
                    file.write(chunk)
                    size += len(chunk)
            except BaseException:
                os.unlink(file.name)
                raise
        os.replace(file.name, path)
    except OSError as err:
        raise UsageError(f"-o {path}: {err.strerror}") from err
    out.result(
        {"executionId": args.id, "file": str(path), "bytes": size, "format": log_format},
        f"Wrote {size} bytes of logs to {path}.",
    )
    return 0


async def _resolve_promise(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    value = None if args.value is None else json_argument(args.value, "--value")
    settled = await client.resolve_promise(args.id, args.name, value)
    out.result(settled, f"Promise {settled.promise} of execution {settled.execution_id} resolved.")
    return 0


async def _reject_promise(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    details = object_argument(args.details, "--details")
    settled = await client.reject_promise(args.id, args.name, reason=args.reason, details=details)
    out.result(settled, f"Promise {settled.promise} of execution {settled.execution_id} rejected.")
    return 0


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``executions`` and ``promises`` command groups."""
    executions = subparsers.add_parser("executions", help="list, read and control executions").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(executions, "list", _list_executions, "list executions (filters combine with AND)", common)
    add_execution_filters(parser)
    parser.add_argument("--sort", choices=["createdAt", "completedAt"])
    parser.add_argument("--order", choices=["asc", "desc"])
    add_paging(parser)
    parser = command(executions, "get", _get_execution, "show an execution and its steps", common)
    parser.add_argument("id")
    parser.add_argument("--logs", action="store_true", help="with its latest 100 log records")
    command(executions, "steps", _list_steps, "list an execution's steps", common).add_argument("id")
    parser = command(executions, "events", _list_events, "list an execution's events", common)
    parser.add_argument("id")
    parser.add_argument("--since", type=int, default=0, metavar="SEQUENCE")
    parser.add_argument("--limit", type=int, default=100)
    parser = command(executions, "cancel", _cancel, "cancel an execution and its children", common)
    parser.add_argument("id")
    parser.add_argument("--reason")
    command(executions, "pause", _pause, "start no new step until resumed", common).add_argument("id")
    command(executions, "resume", _resume, "resume a paused execution", common).add_argument("id")
    preview = "show which steps would run again, and change nothing"
    parser = command(executions, "retry", _retry, "run a failed execution's failed steps again", common)
    parser.add_argument("id")
    parser.add_argument("--note")
    parser.add_argument("--input", help="a new input for the steps run again: JSON, or @file")
    parser.add_argument("--dry-run", action="store_true", help=preview)
    parser = command(executions, "rerun", _rerun, "start a new execution from a step, reusing earlier outputs", common)
    parser.add_argument("id")
    parser.add_argument("--from-step", required=True)
    parser.add_argument("--input", help="a new input: JSON, or @file")
    parser.add_argument("--version", type=int)
    parser.add_argument("--dry-run", action="store_true", help=preview)
    command(executions, "children", _list_children, "list child executions", common).add_argument("id")
    parser = command(executions, "task-attempts", _list_attempts, "list the attempts of a task", common)
    parser.add_argument("id")
    parser.add_argument("task_id")
    parser = command(executions, "logs", _show_logs, "print an execution's log records", common)
    parser.add_argument("id")
    parser.add_argument("--step", help="one step's records")
    add_log_options(parser)
    parser.add_argument(
        "-f", "--follow", action="store_true", help="print records as they come until the execution finished"
    )
    parser = command(
        executions, "watch", _watch, "show an execution live until it finishes (exit 3 if it failed)", common
    )
    parser.add_argument("id")
    parser = command(executions, "download-logs", _download_logs, "download every log record of an execution", common)
    parser.add_argument("id")
    parser.add_argument(
        "--format", choices=["text", "json"], help="text lines, or a JSON array (the default with -O json)"
    )
    parser.add_argument("-o", "--output-file", metavar="FILE", help="write here instead of stdout")
    register_lifecycle_commands(executions, common)

    promises = subparsers.add_parser("promises", help="settle the promises wait steps wait on").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(promises, "resolve", _resolve_promise, "resolve a promise", common)
    parser.add_argument("id", help="the execution id")
    parser.add_argument("name", help="the promise name")
    parser.add_argument("--value", help="the wait step's output: JSON, or @file")
    parser = command(promises, "reject", _reject_promise, "reject a promise: its wait step fails", common)
    parser.add_argument("id", help="the execution id")
    parser.add_argument("name", help="the promise name")
    parser.add_argument("--reason", default="rejected")
    parser.add_argument("--details", help="the wait step's error details: a JSON object, or @file")
