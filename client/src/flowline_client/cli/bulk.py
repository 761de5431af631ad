"""``flowline bulk cancel|retry|delete`` with a progress bar, and ``flowline audit list``."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import API_ERROR, Subparsers, UsageError, command, iso_time
from flowline_client.cli.executions import add_execution_filters, execution_filters
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.output import Output, text, when
from flowline_client.models import BulkOperation, ExecutionFilter

FINISHED = frozenset({"completed", "failed"})
POLL_SECONDS = 0.5
BAR_WIDTH = 30
# list_executions keyword → the camelCase name of the same filter in a bulk request's `filter` object.


def progress_bar(operation: BulkOperation) -> str:
    """``[#########.....................]  150/500  succeeded 148  failed 0  skipped 2``."""
    done = operation.succeeded + operation.failed + operation.skipped
    filled = BAR_WIDTH * done // operation.total if operation.total else BAR_WIDTH
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}]  {done}/{operation.total}  "
        f"succeeded {operation.succeeded}  failed {operation.failed}  skipped {operation.skipped}"
    )


def _executions(count: int) -> str:
    return f"{count} execution" if count == 1 else f"{count} executions"


async def _follow(client: AsyncFlowlineClient, operation: BulkOperation, out: Output) -> BulkOperation:
    """Poll the operation until it finished, drawing its progress bar on a terminal.

    Ctrl+C stops the watching, not the operation: the message says how to look at it again.
    """
    bar = out.terminal and not out.json
    try:
        while operation.status not in FINISHED:
            if bar:
                out.stdout.write("\r" + progress_bar(operation))
                out.stdout.flush()
            await asyncio.sleep(POLL_SECONDS)
            operation = await client.get_bulk_operation(operation.id)
    except asyncio.CancelledError:
        if bar:
            out.stdout.write("\n")
        out.hint(f"The operation goes on; follow it with: flowline bulk get {operation.id} --wait")
        raise
    if bar:
        out.stdout.write("\r" + progress_bar(operation) + "\n")
    return operation


def _report(operation: BulkOperation, out: Output) -> int:
    """Print a finished operation; exit code 1 if it failed or failed on some execution."""
    out.result(
        operation,
        f"Bulk {operation.kind} {operation.id} {operation.status}: {operation.succeeded} succeeded, "
        f"{operation.failed} failed, {operation.skipped} skipped.",
    )
    if not out.json:
        for error in operation.errors:
            out.line(f"  {text(error.execution_id)}: {error.message}")
    return API_ERROR if operation.status == "failed" or operation.failed else 0


async def _run_bulk(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output, verb: str) -> int:
    filters = execution_filters(args)
    if bool(args.ids) == bool(filters):
        raise UsageError("select executions by ids or by filters such as --status failed (one of the two)")
    selection: dict[str, Any] = {
        "ids": args.ids or None,
        "filter": ExecutionFilter(**filters) if filters else None,
        "dry_run": args.dry_run,
    }
    if verb == "cancel":
        operation = await client.bulk_cancel(**selection, reason=args.reason)
    elif verb == "delete":
        operation = await client.bulk_delete(**selection, reason=args.reason)
    else:
        operation = await client.bulk_retry(**selection, note=args.note)
    if operation.dry_run:
        out.result(operation, f"Would {verb} {_executions(operation.total)} (dry run: nothing changed).")
        return 0
    if not args.wait:
        out.result(operation, f"Bulk {verb} {operation.id} started: {_executions(operation.total)}.")
        return 0
    if not out.json:
        out.line(f"Bulk {verb} {operation.id} started: {_executions(operation.total)}.")
    return await follow_and_report(client, operation, out)


async def follow_and_report(client: AsyncFlowlineClient, operation: BulkOperation, out: Output) -> int:
    """Follow an operation to its end with a progress bar, then print it; exit code 1 if it failed anywhere."""
    return _report(await _follow(client, operation, out), out)


async def _bulk_cancel(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _run_bulk(client, args, out, "cancel")


async def _bulk_retry(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _run_bulk(client, args, out, "retry")


async def _bulk_delete(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _run_bulk(client, args, out, "delete")


async def _bulk_get(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    operation = await client.get_bulk_operation(args.id)
    if args.wait:
        return _report(await _follow(client, operation, out), out)
    if operation.status in FINISHED:
        return _report(operation, out)
    done = operation.succeeded + operation.failed + operation.skipped
    out.result(operation, f"Bulk {operation.kind} {operation.id} {operation.status}: {done} of {operation.total} done.")
    return 0


async def _list_audit(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    filters = {
        "entity_type": args.entity_type,
        "entity_id": args.entity_id,
        "principal": args.principal,
        "since": args.since,
        "until": args.until,
    }
    return await print_list(
        out,
        args,
        page=lambda: client.list_audit_logs(**filters, limit=args.limit, cursor=args.cursor),
        every=lambda: client.iter_audit_logs(**filters),
        headers=["OCCURRED", "ENTITY", "ACTION", "PRINCIPAL", "ID"],
        row=lambda entry: [
            when(entry.occurred_at),
            f"{entry.entity_type} {entry.entity_id}",
            entry.action,
            text(entry.principal),
            entry.id,
        ],
    )


def _bulk_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="these executions (or select them with filters)")
    add_execution_filters(parser)
    parser.add_argument("--dry-run", action="store_true", help="only count the selected executions")
    parser.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return once started instead of showing progress"
    )


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``bulk`` and ``audit`` command groups."""
    bulk = subparsers.add_parser("bulk", help="cancel, retry or delete many executions").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(bulk, "cancel", _bulk_cancel, "cancel the selected executions", common)
    _bulk_options(parser)
    parser.add_argument("--reason")
    parser = command(bulk, "retry", _bulk_retry, "retry the selected failed executions", common)
    _bulk_options(parser)
    parser.add_argument("--note")
    parser = command(
        bulk, "delete", _bulk_delete, "delete the selected finished root executions with everything under them", common
    )
    _bulk_options(parser)
    parser.add_argument("--reason")
    parser = command(bulk, "get", _bulk_get, "show a bulk operation's progress", common)
    parser.add_argument("id")
    parser.add_argument("--wait", action="store_true", help="follow it to the end (a progress bar on a terminal)")

    audit = subparsers.add_parser("audit", help="read the audit log (admins)").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(audit, "list", _list_audit, "list audit entries, newest first", common)
    parser.add_argument("--entity-type", help="workflow, pack, agent, execution, api_key or bulk_operation")
    parser.add_argument("--entity-id")
    parser.add_argument("--principal")
    parser.add_argument("--since", type=iso_time, metavar="ISO_TIME")
    parser.add_argument("--until", type=iso_time, metavar="ISO_TIME")
    add_paging(parser)
