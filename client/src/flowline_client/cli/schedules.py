"""``flowline schedules list|get|create|update|pause|resume|trigger|backfill|delete``."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import Subparsers, UsageError, command, iso_time, object_argument, yaml_file
from flowline_client.cli.bulk import follow_and_report
from flowline_client.cli.executions import metadata_argument
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.output import Output, text, when
from flowline_client.models import Schedule

# Option name → the api's field, for `create` and `update` from flags.
_FLAGS = {
    "name": "name",
    "workflow": "workflowRef",
    "version": "version",
    "cron": "cron",
    "interval": "interval",
    "timezone": "timezone",
    "overlap": "overlap",
    "catchup_window": "catchupWindow",
    "start_at": "startAt",
    "end_at": "endAt",
    "description": "description",
}


async def schedule_id(client: AsyncFlowlineClient, reference: str) -> str:
    """The id of the schedule ``reference`` names: an id as it is, else the schedule of that name.

    Raises:
        UsageError: no schedule has that name.
    """
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        pass
    async for schedule in client.iter_schedules():
        if schedule.name == reference:
            return schedule.id
    raise UsageError(f"no schedule is named {reference!r}")


def _next_run(schedule: Schedule) -> str:
    return when(schedule.next_run_at[0]) if schedule.next_run_at else "-"


def _show(schedule: Schedule, out: Output) -> None:
    last = schedule.last_run
    out.fields(
        [
            ("Schedule", schedule.id),
            ("Name", schedule.name),
            ("Workflow", schedule.workflow_ref + ("" if schedule.version is None else f" v{schedule.version}")),
            ("When", schedule.cron or f"every {schedule.interval}"),
            ("Time zone", schedule.timezone),
            ("Overlap", schedule.overlap),
            ("Catch-up window", schedule.catchup_window),
            ("Paused", "yes" if schedule.paused else "no"),
            ("Next runs", ", ".join(when(moment) for moment in schedule.next_run_at) or "-"),
            (
                "Last run",
                "-" if last is None else f"{when(last.scheduled_for)} {last.execution_id} {text(last.status)}",
            ),
            ("Description", text(schedule.description)),
        ]
    )


async def _list(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_schedules(
            workflow=args.workflow, paused=args.paused, limit=args.limit, cursor=args.cursor
        ),
        every=lambda: client.iter_schedules(workflow=args.workflow, paused=args.paused),
        headers=["NAME", "WORKFLOW", "WHEN", "PAUSED", "NEXT RUN", "ID"],
        row=lambda schedule: [
            schedule.name,
            schedule.workflow_ref,
            schedule.cron or f"every {schedule.interval}",
            "yes" if schedule.paused else "no",
            _next_run(schedule),
            schedule.id,
        ],
    )


def _print(schedule: Schedule, out: Output) -> int:
    if out.json:
        out.document(schedule)
    else:
        _show(schedule, out)
    return 0


async def _get(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return _print(await client.get_schedule(await schedule_id(client, args.schedule)), out)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The file's fields (the api's names), with the flags given on top."""
    body: dict[str, Any] = {}
    if args.file is not None:
        document = yaml_file(Path(args.file))
        if not isinstance(document, dict):
            raise UsageError(f"{args.file}: a schedule file holds one object (name, workflowRef, cron or interval, …)")
        body.update(document)
    for option, field in _FLAGS.items():
        if (value := getattr(args, option)) is not None:
            body[field] = value
    if args.input is not None:
        body["input"] = object_argument(args.input, "--input")
    if args.metadata:
        body["metadata"] = metadata_argument(args.metadata)
    if args.tag:
        body["tags"] = args.tag
    if args.paused is not None:
        body["paused"] = args.paused
    return body


def _body(args: argparse.Namespace) -> dict[str, Any]:
    """The new schedule: the file's fields (the api's names), with the flags given on top."""
    body = _fields(args)
    if "name" not in body or "workflowRef" not in body:
        raise UsageError("give --name and --workflow (or a file with name and workflowRef)")
    return body


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """The merge patch of ``update``: the file's fields (null clears one), with the flags given on top."""
    if not (changes := _fields(args)):
        raise UsageError("nothing to change: give flags or a file with the fields to change")
    return changes


