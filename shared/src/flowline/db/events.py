"""The execution event log: append-only, one sequence per execution, mirrored to the events topic."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from flowline.db.sql import bind
from flowline.domain.snapshots import Snapshot
from flowline.kafka.outbox import OutboxRow, enqueue, outgoing
from flowline.messages import EventType, ExecutionEvent

# An event says what changed, but an output or promise value near Kafka's message limit (1 MiB by default)
# would have its event refused by the broker: above this size the value stays in its row (the step's or the
# execution's output, the promise's value) and the event carries a marker with its size instead.
MAX_EVENT_VALUE_BYTES = 256 * 1024
_VALUE_FIELDS = ("output", "value")


class NewEvent(NamedTuple):
    """An event to append; ``data`` is the snapshot a stream subscriber sees."""

    event: EventType
    data: Snapshot
    step_id: str | None = None
    task_id: uuid.UUID | None = None


def event_rows(
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    first: int,
    events: Sequence[NewEvent],
    topic: str,
    *,
    occurred_at: datetime | None = None,
) -> tuple[datetime, list[object], list[OutboxRow]]:
    """The time, snapshots and outbox rows of ``events`` numbered from ``first``, for a statement to store.

    The time is now unless ``occurred_at`` (events prepared ahead of the moment they stand for) says otherwise.
    """
    now = occurred_at or datetime.now(UTC)
    snapshots = [_bounded(msgspec.to_builtins(event.data)) for event in events]
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
    stored: list[object] = list(snapshots)
    return now, stored, rows


def _bounded(snapshot: dict[str, Any]) -> dict[str, Any]:
    """``snapshot`` with each value over ``MAX_EVENT_VALUE_BYTES`` (as JSON) replaced by a marker of its size."""
    for field in _VALUE_FIELDS:
        value = snapshot.get(field)
        if isinstance(value, str | list | dict) and (size := len(msgspec.json.encode(value))) > MAX_EVENT_VALUE_BYTES:
            snapshot = {**snapshot, field: {"omitted": "too large for an event: read it from its row", "bytes": size}}
    return snapshot


class ExecutionEnd(NamedTuple):
    """An execution's final status, written by the statement that appends its last events."""

    status: str
    output: Any
    error: dict[str, Any] | None


class Appending(NamedTuple):
    """What appends events and enqueues outbox rows, as CTEs that a caller's statement can carry."""

    ctes: str  # ``sequenced`` (one row when the counter moved), ``appended``, ``queued`` and, with an end, ``ended``
    params: dict[str, Any]  # their named parameters (see ``flowline.db.sql``)
    rows: list[OutboxRow]  # every outbox row, events first, to publish after the commit


# The execution's counter moves from :after_sequence to :last_sequence, or nothing here is written: a statement
# worked out before the execution was locked then applies not at all, nor one whose message named another
# tenant. ``{ending}`` writes more of the row.
_SEQUENCED = """
    sequenced AS (
        UPDATE executions SET last_event_sequence = :last_sequence, updated_at = now(){ending}
        WHERE id = :execution_id AND tenant_id = :tenant_id AND last_event_sequence = :after_sequence
        RETURNING 1
    ), appended AS (
        INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, task_id, data,
            occurred_at)
        SELECT :execution_id, sequence, :tenant_id, event_type, step_id, task_id, data, :occurred_at
        FROM unnest(:event_sequences::bigint[], :event_types::text[], :event_step_ids::text[],
            :event_task_ids::uuid[], :event_data::jsonb[]) AS e(sequence, event_type, step_id, task_id, data)
        WHERE EXISTS (SELECT FROM sequenced)
    ), queued AS (
        INSERT INTO outbox (id, topic, key, payload, request_id)
        SELECT * FROM unnest(:outbox_ids::uuid[], :outbox_topics::text[], :outbox_keys::bytea[],
            :outbox_payloads::bytea[], :outbox_request_ids::text[])
        WHERE EXISTS (SELECT FROM sequenced)
    )"""
# With an end: the execution's final status, and its pending timers (its own timeout, say) cancelled.
_ENDING = ", status = :end_status, output = :end_output, error = :end_error, completed_at = clock_timestamp()"
_ENDED = """, ended AS (
        UPDATE timers SET status = 'cancelled'
        WHERE execution_id = :execution_id AND status = 'pending' AND EXISTS (SELECT FROM sequenced)
    )"""
# With a start: the pending execution started in this change; a status the change set otherwise (failed, say)
# stays, and an end replaces it.
_STARTING = ", started_at = coalesce(started_at, :started_at::timestamptz)"
_RUNNING = ", status = CASE status WHEN 'pending' THEN 'running' ELSE status END"


@functools.cache
def _appending_ctes(*, ends: bool, starts: bool) -> str:
    ending = (_ENDING if ends else "") + (_STARTING if starts else "") + (_RUNNING if starts and not ends else "")
    return _SEQUENCED.replace("{ending}", ending) + (_ENDED if ends else "")


def appending(
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    after_sequence: int,
    events: Sequence[NewEvent],
    topic: str,
    outbox: Sequence[OutboxRow] = (),
    end: ExecutionEnd | None = None,
    started_at: datetime | None = None,
) -> Appending:
    """The CTEs that append ``events`` after ``after_sequence`` and enqueue them with the other ``outbox`` rows.

    With ``end``, the execution's final status is written with its event counter, and its pending timers
    (its own timeout, say) are cancelled. With ``started_at``, the change started the pending execution: it
    becomes running (or its end) in the same update, since each change of its status writes an entry in every
    index of ``executions``. ``events`` must not be empty. Nothing is written unless the counter was at
    ``after_sequence``: a statement worked out before the execution was locked then applies not at all.
    """
    first = after_sequence + 1
    now, snapshots, rows = event_rows(tenant_id, execution_id, first, events, topic)
    rows.extend(outbox)
    params: dict[str, Any] = {
        "execution_id": execution_id,
        "tenant_id": tenant_id,
        "occurred_at": now,
        "event_sequences": list(range(first, first + len(events))),
        "event_types": [event.event for event in events],
        "event_step_ids": [event.step_id for event in events],
        "event_task_ids": [event.task_id for event in events],
        "event_data": snapshots,
        "outbox_ids": [row.id for row in rows],
        "outbox_topics": [row.topic for row in rows],
        "outbox_keys": [row.key for row in rows],
        "outbox_payloads": [row.payload for row in rows],
        "outbox_request_ids": [row.request_id for row in rows],
        "last_sequence": after_sequence + len(events),
        "after_sequence": after_sequence,
    }
    if end is not None:
        params.update(end_status=end.status, end_output=end.output, end_error=end.error)
    if started_at is not None:
        params["started_at"] = started_at
    return Appending(_appending_ctes(ends=end is not None, starts=started_at is not None), params, rows)


def check_sequenced(sequenced: int, execution_id: uuid.UUID, after_sequence: int) -> None:
    """Raise unless the statement moved the execution's event counter (its ``sequenced`` CTE returned a row).

    Raises:
        RuntimeError: ``after_sequence`` was not the execution's last sequence (the caller did not lock it).
    """
    if sequenced != 1:
        raise RuntimeError(f"execution {execution_id}: events appended after sequence {after_sequence} out of turn")


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
    append = appending(
        tenant_id=tenant_id,
        execution_id=execution_id,
        after_sequence=after_sequence,
        events=events,
        topic=topic,
        outbox=outbox,
    )
    sequenced = await connection.fetchval(*bind(f"WITH {append.ctes} SELECT count(*) FROM sequenced", append.params))
    check_sequenced(sequenced, execution_id, after_sequence)
    return append.rows
