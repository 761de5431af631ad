"""Removing executions whole: the one code path of retention, ``DELETE /executions/{id}`` and bulk deletes.

A root execution goes with all its descendants, in the caller's transaction, or stays whole: while a descendant
has not finished, is held by another transaction, or a rerun not yet started will copy from one of them, and
when its archive (``FLOWLINE_ARCHIVE_DIR``) could not be written (docs/architecture.md §6.1).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline.db.retention import (
    REMOVED_TABLES,
    RemovableRoot,
    TreeMember,
    awaited_by_reruns,
    count_descendants,
    delete_execution_rows,
    lock_descendants,
    lock_root,
    read_execution_rows,
    tenant_slugs,
)
from flowline.domain.archive import archive_documents, archive_path, write_durably
from flowline.errors import Conflict, FlowlineError, NotFound

logger = logging.getLogger(__name__)


class ArchiveFailed(FlowlineError):
    """An execution's archive could not be written, so it was not removed."""

    status_code = 503
    title = "Service unavailable"


@dataclass
class _Tree:
    """A root's whole tree, locked: its executions (the root first) and when the first began and the last ended."""

    members: list[uuid.UUID]
    created_at: datetime
    completed_at: datetime


@dataclass
class Removal:
    """What one removal did: the roots removed, the rows removed by table, and the roots kept, with why."""

    removed: list[uuid.UUID] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REMOVED_TABLES, 0))
    kept: dict[uuid.UUID, str] = field(default_factory=dict)
    not_archived: list[uuid.UUID] = field(default_factory=list)


class Remover:
    """Removes root executions with everything under them, archiving each first when ``archive_dir`` is set."""

    def __init__(self, archive_dir: Path | None) -> None:
        self._archive_dir = archive_dir

    async def remove_roots(self, connection: asyncpg.Connection, roots: Sequence[RemovableRoot]) -> Removal:
        """Remove these finished roots, locked by the caller, and their trees, in the caller's transaction."""
        removal = Removal()
        trees = await self._whole_trees(connection, roots, removal.kept)
        if awaited := await awaited_by_reruns(
            connection, [member for tree in trees.values() for member in tree.members]
        ):
            for root_id, tree in list(trees.items()):
                if waiting := awaited.intersection(tree.members):
                    removal.kept[root_id] = f"a rerun of execution {min(waiting)} has not started yet"
                    del trees[root_id]
        if self._archive_dir is not None and trees:
            failures = await self._archive(connection, self._archive_dir, [r for r in roots if r.id in trees], trees)
            for root_id, reason in failures.items():
                removal.kept[root_id] = reason
                removal.not_archived.append(root_id)
                del trees[root_id]
        if trees:
            removal.rows = await delete_execution_rows(
                connection,
                [member for tree in trees.values() for member in tree.members],
                lived=(
                    min(tree.created_at for tree in trees.values()),
                    max(tree.completed_at for tree in trees.values()),
                ),
            )
            removal.removed = list(trees)
        return removal

    async def delete_execution(
        self, connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID
    ) -> Removal:
        """Remove one finished root execution and everything under it, in the caller's transaction.

        Raises:
            NotFound: no such execution in this tenant.
            Conflict: it has not finished, it is a child (its root goes with it), or something under it still
                runs (or is being changed, or awaited by a rerun).
            ArchiveFailed: its archive could not be written.
        """
        execution = await lock_root(connection, tenant_id, execution_id)
        if execution is None:
            raise NotFound(f"execution {execution_id} does not exist")
        if execution["parent_execution_id"] is not None:
            raise Conflict(
                f"execution {execution_id} is a child of execution {execution['parent_execution_id']}; "
                f"delete its root execution {execution['root_execution_id']}"
            )
        if execution["status"] not in TERMINAL_EXECUTION_STATUSES:
            raise Conflict(f"execution {execution_id} is {execution['status']}; only a finished execution is deleted")
        root = RemovableRoot(
            id=execution_id,
            tenant_id=tenant_id,
            created_at=execution["created_at"],
            completed_at=execution["completed_at"] or datetime.now(UTC),
        )
        removal = await self.remove_roots(connection, [root])
        if execution_id in removal.not_archived:
            raise ArchiveFailed(f"execution {execution_id} was not deleted: {removal.kept[execution_id]}")
        if execution_id in removal.kept:
            raise Conflict(f"execution {execution_id} cannot be deleted yet: {removal.kept[execution_id]}")
        return removal

    @staticmethod
    async def _whole_trees(
        connection: asyncpg.Connection, roots: Sequence[RemovableRoot], kept: dict[uuid.UUID, str]
    ) -> dict[uuid.UUID, _Tree]:
        """Each root with its whole tree, all locked; a root that cannot go is in ``kept``.

        Descendants are locked skipping those another transaction holds: a tree with one held is kept for later,
        rather than waiting here on a lock while holding the others.
        """
        root_ids = [root.id for root in roots]
        members: dict[uuid.UUID, list[TreeMember]] = defaultdict(list)
        for member in await lock_descendants(connection, root_ids):
            members[member.root_execution_id].append(member)
        totals = await count_descendants(connection, root_ids)
        trees = {}
        for root in roots:
            root_id = root.id
            locked = members.get(root_id, [])
            running = [member for member in locked if member.status not in TERMINAL_EXECUTION_STATUSES]
            if running:
                kept[root_id] = f"its descendant execution {running[0].id} is {running[0].status}"
            elif len(locked) < totals.get(root_id, 0):
                kept[root_id] = "one of its descendants is being changed"
            else:
                trees[root_id] = _Tree(
                    members=[root_id, *(member.id for member in locked)],
                    created_at=min([root.created_at, *(member.created_at for member in locked)]),
                    completed_at=max(
                        [root.completed_at, *(member.completed_at or root.completed_at for member in locked)]
                    ),
                )
        return trees

    @staticmethod
    async def _archive(
        connection: asyncpg.Connection,
        base: Path,
        roots: Sequence[RemovableRoot],
        trees: dict[uuid.UUID, _Tree],
    ) -> dict[uuid.UUID, str]:
        """Write each root's document durably; the roots whose write failed, with the reason."""
        rows = await read_execution_rows(connection, [member for root in roots for member in trees[root.id].members])
        tenants = await tenant_slugs(connection, [root.tenant_id for root in roots])
        documents = archive_documents([root.id for root in roots], tenants, rows)
        paths = {root.id: archive_path(base, tenants[root.tenant_id], root.id, root.completed_at) for root in roots}

        def write_all() -> dict[uuid.UUID, str]:
            failures = {}
            for root_id, document in documents.items():
                try:
                    write_durably(paths[root_id], document)
                except OSError as err:
                    logger.error(
                        "execution %s is kept: its archive %s cannot be written: %s", root_id, paths[root_id], err
                    )
                    failures[root_id] = f"its archive cannot be written: {err}"
            return failures

        return await asyncio.to_thread(write_all)
