"""The execution event log: append-only, one sequence per execution, mirrored to the events topic."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg
import msgspec

from flowline.kafka.outbox import OutboxRow, enqueue, outgoing
from flowline.messages import EventType, ExecutionEvent
from flowline.snapshots import Snapshot


class NewEvent(NamedTuple):
    """An event to append; ``data`` is the snapshot a stream subscriber sees."""

    event: EventType
    data: Snapshot
    step_id: str | None = None
    task_id: uuid.UUID | None = None


def event_rows(
    tenant_id: uuid.UUID, execution_id: uuid.UUID, first: int, events: Sequence[NewEvent], topic: str
) -> tuple[datetime, list[object], list[OutboxRow]]:
    """The time, snapshots and outbox rows of ``events`` numbered from ``first``, for a statement to store."""
    now = datetime.now(UTC)
    snapshots = [msgspec.to_builtins(event.data) for event in events]
    rows = [
        outgoing(
            topic,
            ExecutionEvent(
                tenant_id=tenant_id,
                execution_id=execution_id,
                sequence=first + offset,
                event=event.event,
                step_id=event.step_id,
                task_id=event.task_id,
                data=snapshot,
                occurred_at=now,
                timestamp_ms=int(now.timestamp() * 1000),
            ),
        )
        for offset, (event, snapshot) in enumerate(zip(events, snapshots, strict=True))
    ]
    return now, snapshots, rows


async def append_events(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    after_sequence: int,
    events: Sequence[NewEvent],
    topic: str,
    outbox: Sequence[OutboxRow] = (),
) -> list[OutboxRow]:
    """Append ``events`` and enqueue them, with the other ``outbox`` rows, inside the caller's transaction.

    The caller holds the execution row's lock and knows its ``last_event_sequence`` (``after_sequence``;
    0 for an execution created in this transaction), so writers of one execution serialise and the
    sequence has no gaps. The counter, the events and the outbox rows go in one statement: on the hot
    path every round trip to the database counts.

    Returns:
        Every outbox row written (events first), to publish after the commit.

    Raises:
        RuntimeError: ``after_sequence`` is not the execution's last sequence (the caller did not lock it).
    """
    if not events:
        await enqueue(connection, outbox)
        return list(outbox)
    first = after_sequence + 1
    now, snapshots, rows = event_rows(tenant_id, execution_id, first, events, topic)
    rows.extend(outbox)
    sequenced = await connection.fetchval(
        """
        WITH sequenced AS (
            UPDATE executions SET last_event_sequence = $13, updated_at = now()
            WHERE id = $1 AND last_event_sequence = $14
            RETURNING 1
        ), appended AS (
            INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, task_id, data,
                occurred_at)
            SELECT $1, sequence, $2, event_type, step_id, task_id, data, $3
            FROM unnest($4::bigint[], $5::text[], $6::text[], $7::uuid[], $8::jsonb[])
                AS e(sequence, event_type, step_id, task_id, data)
        ), queued AS (
            INSERT INTO outbox (id, topic, key, payload, request_id)
            SELECT * FROM unnest($9::uuid[], $10::text[], $11::bytea[], $12::bytea[], $15::text[])
        )
        SELECT count(*) FROM sequenced
        """,
        execution_id,
        tenant_id,
        now,
        list(range(first, first + len(events))),
        [event.event for event in events],
        [event.step_id for event in events],
        [event.task_id for event in events],
        snapshots,
        [row.id for row in rows],
        [row.topic for row in rows],
        [row.key for row in rows],
        [row.payload for row in rows],
        after_sequence + len(events),
        after_sequence,
        [row.request_id for row in rows],
    )
    if sequenced != 1:
        raise RuntimeError(f"execution {execution_id}: events appended after sequence {after_sequence} out of turn")
    return rows
