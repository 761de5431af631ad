"""The leases of the attempts this process runs: renewed while they run, and the attempts stopped that lost theirs."""

from __future__ import annotations

import asyncpg

from flowline_executor.executor import Executor

# Rows locked by a transaction of their execution are skipped this round rather than waited for, so renewal
# never holds a step lock while waiting for another (the execution-first lock order).
_RENEW = (
    "UPDATE step_executions SET lease_expires_at = clock_timestamp() + make_interval(secs => $3) "
    "WHERE id = ANY($1::uuid[]) AND id IN ("  # the keys again: the update finds its rows by them too
    "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) AND owner = $2 AND status = 'running' "
    "FOR UPDATE SKIP LOCKED)"
)
_GONE = (
    "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) "
    "AND (status = 'cancelled' OR (status = 'running' AND owner IS DISTINCT FROM $2))"
)


async def renew_leases(pool: asyncpg.Pool, executor: Executor) -> None:
    """Extend the leases of the attempts this process is running, and stop those no longer its own.

    An attempt whose step was cancelled (or taken over after a lost lease) is stopped here when another
    executor made that change.
    """
    if executor.slots.running:
        running = list(executor.slots.running.values())
        await pool.execute(_RENEW, running, executor.worker, executor.settings.lease_seconds)
        gone = await pool.fetch(_GONE, running, executor.worker)
        executor.slots.stop({row["id"] for row in gone})
