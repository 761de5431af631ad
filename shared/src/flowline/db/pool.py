"""The asyncpg connection pool, with JSON columns decoded by msgspec."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from flowline.settings import Settings

# How much longer than the statement timeout a query waits for any answer: the server's own cancellation,
# which names the statement, comes first.
_UNANSWERED_GRACE_SECONDS = 5.0


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection outside any pool (admin commands, scripts), with the pool's JSON codecs."""
    connection = await asyncpg.connect(database_url)
    await _init_connection(connection)
    return connection


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (a round trip per transaction): Flowline keeps no session state."""


class ConnectionUnavailable(TimeoutError):
    """No connection of the pool was free, nor could one be opened, within the pool's acquire timeout.

    A ``TimeoutError``, so that whoever waits out outages waits this out too; the api answers it 503.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no database connection was free within {seconds:g} s")
        self.seconds = seconds


class _BoundedWaitPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """An asyncpg pool whose ``acquire()`` (and so ``fetch()``, ``execute()``…) gives up after a set wait.

    asyncpg waits for a free connection for ever unless each call passes its own timeout; a process whose
    connections are all held (slow clients, a stalled database) would queue requests without end.
    """

    def __init__(self, *args: Any, acquire_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    async def _acquire(self, timeout: float | None) -> asyncpg.Connection:  # noqa: ASYNC109  # asyncpg's signature
        # The one place both ``acquire()`` forms go through (``async with`` and ``await``).
        if timeout is not None or self._acquire_timeout is None:
            return await super()._acquire(timeout)
        try:
            return await super()._acquire(self._acquire_timeout)
        except TimeoutError as err:
            raise ConnectionUnavailable(self._acquire_timeout) from err


async def create_pool(
    settings: Settings, *, session_setup: str | None = None, acquire_timeout: float | None = None
) -> asyncpg.Pool:
    """Open a pool on ``settings.database_url``; close it with ``await pool.close()``.

    Args:
        settings: the connection URL and pool sizes.
        session_setup: SQL run once on every new connection (e.g. a session's temporary table), not per use.
        acquire_timeout: how long taking a connection waits before raising ``ConnectionUnavailable``; None or 0:
            for ever (the background services, whose work waits its turn rather than fail).
    """

    async def init(connection: asyncpg.Connection) -> None:
        await _init_connection(connection)
        if session_setup is not None:
            await connection.execute(session_setup)

    timeout = settings.db_statement_timeout_seconds
    # What asyncpg.create_pool does (with its defaults), with the pool class that bounds the wait.
    pool: asyncpg.Pool = await _BoundedWaitPool(
        settings.database_url,
        acquire_timeout=acquire_timeout or None,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=init,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        # PostgreSQL cancels a statement that runs too long; asyncpg gives up on one that gets no answer.
        server_settings={"statement_timeout": str(int(timeout * 1000))} if timeout else None,
        command_timeout=timeout + _UNANSWERED_GRACE_SECONDS if timeout else None,
    )
    return pool
