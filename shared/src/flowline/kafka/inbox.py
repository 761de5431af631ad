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
