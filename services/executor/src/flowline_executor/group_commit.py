"""Group commit: the state changes of several executions in one transaction, one commit for all.

Under load most of a state change's cost is fixed: a connection, BEGIN, COMMIT and its WAL flush. Changes
that arrive while others are being written wait for the next group instead of a connection of their own.
There are no timed waits: on an idle system a change goes out alone at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import asyncpg
from flowline.outages import OUTAGE_ERRORS

ResultT = TypeVar("ResultT")
Work = Callable[[asyncpg.Connection], Awaitable[ResultT]]


class GroupFailed(Exception):
    """Another change of the group (or this one) raised, so the group rolled back: write this change alone."""


class _Pending(Generic[ResultT]):
    def __init__(self, key: uuid.UUID, work: Work[ResultT]) -> None:
        self.key = key
        self.work = work
        self.done: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()


class GroupCommit:
    """Runs callers' database work in shared transactions, each group's work ordered by key.

    The work of one caller must lock its key's row (the execution) before anything else it locks, so
    ordering by key orders the locks of every group and concurrent groups cannot deadlock on them.
    Without savepoints (a round trip each) a failing change cannot be undone alone: the group rolls back
    and every caller of a group of several gets ``GroupFailed``, so that it writes its change by itself.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_groups: int = 4, max_size: int = 50) -> None:
        self._pool = pool
        self._max_groups = max_groups
        self._max_size = max_size
        self._queue: list[_Pending[Any]] = []
        self._writers = 0  # tasks writing groups now; each takes the next group when it is done
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)

    @property
    def waiting(self) -> int:
        """Changes queued for the next group."""
        return len(self._queue)

    async def run(self, key: uuid.UUID, work: Work[ResultT]) -> ResultT:
        """Run ``work`` in the next group's transaction and return its result once that committed.

        Raises:
            GroupFailed: the group rolled back for a reason other than an outage; run ``work`` alone.
        """
        pending = _Pending(key, work)
        self._queue.append(pending)
        if self._writers < self._max_groups:
            self._writers += 1
            writer = asyncio.create_task(self._write_groups())
            self._tasks.add(writer)
            writer.add_done_callback(self._tasks.discard)
        # Shielded: a caller that gives up must not cancel a transaction that holds other callers' changes.
        return await asyncio.shield(pending.done)

    async def _write_groups(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[: self._max_size], self._queue[self._max_size :]
                group.sort(key=lambda pending: pending.key)
                try:
                    await self._write(group)
                except Exception as err:
                    for pending in group:
                        if not pending.done.done():
                            pending.done.set_exception(_group_error(err, len(group)))
                except BaseException:  # cancelled (shutdown): nothing of the group is known to be written
                    for pending in group:
                        pending.done.cancel()
                    raise
        finally:
            self._writers -= 1

    async def _write(self, group: list[_Pending[Any]]) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            results = [await pending.work(connection) for pending in group]
        for pending, result in zip(group, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)


def _group_error(err: Exception, size: int) -> Exception:
    """What each caller of a failed group sees: outages as they are (retry later), else ``GroupFailed``."""
    if size == 1 or isinstance(err, OUTAGE_ERRORS):
        return err
    return GroupFailed(f"a group of {size} state changes rolled back: {type(err).__name__}: {err}")
