"""``flowline workflows …`` and ``flowline packs …``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.arguments import Subparsers, UsageError, command, object_argument, yaml_file
from flowline_client.cli.executions import metadata_argument
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.live import report_gave_up, wait_and_report
from flowline_client.cli.output import Output, text, when
from flowline_client.models import PackInstalled

PACK_MANIFESTS = ("pack.yaml", "pack.yml")
WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


def pack_files(folder: Path) -> dict[str, str]:
    """The files of a pack folder the api takes: its manifest and ``workflows/*.yaml`` (others are the pack's own).

    Raises:
        UsageError: the folder has no ``pack.yaml``, or one of its files cannot be read as text.
    """
    files = {name: _text(folder / name) for name in PACK_MANIFESTS if (folder / name).is_file()}
    if not files:
        raise UsageError(f"{folder} is not a pack folder: it has no pack.yaml")
    workflows = folder / "workflows"
    if workflows.is_dir():
        for path in sorted(workflows.iterdir()):
            if path.is_file() and path.suffix in WORKFLOW_SUFFIXES:
                files[f"workflows/{path.name}"] = _text(path)
    return files


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text") from err


async def _install(client: AsyncFlowlineClient, folder: Path, out: Output) -> int:
    installed = await client.install_pack(pack_files(folder))
    if out.json:
        out.document(installed)
    else:
        _report_install(installed, out)
    return 0


def _report_install(installed: PackInstalled, out: Output) -> None:
    out.line(f"Pack {installed.pack.ref} {installed.change}.")
    rows = [[item.file, item.ref, item.change, str(item.version)] for item in installed.workflows]
    if rows:
        out.table(["FILE", "REF", "CHANGE", "VERSION"], rows)


async def _list_workflows(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    filters = {"pack": args.pack, "tags": args.tag, "search": args.search, "enabled": args.enabled}
    return await print_list(
        out,
        args,
        page=lambda: client.list_workflows(**filters, limit=args.limit, cursor=args.cursor),
        every=lambda: client.iter_workflows(**filters),
        headers=["REF", "VERSION", "ENABLED", "LABEL", "UPDATED"],
        row=lambda item: [
            item.ref,
            str(item.version),
            "yes" if item.enabled else "no",
            text(item.label),
            when(item.updated_at),
        ],
    )


async def _get_workflow(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    workflow = await client.get_workflow(args.ref, version=args.version)
    if out.json:
        out.document(workflow)
        return 0
    out.fields(
        [
            ("Ref", workflow.ref),
            ("Version", str(workflow.version)),
            ("Label", text(workflow.label)),
            ("Description", text(workflow.description)),
            ("Enabled", "yes" if workflow.enabled else "no"),
            ("Public", "yes" if workflow.public else "no"),
            ("Tags", ", ".join(workflow.tags) or "-"),
            ("Updated", when(workflow.updated_at)),
        ]
    )
    steps: list[dict[str, Any]] = workflow.definition.get("steps", [])
    out.line()
    out.table(
        ["STEP", "TYPE", "NEEDS"],
        [[text(step.get("id")), text(step.get("type")), ", ".join(step.get("needs", [])) or "-"] for step in steps],
    )
    return 0


async def _list_versions(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_workflow_versions(args.ref, limit=args.limit, cursor=args.cursor),
        every=lambda: client.iter_workflow_versions(args.ref),
        headers=["VERSION", "CREATED", "CREATED BY"],
        row=lambda item: [str(item.version), when(item.created_at), text(item.created_by)],
    )


async def _apply(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    if path.is_dir():
        return await _install(client, path, out)
    document = yaml_file(path)
    if not isinstance(document, dict) or not isinstance(document.get("ref"), str):
        raise UsageError(f"{path}: a workflow file needs its ref (<pack>.<name>); a folder with pack.yaml is a pack")
    workflow = await client.apply_workflow(document)
    out.result(workflow, f"Workflow {workflow.ref} applied. Version: {workflow.version}")
    return 0


async def _delete_workflow(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    await client.delete_workflow(args.ref)
    out.result({"ref": args.ref, "deleted": True}, f"Workflow {args.ref} deleted.")
    return 0


async def _set_enabled(client: AsyncFlowlineClient, ref: str, enabled: bool, out: Output) -> int:
    workflow = await client.update_workflow(ref, {"enabled": enabled})
    out.result(workflow, f"Workflow {workflow.ref} {'enabled' if enabled else 'disabled'}.")
    return 0


async def _enable(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _set_enabled(client, args.ref, True, out)


async def _disable(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _set_enabled(client, args.ref, False, out)


async def _execute(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    accepted = await client.execute_workflow(
        args.ref,
        object_argument(args.input, "--input"),
        version=args.version,
        idempotency_key=args.idempotency_key,
        metadata=metadata_argument(args.metadata),
        tags=args.tag,
    )
    if not out.json:
        out.line(f"Execution {accepted.execution_id} started. Status: {out.status(accepted.status)}")
    if args.wait:
        try:
            async with asyncio.timeout(args.timeout):
                return await wait_and_report(client, accepted.execution_id, out)
        except TimeoutError:
            return await report_gave_up(client, accepted.execution_id, args.timeout, out)
    if out.json:
        out.document(accepted)
    return 0


async def _list_packs(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_packs(limit=args.limit, cursor=args.cursor),
        every=client.iter_packs,
        headers=["REF", "VERSION", "LABEL", "UPDATED"],
        row=lambda pack: [pack.ref, text(pack.version), text(pack.label), when(pack.updated_at)],
    )


async def _get_pack(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    pack = await client.get_pack(args.ref)
    if out.json:
        out.document(pack)
        return 0
    out.fields(
        [
            ("Ref", pack.ref),
            ("Version", text(pack.version)),
            ("Label", text(pack.label)),
            ("Description", text(pack.description)),
            ("Created", when(pack.created_at)),
            ("Updated", when(pack.updated_at)),
        ]
    )
    return 0


async def _install_pack(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await _install(client, Path(args.folder), out)


async def _delete_pack(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    await client.delete_pack(args.ref, cascade=args.cascade)
    out.result(
        {"ref": args.ref, "deleted": True}, f"Pack {args.ref} deleted{' with its workflows' if args.cascade else ''}."
    )
    return 0


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``workflows`` and ``packs`` command groups."""
    workflows = subparsers.add_parser("workflows", help="define, list and run workflows").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(workflows, "list", _list_workflows, "list workflows", common)
    parser.add_argument("--pack")
    parser.add_argument("--tag", action="append", help="with any of these tags (repeat)")
    parser.add_argument("--search", help="text in the name, label or description")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--enabled", action="store_const", const=True, dest="enabled")
    state.add_argument("--disabled", action="store_const", const=False, dest="enabled")
    add_paging(parser)
    parser = command(workflows, "get", _get_workflow, "show a workflow and its steps", common)
    parser.add_argument("ref")
    parser.add_argument("--version", type=int, help="this version instead of the latest")
    parser = command(workflows, "versions", _list_versions, "list a workflow's versions, newest first", common)
    parser.add_argument("ref")
    add_paging(parser)
    parser = command(workflows, "apply", _apply, "create or update a workflow file, or install a pack folder", common)
    parser.add_argument("-f", "--file", required=True, metavar="FILE_OR_DIR")
    for name, handler, verb in (
        ("delete", _delete_workflow, "delete"),
        ("enable", _enable, "enable"),
        ("disable", _disable, "disable"),
    ):
        command(workflows, name, handler, f"{verb} a workflow", common).add_argument("ref")
    parser = command(workflows, "execute", _execute, "start an execution", common)
    parser.add_argument("ref")
    parser.add_argument("--input", help="the input: JSON, or @file holding JSON")
    parser.add_argument("--version", type=int)
    parser.add_argument("--idempotency-key")
    parser.add_argument("--tag", action="append")
    parser.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="repeat for more")
    parser.add_argument("--wait", action="store_true", help="wait for the end; exit 3 unless it completed")
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long (exit 124)"
    )

    packs = subparsers.add_parser("packs", help="list and install packs").add_subparsers(
        required=True, metavar="COMMAND"
    )
    add_paging(command(packs, "list", _list_packs, "list packs", common))
    command(packs, "get", _get_pack, "show a pack", common).add_argument("ref")
    command(
        packs, "install", _install_pack, "install a pack folder (pack.yaml, workflows/*.yaml)", common
    ).add_argument("folder")
    parser = command(packs, "delete", _delete_pack, "delete a pack", common)
    parser.add_argument("ref")
    parser.add_argument("--cascade", action="store_true", help="delete its workflows too")
