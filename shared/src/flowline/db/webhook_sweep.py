"""The webhook sweep's data: its cursor through ``execution_events``, and the events it passes there.

The sweep (``flowline_scheduler.webhook_sweep``) reads events in the order (occurred_at, execution_id, sequence)
from a position kept in the single row of ``webhook_sweep``. The row's lock, taken with SKIP LOCKED, is held by
one scheduler's pass at a time: another finds it taken and leaves the window to that one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from flowline.db.sql import bind, typed

# Before every event of a time: a position at it whose execution id and sequence nothing precedes.
BEFORE_ALL = uuid.UUID(int=0), -1


class SweepPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Where the sweep stands: every event before this one, in (occurred_at, execution_id, sequence), is swept."""

    occurred_at: datetime
    execution_id: uuid.UUID
    sequence: int


class SweepWindow(msgspec.Struct, frozen=True, kw_only=True):
    """The events a pass may look at: after ``after`` and before ``until``."""

    after: SweepPosition
    until: datetime
    # Whether ``until`` is the grace's end (now - grace): else it is one span past ``after``, and more is there.
    until_is_grace: bool


class PassedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event the sweep passed; ``data`` only when a webhook that wants its type lacks its delivery."""

    tenant_id: uuid.UUID
    execution_id: uuid.UUID
    sequence: int
    event_type: str
    step_id: str | None
    task_id: uuid.UUID | None
    occurred_at: datetime
    undelivered: bool
    data: dict[str, Any] | None


async def claim_sweep_window(
    connection: asyncpg.Connection, *, grace_seconds: float, lookback_seconds: float, span_seconds: float
) -> SweepWindow | None:
    """Lock the sweep's cursor for the caller's transaction and say what to sweep; None when another pass holds it.

    The window starts at the cursor, or later: never before ``lookback_seconds`` ago nor before the oldest enabled
    webhook was created (no event before it is for anyone). It ends ``grace_seconds`` ago (the events topic
    normally records those deliveries first), or ``span_seconds`` after its start, whichever is sooner.
    """
    record = await connection.fetchrow(
        *bind(
            "SELECT CASE WHEN s.swept_at >= b.since THEN s.swept_at ELSE b.since END AS occurred_at, "
            "CASE WHEN s.swept_at >= b.since THEN s.swept_execution_id ELSE :before_execution END AS execution_id, "
            "CASE WHEN s.swept_at >= b.since THEN s.swept_sequence ELSE :before_sequence END AS sequence, "
            "now() - make_interval(secs => :grace) AS grace_end, "
            "greatest(s.swept_at, b.since) + make_interval(secs => :span) AS span_end "
            "FROM webhook_sweep s, (SELECT greatest(now() - make_interval(secs => :lookback), min(created_at)) "
            "AS since FROM webhooks WHERE enabled) b FOR UPDATE OF s SKIP LOCKED",
            grace=grace_seconds,
            lookback=lookback_seconds,
            span=span_seconds,
            before_execution=BEFORE_ALL[0],
            before_sequence=BEFORE_ALL[1],
        )
    )
    if record is None:
        return None
    after = SweepPosition(
        occurred_at=record["occurred_at"], execution_id=record["execution_id"], sequence=record["sequence"]
    )
    grace_end, span_end = record["grace_end"], record["span_end"]
    return SweepWindow(after=after, until=min(grace_end, span_end), until_is_grace=grace_end <= span_end)


async def list_passed_events(
    connection: asyncpg.Connection,
    window: SweepWindow,
    *,
    tenant_ids: Sequence[uuid.UUID],
    event_types: Sequence[str],
    limit: int,
) -> list[PassedEvent]:
    """The first ``limit`` events of the window of these tenants and types, in the sweep's order.

    An event is ``undelivered`` when an enabled webhook of its tenant, created before it and subscribed to its
    type, has no delivery of it (whether the webhook wants its workflow is the caller's to decide).
    """
    after = window.after
    return typed(
        await connection.fetch(
            *bind(
                "WITH passed AS MATERIALIZED (SELECT e.execution_id, e.sequence FROM execution_events e "
                "WHERE e.occurred_at >= :after_at AND e.occurred_at < :until "
                "AND (e.occurred_at, e.execution_id, e.sequence) > (:after_at, :after_execution, :after_sequence) "
                "AND e.tenant_id = ANY(:tenants::uuid[]) AND e.event_type = ANY(:event_types::text[]) "
                "ORDER BY e.occurred_at, e.execution_id, e.sequence LIMIT :limit), "
                "flagged AS (SELECT e.*, EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled "
                "AND w.tenant_id = e.tenant_id AND e.event_type = ANY(w.events) AND w.created_at <= e.occurred_at "
                "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id "
                "AND d.execution_id = e.execution_id AND d.sequence = e.sequence)) AS undelivered "
                "FROM passed JOIN execution_events e USING (execution_id, sequence)) "
                "SELECT tenant_id, execution_id, sequence, event_type, step_id, task_id, occurred_at, undelivered, "
                "CASE WHEN undelivered THEN data END AS data FROM flagged "
                "ORDER BY occurred_at, execution_id, sequence",
                after_at=after.occurred_at,
                after_execution=after.execution_id,
                after_sequence=after.sequence,
                until=window.until,
                tenants=list(tenant_ids),
                event_types=list(event_types),
                limit=limit,
            )
        ),
        PassedEvent,
    )


async def advance_sweep(connection: asyncpg.Connection, position: SweepPosition) -> None:
    """Move the cursor (locked by ``claim_sweep_window`` in this transaction) to ``position``."""
    await connection.execute(
        *bind(
            "UPDATE webhook_sweep SET swept_at = :at, swept_execution_id = :execution_id, swept_sequence = :sequence",
            at=position.occurred_at,
            execution_id=position.execution_id,
            sequence=position.sequence,
        )
    )
