"""A small base for background loops: ``run_once()`` on an interval, stoppable, resilient, and wakeable."""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Sequence

from flowline.runtime.wakeups import Wakeups

logger = logging.getLogger(__name__)


class LoopService(abc.ABC):
    """Calls ``run_once()`` every ``interval_seconds`` until stopped; errors are logged, not fatal.

    A loop given ``wakeups`` is woken by the notifications of its ``channels`` and, while they are heard, waits
    up to the wake-ups' fallback instead of its interval. A loop that its own process wakes (``wake``,
    ``wake_in``) whenever it has work may wait up to ``fallback_seconds`` instead. ``run_once`` may say when its
    next work is due (``due_in``): the loop then waits no longer than that. After a failed iteration it waits its
    interval.
    """

    def __init__(
        self,
        name: str,
        interval_seconds: float,
        *,
        wakeups: Wakeups | None = None,
        channels: Sequence[str] = (),
        fallback_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self._stopped = False
        self._wake = asyncio.Event()
        self._wake_timer: asyncio.TimerHandle | None = None  # a ``wake_in`` still to come
        self._wakeups = wakeups
        self._fallback_seconds = fallback_seconds
        self._due_at: float | None = None  # time.monotonic() of the next work run_once knows of
        for channel in channels:
            assert wakeups is not None, "channels need wakeups"
            wakeups.subscribe(channel, self.wake)

    @abc.abstractmethod
    async def run_once(self) -> None:
        """One iteration of the loop's work."""

    async def start(self, loops: int | None = None) -> None:
        """Run until ``stop()``, or for exactly ``loops`` iterations (tests)."""
        done = 0
        while not self._stopped and (loops is None or done < loops):
            self._due_at = None
            self._cancel_wake_timer()  # this iteration does what it was for
            failed = False
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                failed = True
                logger.exception("loop %s failed, continuing", self.name)
            done += 1
            if loops is not None and done >= loops:
                break
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.interval_seconds if failed else self.wait_seconds()
                )
            except TimeoutError:
                pass
            self._wake.clear()

    def wait_seconds(self) -> float:
        """How long the loop waits for a wake-up before its next iteration."""
        fallback = self._fallback_seconds
        if self._wakeups is not None:
            fallback = self._wakeups.fallback_seconds if self._wakeups.listening else 0.0
        wait = max(self.interval_seconds, fallback)
        if self._due_at is not None:
            wait = min(wait, self._due_at - time.monotonic())
        return max(wait, 0.0)

    def due_in(self, seconds: float) -> None:
        """Say, from ``run_once``, that work comes due in ``seconds``: the next iteration runs by then."""
        due_at = time.monotonic() + seconds
        self._due_at = due_at if self._due_at is None else min(self._due_at, due_at)

    def stop(self) -> None:
        """Ask the loop to finish after the current iteration."""
        self._stopped = True
        self._cancel_wake_timer()
        self._wake.set()

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the interval."""
        self._wake.set()

    def wake_in(self, seconds: float) -> None:
        """Run the next iteration within ``seconds`` (from outside ``run_once``); a sooner wake-up stands."""
        loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        if self._wake_timer is not None:
            if self._wake_timer.when() <= at:
                return
            self._wake_timer.cancel()
        self._wake_timer = loop.call_at(at, self._timed_wake)

    def _timed_wake(self) -> None:
        self._wake_timer = None
        self.wake()

    def _cancel_wake_timer(self) -> None:
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None
