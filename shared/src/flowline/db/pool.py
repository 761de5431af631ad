"""The asyncpg connection pool, with JSON columns decoded by msgspec."""

from __future__ import annotations

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


async def create_pool(settings: Settings, *, session_setup: str | None = None) -> asyncpg.Pool:
    """Open a pool on ``settings.database_url``; close it with ``await pool.close()``.

    Args:
        settings: the connection URL and pool sizes.
        session_setup: SQL run once on every new connection (e.g. a session's temporary table), not per use.
    """

    async def init(connection: asyncpg.Connection) -> None:
        await _init_connection(connection)
        if session_setup is not None:
            await connection.execute(session_setup)

    timeout = settings.db_statement_timeout_seconds
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        init=init,
        reset=_keep_session,
        # PostgreSQL cancels a statement that runs too long; asyncpg gives up on one that gets no answer.
        server_settings={"statement_timeout": str(int(timeout * 1000))} if timeout else None,
        command_timeout=timeout + _UNANSWERED_GRACE_SECONDS if timeout else None,
    )
    assert pool is not None
    return pool
