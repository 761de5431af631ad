"""Wake-ups from PostgreSQL: background loops sleep until a NOTIFY says their work changed, instead of polling.

The tables a loop finds its work in notify a channel when work is added or comes due sooner (the triggers of
migration 0014, ``flowline.db.notifications``). A NOTIFY is delivered only when its transaction commits, so a
loop woken by one finds the work committed: PostgreSQL stays the truth, the notification only says "look now".

Listening needs one connection of its own. While it is open, a woken loop waits up to ``fallback_seconds``
between looks (the bound should a notification be lost without the connection noticing); while it is not (the
database restarted, or it cannot listen), each loop polls at its own short interval, as without wake-ups. Every
subscriber is also called whenever listening starts or stops: what changed meanwhile went unnotified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from flowline.runtime.outages import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

# How long listening waits before connecting again after its connection was lost or refused.
RECONNECT_SECONDS = 1.0


class Wakeups:
    """One connection LISTENing on the channels subscribed to, calling their subscribers on each notification."""

    def __init__(self, database_url: str, *, fallback_seconds: float) -> None:
        self.fallback_seconds = fallback_seconds
        self._database_url = database_url
        self._subscribers: dict[str, list[Callable[[], None]]] = {}
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._stopped = False

    @property
    def listening(self) -> bool:
        """Whether every change to the subscribed channels is being heard now."""
        return self._connection is not None and not self._connection.is_closed()

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` on each notification of ``channel`` (subscribe before ``run``)."""
        self._subscribers.setdefault(channel, []).append(callback)

    async def run(self) -> None:
        """Listen until ``stop()``, connecting again whenever the connection is lost."""
        while not self._stopped:
            try:
                await self._listen()
            except (*OUTAGE_ERRORS, asyncpg.PostgresError) as err:  # e.g. a pooler that refuses LISTEN
                logger.warning("not listening for wake-ups (loops poll meanwhile): %s", err)
            await self._close()
            if not self._stopped:
                await asyncio.sleep(RECONNECT_SECONDS)

    def stop(self) -> None:
        """Stop listening."""
        self._stopped = True
        self._lost.set()

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(self._database_url, timeout=5)
        try:
            for channel in self._subscribers:
                await connection.add_listener(channel, self._notified)
            connection.add_termination_listener(self._terminated)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._call_all()  # work may have changed while nobody listened
        await self._lost.wait()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._call_all()  # back to polling: a loop asleep for the fallback must look at its short interval
        try:
            await connection.close(timeout=5)
        except OUTAGE_ERRORS:
            connection.terminate()

    def _terminated(self, connection: Any) -> None:
        self._lost.set()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        for callback in self._subscribers.get(channel, ()):
            callback()

    def _call_all(self) -> None:
        for callbacks in self._subscribers.values():
            for callback in callbacks:
                callback()
