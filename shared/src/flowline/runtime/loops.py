"""A small base for background loops: ``run_once()`` on an interval, stoppable, resilient."""

from __future__ import annotations

import abc
import asyncio
import logging

logger = logging.getLogger(__name__)


class LoopService(abc.ABC):
    """Calls ``run_once()`` every ``interval_seconds`` until stopped; errors are logged, not fatal."""

    def __init__(self, name: str, interval_seconds: float) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self._stopped = False
        self._wake = asyncio.Event()

    @abc.abstractmethod
    async def run_once(self) -> None:
        """One iteration of the loop's work."""

    async def start(self, loops: int | None = None) -> None:
        """Run until ``stop()``, or for exactly ``loops`` iterations (tests)."""
        done = 0
        while not self._stopped and (loops is None or done < loops):
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("loop %s failed, continuing", self.name)
            done += 1
            if loops is not None and done >= loops:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    def stop(self) -> None:
        """Ask the loop to finish after the current iteration."""
        self._stopped = True
        self._wake.set()

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the interval."""
        self._wake.set()
