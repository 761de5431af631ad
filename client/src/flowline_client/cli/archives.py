"""``flowline executions delete`` and ``flowline executions archive-show``: removing executions, reading archives."""

from __future__ import annotations

import argparse
import gzip
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import Subparsers, UsageError, command
from flowline_client.cli.output import Output, duration, text

# A document's sections of rows besides its execution and children, as the scheduler writes them.
SECTIONS = ("steps", "attempts", "timers", "promises", "events", "logs")


async def _delete(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    await client.delete_execution(args.id)
    out.result({"executionId": args.id, "deleted": True}, f"Execution {args.id} deleted with everything under it.")
    return 0


def read_archive_file(path: Path) -> dict[str, Any]:
    """The document of an archive file (``<id>.json.gz``).

    Raises:
        UsageError: the file cannot be read, is not gzip'd, or holds no execution archive.
    """
    try:
        compressed = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    try:
        document = msgspec.json.decode(gzip.decompress(compressed))
    except (OSError, EOFError, zlib.error, msgspec.DecodeError) as err:  # gzip.BadGzipFile is an OSError
        raise UsageError(f"{path}: not a gzip'd JSON archive: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("execution"), dict):
        raise UsageError(f"{path}: not an execution archive")
    return document


def show_archive(args: argparse.Namespace, out: Output) -> int:
    """Print an archived execution: the whole document with ``-O json``, else a summary, its steps and children."""
    document = read_archive_file(Path(args.file))
    if out.json:
        out.document(document)
        return 0
    execution = document["execution"]
    out.fields(
        [
            ("Execution", str(execution.get("id"))),
            ("Tenant", text(document.get("tenant"))),
            ("Workflow", f"{execution.get('workflow_ref')} v{execution.get('workflow_version')}"),
            ("Status", out.status(str(execution.get("status")))),
            ("Created", text(execution.get("created_at"))),
            ("Completed", text(execution.get("completed_at"))),
            ("Duration", _duration(execution.get("started_at"), execution.get("completed_at"))),
            ("Archived", text(document.get("archivedAt"))),
            ("Rows", ", ".join(f"{len(document.get(section) or [])} {section}" for section in SECTIONS)),
        ]
    )
    out.line()
    out.table(
        ["STEP", "TYPE", "STATUS", "ATTEMPTS", "TASK ID"],
        [
            [
                str(step.get("step_id")),
                str(step.get("step_type")),
                str(step.get("status")).upper(),
                str(step.get("attempts")),
                str(step.get("id")),
            ]
            for step in document.get("steps") or []
        ],
    )
    children = list(_descendants(document, 1))
    if children:
        out.line()
        out.line("Children:")
        for line in children:
            out.line(line)
    if args.logs:
        out.line()
        for record in document.get("logs") or []:
            out.line(
                f"{record.get('timestamp')} {record.get('level')} [{record.get('step_id')}] {record.get('message')}"
            )
    return 0


def _duration(started: Any, completed: Any) -> str:
    """The time between two ISO times of a document (``-`` when either is missing)."""
    if not isinstance(started, str) or not isinstance(completed, str):
        return duration(None)
    elapsed = datetime.fromisoformat(completed) - datetime.fromisoformat(started)
    return duration(int(elapsed.total_seconds() * 1000))


def _descendants(node: dict[str, Any], depth: int) -> list[str]:
    """One indented line per descendant of an archived execution, depth first."""
    lines = []
    for child in node.get("children") or []:
        execution = child["execution"]
        lines.append(
            f"{'  ' * depth}{execution.get('id')}  {execution.get('workflow_ref')}  "
            f"{str(execution.get('status')).upper()}  (step {execution.get('parent_step_id')})"
        )
        lines.extend(_descendants(child, depth + 1))
    return lines


def register_commands(executions: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add ``delete`` and ``archive-show`` to the ``executions`` group."""
    parser = command(executions, "delete", _delete, "delete a finished root execution with everything under it", common)
    parser.add_argument("id")
    parser = executions.add_parser(
        "archive-show",
        help="print an archived execution (a <id>.json.gz file of FLOWLINE_ARCHIVE_DIR); needs no api",
        description="print an archived execution (a <id>.json.gz file of FLOWLINE_ARCHIVE_DIR); needs no api",
        parents=common,
    )
    parser.set_defaults(offline=show_archive)
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--logs", action="store_true", help="also print the root execution's log records")