async def _create(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    schedule = await client.create_schedule(_body(args))
    if out.json:
        out.document(schedule)
    else:
        out.line(f"Schedule {schedule.name} created ({schedule.id}); next run {_next_run(schedule)}.")
    return 0


async def _update(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    changes = _changes(args)
    schedule = await client.update_schedule(await schedule_id(client, args.schedule), changes)
    out.result(schedule, f"Schedule {schedule.name} updated; next run {_next_run(schedule)}.")
    return 0


async def _pause(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    schedule = await client.pause_schedule(await schedule_id(client, args.schedule))
    out.result(schedule, f"Schedule {schedule.name} paused.")
    return 0


async def _resume(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    schedule = await client.resume_schedule(await schedule_id(client, args.schedule))
    out.result(schedule, f"Schedule {schedule.name} resumed; next run {_next_run(schedule)}.")
    return 0


async def _trigger(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    run = await client.trigger_schedule(await schedule_id(client, args.schedule))
    out.result(run, f"Started execution {run.execution_id}.")
    return 0


async def _backfill(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    if args.dry_run:
        preview = await client.preview_backfill(await schedule_id(client, args.schedule), args.start, args.end)
        if out.json:
            out.document(preview)
        else:
            for moment in preview.times:
                out.line(when(moment))
            out.line(f"{preview.total} fire times, {preview.new} without a run: a backfill would start {preview.new}.")
        return 0
    operation = await client.backfill_schedule(await schedule_id(client, args.schedule), args.start, args.end)
    if not args.wait:
        out.result(operation, f"Backfill {operation.id} started: {operation.total} runs.")
        return 0
    if not out.json:
        out.line(f"Backfill {operation.id} started: {operation.total} runs.")
    return await follow_and_report(client, operation, out)


async def _delete(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    identifier = await schedule_id(client, args.schedule)
    await client.delete_schedule(identifier)
    out.result({"id": identifier, "deleted": True}, f"Schedule {args.schedule} deleted; its executions stay.")
    return 0


def _schedule_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The fields of ``create``, or of ``update`` (a file's null clears a field there)."""
    parser.add_argument("-f", "--file", help="a YAML or JSON file with the schedule (the api's field names)")
    parser.add_argument("--name")
    parser.add_argument("--workflow", help="the workflow ref")
    parser.add_argument("--version", type=int, help="this version at every run (default: the latest at each)")
    parser.add_argument("--cron", help="five fields, six with seconds first, or @hourly, @daily, …")
    parser.add_argument("--interval", help="a duration such as 30s, 15m, 1h")
    parser.add_argument("--timezone", help="an IANA time zone for the cron (default UTC)")
    parser.add_argument("--input", help="the runs' input: JSON, or @file")
    parser.add_argument("--overlap", choices=["skip", "buffer_one", "allow", "cancel_previous"])
    parser.add_argument("--catchup-window", help="how late a missed run may still start (default 1m; 0: never)")
    parser.add_argument("--start-at", help="no runs before this ISO time")
    parser.add_argument("--end-at", help="no runs from this ISO time on")
    parser.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="repeat for more")
    parser.add_argument("--tag", action="append", help="repeat for more")
    parser.add_argument("--description")
    if update:
        parser.add_argument("--paused", action=argparse.BooleanOptionalAction, help="pause it (--no-paused: resume)")
    else:
        parser.add_argument("--paused", action="store_true", default=None, help="create it paused")


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``schedules`` command group."""
    schedules = subparsers.add_parser("schedules", help="run workflows on a cron or an interval").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(schedules, "list", _list, "list schedules by name", common)
    parser.add_argument("--workflow", help="only this workflow's")
    parser.add_argument("--paused", action=argparse.BooleanOptionalAction, help="only paused (or --no-paused)")
    add_paging(parser)
    for name, handler, help in (
        ("get", _get, "show a schedule, its next runs and its last run"),
        ("pause", _pause, "stop starting runs"),
        ("resume", _resume, "start runs again from the next fire time"),
        ("trigger", _trigger, "start one run now"),
        ("delete", _delete, "delete a schedule (its executions stay)"),
    ):
        command(schedules, name, handler, help, common).add_argument("schedule", help="a name or id")
    _schedule_options(
        command(schedules, "create", _create, "create a schedule from flags or a file", common), update=False
    )
    parser = command(schedules, "update", _update, "change some fields of a schedule, from flags or a file", common)
    parser.add_argument("schedule", help="a name or id")
    _schedule_options(parser, update=True)
    parser = command(schedules, "backfill", _backfill, "start the runs of a past window [start, end)", common)
    parser.add_argument("schedule", help="a name or id")
    parser.add_argument("--start", type=iso_time, required=True, metavar="ISO_TIME")
    parser.add_argument("--end", type=iso_time, required=True, metavar="ISO_TIME")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="return once started")
    parser.add_argument("--dry-run", action="store_true", help="only list the fire times and how many are new")
