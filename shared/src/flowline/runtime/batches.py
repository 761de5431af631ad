"""Batches of concurrent callers' work: what arrives while a batch is being written goes in the next one.

Under load much of a write's cost is fixed per round trip, statement or commit, whatever it carries. There are
no timed waits: on an idle system an item goes out alone at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Pending(Generic[ItemT, ResultT]):
    """An item waiting for its batch, and the future its caller awaits."""

    def __init__(self, item: ItemT) -> None:
        self.item = item
        self.done: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()


Write = Callable[[list[Pending[ItemT, ResultT]]], Awaitable[None]]


class Batches(Generic[ItemT, ResultT]):
    """Hands the items concurrent callers submit to ``write``, each batch sorted by ``order``.

    Up to ``max_writers`` batches are written at once, each of at most ``max_size`` items; ``write`` settles
    every item's future, with its result or an exception (one it raises itself reaches the items it left).
    """

    def __init__(
        self,
        write: Write[ItemT, ResultT],
        *,
        order: Callable[[ItemT], Any],
        max_writers: int,
        max_size: int,
    ) -> None:
        self._write = write
        self._order = order
        self._max_writers = max_writers
        self._max_size = max_size
        self._queue: list[Pending[ItemT, ResultT]] = []
        self._writers = 0  # tasks writing batches now; each takes the next batch when it is done
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)

    @property
    def waiting(self) -> int:
        """Items queued for the next batch."""
        return len(self._queue)

    async def submit(self, item: ItemT) -> ResultT:
        """Write ``item`` with the others waiting; its result once its batch is written."""
        pending: Pending[ItemT, ResultT] = Pending(item)
        self._queue.append(pending)
        if self._writers < self._max_writers:
            self._writers += 1
            writer = asyncio.create_task(self._write_batches())
            self._tasks.add(writer)
            writer.add_done_callback(self._tasks.discard)
        # Shielded: a caller that gives up must not cancel a batch that holds other callers' items.
        return await asyncio.shield(pending.done)

    async def _write_batches(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_size], self._queue[self._max_size :]
                batch.sort(key=lambda pending: self._order(pending.item))
                try:
                    await self._write(batch)
                except Exception as err:
                    for pending in batch:
                        if not pending.done.done():
                            pending.done.set_exception(err)
                except BaseException:  # cancelled (shutdown): nothing of the batch is known to be written
                    for pending in batch:
                        pending.done.cancel()
                    raise
        finally:
            self._writers -= 1
