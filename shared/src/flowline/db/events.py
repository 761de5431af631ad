"""The execution event log: append-only, one sequence per execution, mirrored to the events topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg

from flowline.kafka.outbox import OutboxRow, outgoing
from flowline.messages import ExecutionEvent


class NewEvent(NamedTuple):
    """An event to append; ``data`` is the snapshot a stream subscriber sees."""

    event: str
    data: dict[str, Any]
    step_id: str | None = None
    task_id: uuid.UUID | None = None


async def append_events(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    events: list[NewEvent],
    topic: str,
) -> list[OutboxRow]:
    """Append ``events`` inside the caller's transaction and return their outbox rows for the events topic.

    The sequence counter lives on the execution row, so concurrent writers of one execution serialise on
    that row's lock and the sequence has no gaps.
    """
    if not events:
        return []
    last = await connection.fetchval(
        "UPDATE executions SET last_event_sequence = last_event_sequence + $2, updated_at = now() "
        "WHERE id = $1 RETURNING last_event_sequence",
        execution_id,
        len(events),
    )
    first = last - len(events) + 1
    now = datetime.now(UTC)
    await connection.executemany(
        "INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, task_id, data, "
        "occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (execution_id, first + offset, tenant_id, event.event, event.step_id, event.task_id, event.data, now)
            for offset, event in enumerate(events)
        ],
    )
    return [
        outgoing(
            topic,
            ExecutionEvent(
                tenant_id=tenant_id,
                execution_id=execution_id,
                sequence=first + offset,
                event=event.event,
                step_id=event.step_id,
                task_id=event.task_id,
                data=event.data,
                occurred_at=now,
            ),
        )
        for offset, event in enumerate(events)
    ]
