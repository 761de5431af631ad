"""Archives of removed executions: one gzip'd JSON document per root, written durably before the rows go.

A document holds the root execution's row with its steps, attempts, timers, promises, events and task logs,
and its children, each the same way (``children``, nested as they ran). Rows appear as stored, with their
column names.
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

ARCHIVE_FORMAT = "flowline.execution-archive/1"
# The tables of an execution's rows and their names in the document.
SECTIONS = {
    "step_executions": "steps",
    "task_attempts": "attempts",
    "timers": "timers",
    "promises": "promises",
    "execution_events": "events",
    "task_logs": "logs",
}


def archive_path(base: Path, tenant: str, root_id: uuid.UUID, completed_at: datetime) -> Path:
    """Where a root execution's document goes: ``<base>/<tenant>/<yyyy>/<mm>/<dd>/<id>.json.gz`` (its finish day)."""
    day = completed_at.astimezone(UTC)
    return base / tenant / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{root_id}.json.gz"


def archive_documents(
    root_ids: Sequence[uuid.UUID], tenants: dict[uuid.UUID, str], rows: dict[str, list[dict[str, Any]]]
) -> dict[uuid.UUID, bytes]:
    """The gzip'd document of each root in ``root_ids``, built from the rows of their whole trees."""
    executions = {row["id"]: row for row in rows["executions"]}
    children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows["executions"]:
        if row["parent_execution_id"] is not None:
            children[row["parent_execution_id"]].append(row["id"])
    owned: dict[str, dict[uuid.UUID, list[dict[str, Any]]]] = {}
    for table in SECTIONS:
        by_execution: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        for row in rows[table]:
            by_execution[row["execution_id"]].append(row)
        owned[table] = by_execution

    def node(execution_id: uuid.UUID) -> dict[str, Any]:
        built: dict[str, Any] = {"execution": executions[execution_id]}
        for table, section in SECTIONS.items():
            built[section] = owned[table].get(execution_id, [])
        built["children"] = [node(child) for child in children.get(execution_id, [])]
        return built

    archived_at = datetime.now(UTC)
    documents = {}
    for root_id in root_ids:
        document = {
            "format": ARCHIVE_FORMAT,
            "tenant": tenants[executions[root_id]["tenant_id"]],
            "archivedAt": archived_at,
            **node(root_id),
        }
        documents[root_id] = gzip.compress(msgspec.json.encode(document), compresslevel=6)
    return documents


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it survives a crash once this returns, or raise ``OSError``.

    The bytes go to a temporary file beside it, are flushed to disk, then renamed over ``path``; the folder is
    flushed too, so that the rename itself is on disk (as is every folder this had to create).
    """
    _make_folders(path.parent)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def read_archive(path: Path) -> dict[str, Any]:
    """The document in an archive file.

    Raises:
        OSError: the file cannot be read, or is not gzip.
        msgspec.DecodeError: the content is not JSON.
    """
    document: dict[str, Any] = msgspec.json.decode(gzip.decompress(path.read_bytes()))
    return document


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and missing parents, each recorded on disk in its parent before the next is made."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        _sync_folder(created.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
