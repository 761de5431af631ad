"""``flowline tasks …``: one step execution, addressed by its task id."""

from __future__ import annotations

import argparse

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import Subparsers, command
from flowline_client.cli.live import follow_task_logs, print_log_page, watch_task
from flowline_client.cli.log_options import add_log_options, log_query
from flowline_client.cli.output import Output, duration, error_message, text, when


async def _get_task(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    task = await client.get_task(args.id)
    if out.json:
        out.document(task)
        return 0
    out.fields(
        [
            ("Task", task.task_id),
            ("Execution", task.execution_id),
            ("Workflow", task.workflow_ref),
            ("Step", f"{task.step_id} ({task.type})"),
            ("Status", out.status(task.status)),
            ("Attempts", str(task.attempts)),
            ("Started", when(task.started_at)),
            ("Completed", when(task.completed_at)),
            ("Duration", duration(task.duration_ms)),
            ("Input", text(task.input)),
            ("Output", text(task.output)) if not task.error else ("Error", error_message(task.error)),
        ]
    )
    return 0


async def _task_logs(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    query = log_query(args)
    if args.follow:
        await follow_task_logs(client, args.id, out, level=args.level, attempt=args.attempt)
        return 0
    print_log_page(await client.get_task_logs(args.id, **query), out)
    return 0


async def _watch_task(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await watch_task(client, args.id, out)


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``tasks`` command group."""
    tasks = subparsers.add_parser("tasks", help="read and follow one step execution").add_subparsers(
        required=True, metavar="COMMAND"
    )
    command(tasks, "get", _get_task, "show a task (a step execution)", common).add_argument("id")
    parser = command(tasks, "logs", _task_logs, "print a task's log records", common)
    parser.add_argument("id")
    add_log_options(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="print records as they come until the task ends")
    command(
        tasks, "watch", _watch_task, "print a task's events and logs live until it ends (exit 3 if it failed)", common
    ).add_argument("id")
