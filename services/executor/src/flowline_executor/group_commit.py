"""Group commit: the state changes of several executions in one transaction, one commit for all.

Under load most of a state change's cost is fixed: a connection, BEGIN, COMMIT and its WAL flush. Changes
that arrive while others are being written wait for the next group instead of a connection of their own.
There are no timed waits: on an idle system a change goes out alone at once, and a change that is one
statement then needs no transaction at all (BEGIN and COMMIT would be two round trips of three).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from flowline.runtime.batches import Batches, Pending
from flowline.runtime.outages import is_outage

ResultT = TypeVar("ResultT")
Work = Callable[[asyncpg.Connection], Awaitable[ResultT]]


class GroupFailed(Exception):
    """Another change of the group (or this one) raised, so the group rolled back: write this change alone."""


class GroupCommit:
    """Runs callers' database work in shared transactions, each group's work ordered by key.

    The work of one caller must lock its key's row (the execution) before anything else it locks, so
    ordering by key orders the locks of every group and concurrent groups cannot deadlock on them.
    Without savepoints (a round trip each) a failing change cannot be undone alone: the group rolls back
    and every caller of a group of several gets ``GroupFailed``, so that it writes its change by itself.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_groups: int = 4, max_size: int = 50) -> None:
        self._pool = pool
        self._groups: Batches[tuple[uuid.UUID, Work[Any], bool], Any] = Batches(
            self._write, order=lambda item: item[0], max_writers=max_groups, max_size=max_size
        )

    @property
    def waiting(self) -> int:
        """Changes queued for the next group."""
        return self._groups.waiting

    async def run(self, key: uuid.UUID, work: Work[ResultT], *, statement: bool = False) -> ResultT:
        """Run ``work`` in the next group's transaction and return its result once that committed.

        ``statement`` says that ``work`` runs one statement, atomic by itself: alone in its group, it runs
        without a transaction.

        Raises:
            GroupFailed: the group rolled back for a reason other than an outage; run ``work`` alone.
        """
        result: ResultT = await self._groups.submit((key, work, statement))
        return result

    async def _write(self, group: list[Pending[tuple[uuid.UUID, Work[Any], bool], Any]]) -> None:
        try:
            async with self._pool.acquire() as connection:
                if len(group) == 1 and group[0].item[2]:
                    results = [await group[0].item[1](connection)]
                else:
                    async with connection.transaction():
                        results = [await pending.item[1](connection) for pending in group]
        except Exception as err:
            for pending in group:
                pending.done.set_exception(_group_error(err, len(group)))
            return
        for pending, result in zip(group, results, strict=True):
            pending.done.set_result(result)


def _group_error(err: Exception, size: int) -> Exception:
    """What each caller of a failed group sees: outages as they are (retry later), else ``GroupFailed``."""
    if size == 1 or is_outage(err):
        return err
    return GroupFailed(f"a group of {size} state changes rolled back: {type(err).__name__}: {err}")
