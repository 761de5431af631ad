"""The inbox guard (docs/architecture.md §4.3): a message id is applied once per consumer."""

from __future__ import annotations

import uuid

import asyncpg


async def claim_message(connection: asyncpg.Connection, consumer: str, message_id: uuid.UUID) -> bool:
    """Record ``message_id`` as processed by ``consumer`` inside the caller's transaction.

    Returns:
        False when the message was processed before (a redelivery): the caller must change nothing.
    """
    inserted = await connection.fetchval(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        message_id,
    )
    return bool(inserted)


async def forget_processed_messages(
    connection: asyncpg.Connection | asyncpg.Pool, *, older_than_seconds: float, limit: int
) -> int:
    """Delete up to ``limit`` inbox rows processed more than ``older_than_seconds`` ago.

    Returns:
        How many rows went: fewer than ``limit`` means none older are left.
    """
    forgotten: int = await connection.fetchval(
        "WITH gone AS (DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1) "
        "AND ctid IN (SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2) "
        "RETURNING 1) "
        "SELECT count(*) FROM gone",
        older_than_seconds,
        limit,
    )
    return forgotten
