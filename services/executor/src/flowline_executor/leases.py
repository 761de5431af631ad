"""The leases of the attempts this process runs: renewed while they run, and the attempts stopped that lost theirs."""

from __future__ import annotations

import asyncpg
from flowline.db.attempts import list_lost_attempts
from flowline.db.attempts import renew_leases as renew

from flowline_executor.executor import Executor


async def renew_leases(pool: asyncpg.Pool, executor: Executor) -> None:
    """Extend the leases of the attempts this process is running, and stop those no longer its own.

    An attempt whose step was cancelled (or taken over after a lost lease) is stopped here when another
    executor made that change.
    """
    if executor.slots.running:
        running = list(executor.slots.running.values())
        await renew(pool, running, executor.worker, executor.settings.lease_seconds)
        executor.slots.stop(await list_lost_attempts(pool, running, executor.worker))
