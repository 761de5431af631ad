"""Webhooks and their deliveries: stored, listed, derived from state events, claimed, and settled attempt by attempt."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

import asyncpg
import msgspec

from flowline.db.sql import bind, typed
from flowline.errors import NotFound
from flowline.runtime.ids import uuid7

WEBHOOK_COLUMNS = (
    "id, tenant_id, url, events, workflows, description, enabled, disabled_reason, secret_sealed, "
    "previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, webhook_id, event_type, execution_id, status, attempts, last_status_code, last_error, next_attempt_at, "
    "event_at, created_at, delivered_at"
)
Connection: TypeAlias = asyncpg.Connection | asyncpg.Pool


class NewDelivery(NamedTuple):
    """A delivery of one state event to one webhook, to insert."""

    webhook_id: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    execution_id: uuid.UUID
    sequence: int
    payload: dict[str, Any]
    event_at: datetime


class FailureRecorded(NamedTuple):
    """What recording a failed attempt did besides: why its webhook was disabled, if this failure disabled it."""

    disabled_reason: str | None


class ClaimedDelivery(NamedTuple):
    """A delivery claimed for one attempt (its number is ``attempts``), with what sending it needs."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    execution_id: uuid.UUID | None
    sequence: int | None
    payload: dict[str, Any]
    attempts: int
    event_at: datetime
    url: str
    secret_sealed: str
    previous_secret_sealed: str | None


async def create_webhook(connection: Connection, tenant_id: uuid.UUID, values: dict[str, Any]) -> asyncpg.Record:
    """Insert a webhook; ``values`` holds its url, events, workflows, description, enabled and secret_sealed."""
    record: asyncpg.Record = await connection.fetchrow(
        "INSERT INTO webhooks (id, tenant_id, url, events, workflows, description, enabled, secret_sealed) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {WEBHOOK_COLUMNS}",
        uuid7(),
        tenant_id,
        values["url"],
        values["events"],
        values["workflows"],
        values["description"],
        values["enabled"],
        values["secret_sealed"],
    )
    return record


async def read_webhook(
    connection: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    """One webhook of the tenant (locked for the caller's transaction when ``lock``).

    Raises:
        NotFound: no such webhook in this tenant.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2{' FOR UPDATE' if lock else ''}",
        tenant_id,
        webhook_id,
    )
    if record is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    return record


async def list_webhooks(
    connection: Connection, tenant_id: uuid.UUID, *, limit: int, offset: int, after: tuple[datetime, uuid.UUID] | None
) -> tuple[int, list[asyncpg.Record]]:
    """The tenant's webhook count, and up to ``limit + 1`` of them oldest first (after ``after``, a keyset)."""
    total: int = await connection.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant_id)
    keyset = "" if after is None else " AND (created_at, id) > ($4, $5)"
    records = await connection.fetch(
        f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1{keyset} "
        "ORDER BY created_at, id LIMIT $2 OFFSET $3",
        tenant_id,
        limit + 1,
        offset,
        *(after or ()),
    )
    return total, list(records)


async def update_webhook(
    connection: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID, values: dict[str, Any]
) -> asyncpg.Record:
    """Set the columns named in ``values`` (column names, never user input) and ``updated_at``."""
    assignments = ", ".join(f"{column} = ${index}" for index, column in enumerate(values, start=3))
    record: asyncpg.Record = await connection.fetchrow(
        f"UPDATE webhooks SET {assignments}, updated_at = now() WHERE tenant_id = $1 AND id = $2 "
        f"RETURNING {WEBHOOK_COLUMNS}",
        tenant_id,
        webhook_id,
        *values.values(),
    )
    return record


async def delete_webhook(connection: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> asyncpg.Record:
    """Delete a webhook and its deliveries.

    Raises:
        NotFound: no such webhook in this tenant.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        f"DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}", tenant_id, webhook_id
    )
    if record is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    return record


class EnabledWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """An enabled webhook as deriving deliveries sees it: whose it is, what it is subscribed to, and since when."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    events: list[str]
    workflows: list[str] | None
    created_at: datetime


class EventSubject(msgspec.Struct, frozen=True, kw_only=True):
    """The execution a state event is about, as a delivery's body names it."""

    id: uuid.UUID
    workflow_ref: str
    workflow_version: int
    started_by: str | None


async def enabled_webhooks(
    connection: Connection, tenant_ids: Sequence[uuid.UUID] | None = None
) -> list[EnabledWebhook]:
    """The enabled webhooks of these tenants (None: of every tenant)."""
    return typed(
        await connection.fetch(
            *bind(
                "SELECT id, tenant_id, events, workflows, created_at FROM webhooks "
                "WHERE enabled AND (:tenants::uuid[] IS NULL OR tenant_id = ANY(:tenants::uuid[]))",
                tenants=None if tenant_ids is None else list(tenant_ids),
            )
        ),
        EnabledWebhook,
    )


async def list_event_subjects(
    connection: Connection, execution_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, EventSubject]:
    """These executions (those that still exist), by id."""
    subjects = typed(
        await connection.fetch(
            *bind(
                "SELECT id, workflow_ref, workflow_version, started_by FROM executions WHERE id = ANY(:ids::uuid[])",
                ids=list(execution_ids),
            )
        ),
        EventSubject,
    )
    return {subject.id: subject for subject in subjects}


async def insert_deliveries(connection: Connection, deliveries: Sequence[NewDelivery]) -> int:
    """Insert deliveries due now, each once: one already there for its webhook and event is left as it is.

    A delivery of a webhook disabled meanwhile is not due (``next_attempt_at`` null) until it is enabled again.

    Returns:
        How many were new.
    """
    if not deliveries:
        return 0
    columns = list(zip(*deliveries, strict=True))
    inserted: int = await connection.fetchval(
        "WITH added AS (INSERT INTO webhook_deliveries "
        "(id, webhook_id, tenant_id, event_type, execution_id, sequence, payload, event_at, next_attempt_at) "
        "SELECT d.id, webhook_id, d.tenant_id, event_type, execution_id, sequence, payload, event_at, "
        "CASE WHEN w.enabled THEN now() END "
        "FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::bigint[], $7::jsonb[], "
        "$8::timestamptz[]) AS d(id, webhook_id, tenant_id, event_type, execution_id, sequence, payload, event_at) "
        "JOIN webhooks w ON w.id = d.webhook_id ORDER BY execution_id, sequence "
        "ON CONFLICT (webhook_id, execution_id, sequence) DO NOTHING RETURNING 1) SELECT count(*) FROM added",
        [uuid7() for _ in deliveries],
        *(list(column) for column in columns),
    )
    return inserted


async def insert_test_delivery(
    connection: Connection, webhook: asyncpg.Record, payload: dict[str, Any], event_type: str
) -> asyncpg.Record:
    """A delivery of no state event (``webhook.test``), due now (once enabled, for a disabled webhook)."""
    record: asyncpg.Record = await connection.fetchrow(
        "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_type, payload, event_at, next_attempt_at) "
        "VALUES ($1, $2, $3, $4, $5, now(), CASE WHEN $6 THEN now() END) "
        f"RETURNING {DELIVERY_COLUMNS}",
        uuid7(),
        webhook["id"],
        webhook["tenant_id"],
        event_type,
        payload,
        webhook["enabled"],
    )
    return record


async def claim_due_deliveries(
    connection: Connection,
    limit: int,
    lease_seconds: float,
    *,
    per_webhook: int,
    in_flight: Mapping[uuid.UUID, int] | None = None,
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries of enabled webhooks for one attempt each.

    A delivery waits while an earlier event of its execution is still pending for the same webhook, so each
    webhook hears of an execution's events in order. A claim moves ``next_attempt_at`` a lease ahead: should
    the attempt's outcome never be recorded (the process died), the delivery comes due again then. A webhook
    gets at most ``per_webhook`` deliveries less those it has ``in_flight`` (by webhook id), so that a slow
    receiver holding its share leaves the rest of the room to the others.

    Only the head of the due index is looked at (``head``), so a claim costs the same with a backlog of
    millions; what waits there is rare and short: a disabled webhook's deliveries are not due, a failed
    attempt moves the later events of its execution behind its own next attempt (``record_failure``), and
    the deliveries of a webhook with no room left are not in it.
    """
    in_flight = in_flight or {}
    records = await connection.fetch(
        *bind(
            # Plans that hold whatever the table's statistics say (they are often of a moment when it was nearly
            # empty, or all pending): the head reads the due index in its order and stops at its limit (ORDER
            # BY it; LIMIT); the earlier-event check is a probe of the unique index per head row (OFFSET 0 keeps
            # it a subplan: as an anti-join it could be a hash of every pending row).
            "WITH busy AS (SELECT * FROM unnest(:busy_webhook_id::uuid[], :busy_room::int[]) AS b(webhook_id, room)), "
            "head AS MATERIALIZED (SELECT id, webhook_id, execution_id, sequence, next_attempt_at "
            "FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
            "AND webhook_id <> ALL(:full_webhook_id::uuid[]) ORDER BY next_attempt_at LIMIT :limit * 4 + 100), "
            "eligible AS (SELECT head.id, head.next_attempt_at, row_number() OVER (PARTITION BY head.webhook_id "
            "ORDER BY head.next_attempt_at, head.id) AS place, coalesce(b.room, :per_webhook) AS room FROM head "
            "JOIN webhooks w ON w.id = head.webhook_id AND w.enabled "
            "LEFT JOIN busy b ON b.webhook_id = head.webhook_id "
            "WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = head.webhook_id "
            "AND e.execution_id = head.execution_id AND e.sequence < head.sequence AND e.status = 'pending' "
            "OFFSET 0)), "
            "due AS (SELECT d.id FROM eligible JOIN webhook_deliveries d ON d.id = eligible.id "
            "WHERE eligible.place <= eligible.room AND d.status = 'pending' AND d.next_attempt_at <= now() "
            "ORDER BY eligible.next_attempt_at, eligible.id LIMIT :limit FOR UPDATE OF d SKIP LOCKED) "
            "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, "
            "next_attempt_at = now() + make_interval(secs => :lease_seconds) FROM due, webhooks w "
            "WHERE d.id = due.id AND w.id = d.webhook_id RETURNING d.id, d.webhook_id, d.tenant_id, d.event_type, "
            "d.execution_id, d.sequence, d.payload, d.attempts, d.event_at, w.url, w.secret_sealed, "
            "CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_sealed END "
            "AS previous_secret_sealed",
            limit=limit,
            lease_seconds=float(lease_seconds),
            per_webhook=per_webhook,
            busy_webhook_id=[webhook_id for webhook_id, count in in_flight.items() if count < per_webhook],
            busy_room=[per_webhook - count for count in in_flight.values() if count < per_webhook],
            full_webhook_id=[webhook_id for webhook_id, count in in_flight.items() if count >= per_webhook],
        )
    )
    return [ClaimedDelivery(**dict(record)) for record in records]


async def read_next_delivery_due(connection: Connection) -> float | None:
    """Seconds until the earliest pending delivery is due, by PostgreSQL's clock (negative: due); None: none is."""
    due_in: float | None = await connection.fetchval(
        "SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8 FROM webhook_deliveries "
        "WHERE status = 'pending'"
    )
    return due_in


async def list_webhook_tenants(connection: Connection) -> frozenset[uuid.UUID]:
    """The tenants that have an enabled webhook."""
    records = await connection.fetch("SELECT DISTINCT tenant_id FROM webhooks WHERE enabled")
    return frozenset(record["tenant_id"] for record in records)


async def record_successes(
    connection: Connection, delivered: Sequence[tuple[ClaimedDelivery, int]]
) -> dict[uuid.UUID, datetime]:
    """Mark claimed attempts delivered (with the status code each got), and their webhooks no longer failing.

    Returns:
        When each was delivered, by delivery id; a delivery whose claim had been lost (another attempt has it)
        is not there.
    """
    ordered = sorted(delivered, key=lambda item: item[0].id)  # one lock order for every batch
    records = await connection.fetch(
        "WITH done AS (UPDATE webhook_deliveries d SET status = 'succeeded', delivered_at = now(), "
        "last_status_code = s.status_code, last_error = NULL, next_attempt_at = NULL "
        "FROM unnest($1::uuid[], $2::int[], $3::int[]) AS s(id, attempts, status_code) "
        "WHERE d.id = ANY($1::uuid[]) AND d.id = s.id AND d.attempts = s.attempts AND d.status = 'pending' "
        "RETURNING d.id, d.webhook_id, d.delivered_at), "
        "healthy AS (UPDATE webhooks SET failing_since = NULL WHERE id IN (SELECT webhook_id FROM done) "
        "AND failing_since IS NOT NULL) SELECT id, delivered_at FROM done",
        [delivery.id for delivery, _ in ordered],
        [delivery.attempts for delivery, _ in ordered],
        [status_code for _, status_code in ordered],
    )
    return {record["id"]: record["delivered_at"] for record in records}


class FailedAttempt(NamedTuple):
    """A claimed attempt that failed: due again in ``retry_in`` seconds, or failed for good when it is None."""

    delivery: ClaimedDelivery
    status_code: int | None
    error: str
    retry_in: float | None


async def record_failures(
    connection: asyncpg.Connection, failed: Sequence[FailedAttempt], *, disable_after_seconds: float
) -> dict[uuid.UUID, FailureRecorded]:
    """Record failed attempts, a few statements for the whole batch (in the caller's transaction).

    An execution's later events wait behind a retried delivery's next attempt. A webhook counts as failing from
    its first failure after a success; failing for ``disable_after_seconds`` (when positive) disables it, with
    the last error of the batch in its reason, and takes its due deliveries out of the due index.

    Returns:
        By delivery id, what was recorded (the reason its webhook was disabled, told with one of its deliveries);
        a delivery whose claim had been lost (another attempt has it) is not there, and nothing of it changed.
    """
    ordered = sorted(failed, key=lambda attempt: attempt.delivery.id)  # one lock order for every batch
    settled = await connection.fetch(
        "UPDATE webhook_deliveries d SET status = CASE WHEN f.retry_in IS NULL THEN 'failed' ELSE 'pending' END, "
        "last_status_code = f.status_code, last_error = f.error, "
        "next_attempt_at = now() + make_interval(secs => f.retry_in) "
        "FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::float8[]) "
        "AS f(id, attempts, status_code, error, retry_in) "
        "WHERE d.id = ANY($1::uuid[]) AND d.id = f.id AND d.attempts = f.attempts AND d.status = 'pending' "
        "RETURNING d.id, d.webhook_id, d.execution_id, d.sequence, d.next_attempt_at",
        [attempt.delivery.id for attempt in ordered],
        [attempt.delivery.attempts for attempt in ordered],
        [attempt.status_code for attempt in ordered],
        [attempt.error for attempt in ordered],
        [attempt.retry_in for attempt in ordered],
    )
    if not settled:
        return {}
    retried = [row for row in settled if row["next_attempt_at"] is not None and row["execution_id"] is not None]
    if retried:
        # The executions' later events wait for these: out of the head of the due index meanwhile.
        await connection.execute(
            "UPDATE webhook_deliveries e SET next_attempt_at = r.next_attempt_at "
            "FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::timestamptz[]) "
            "AS r(webhook_id, execution_id, sequence, next_attempt_at) "
            "WHERE e.webhook_id = r.webhook_id AND e.execution_id = r.execution_id AND e.sequence > r.sequence "
            "AND e.status = 'pending' AND e.next_attempt_at < r.next_attempt_at",
            [row["webhook_id"] for row in retried],
            [row["execution_id"] for row in retried],
            [row["sequence"] for row in retried],
            [row["next_attempt_at"] for row in retried],
        )
    last_errors = {attempt.delivery.webhook_id: attempt.error for attempt in failed}  # in the order they came
    webhook_ids = sorted({row["webhook_id"] for row in settled})
    disabled = await connection.fetch(
        # Each webhook locked once, in id order, and written only when it starts failing or is disabled.
        "WITH judged AS (SELECT w.id, r.error, w.failing_since IS NULL AS starts, w.enabled AND $4::float8 > 0 "
        "AND w.failing_since IS NOT NULL AND w.failing_since <= now() - make_interval(secs => $4::float8) "
        "AS disables FROM webhooks w JOIN unnest($1::uuid[], $2::text[]) AS r(id, error) ON r.id = w.id "
        "ORDER BY w.id FOR UPDATE OF w) "
        "UPDATE webhooks w SET failing_since = coalesce(w.failing_since, now()), "
        "enabled = w.enabled AND NOT j.disables, "
        "disabled_reason = CASE WHEN j.disables THEN 'disabled automatically: every delivery failed for ' "
        "|| $3::text || ' s; last error: ' || j.error ELSE w.disabled_reason END, "
        "updated_at = CASE WHEN j.disables THEN now() ELSE w.updated_at END "
        "FROM judged j WHERE w.id = j.id AND (j.starts OR j.disables) RETURNING w.id, w.disabled_reason, j.disables",
        webhook_ids,
        [last_errors[webhook_id] for webhook_id in webhook_ids],
        f"{disable_after_seconds:g}",
        disable_after_seconds,
    )
    reasons: dict[uuid.UUID, str] = {row["id"]: row["disabled_reason"] for row in disabled if row["disables"]}
    if reasons:
        await connection.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = NULL "
            "WHERE webhook_id = ANY($1::uuid[]) AND status = 'pending' AND next_attempt_at <= now()",
            list(reasons),
        )
    # A webhook's disabling is told with one of its deliveries only.
    told = {row["webhook_id"]: row["id"] for row in settled if row["webhook_id"] in reasons}
    return {
        row["id"]: FailureRecorded(reasons[row["webhook_id"]] if told.get(row["webhook_id"]) == row["id"] else None)
        for row in settled
    }


async def set_deliveries_due(connection: Connection, webhook_id: uuid.UUID, *, due: bool) -> None:
    """Take a disabled webhook's pending deliveries out of the due index, or make them due now when it is enabled.

    Attempts in flight keep their lease; their outcome sets their own next attempt.
    """
    if due:
        await connection.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() "
            "WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at IS NULL",
            webhook_id,
        )
    else:
        await connection.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = NULL "
            "WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at <= now()",
            webhook_id,
        )


async def list_deliveries(
    connection: Connection,
    webhook_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    offset: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> tuple[int, list[asyncpg.Record]]:
    """A webhook's delivery count (of ``status``, if given) and up to ``limit + 1`` of them, newest first."""
    where = "webhook_id = $1 AND ($2::text IS NULL OR status = $2)"
    total: int = await connection.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {where}", webhook_id, status)
    keyset = "" if before is None else " AND (created_at, id) < ($5, $6)"
    records = await connection.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {where}{keyset} "
        "ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
        webhook_id,
        status,
        limit + 1,
        offset,
        *(before or ()),
    )
    return total, list(records)


async def delete_settled_deliveries(connection: Connection, older_than_seconds: float, limit: int) -> int:
    """Delete up to ``limit`` succeeded or failed deliveries created more than ``older_than_seconds`` ago.

    Returns:
        How many were deleted.
    """
    deleted: int = await connection.fetchval(
        "WITH gone AS (DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
        "WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT $2) "
        # Checked again on the row itself: a retry may have made it pending meanwhile.
        "AND status <> 'pending' RETURNING 1) "
        "SELECT count(*) FROM gone",
        older_than_seconds,
        limit,
    )
    return deleted


async def retry_delivery(connection: Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> asyncpg.Record:
    """Make a delivery pending and due now, whatever its status: one more attempt (more if retries remain).

    A disabled webhook's delivery becomes due when the webhook is enabled again.

    Raises:
        NotFound: the webhook has no such delivery.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        "UPDATE webhook_deliveries SET status = 'pending', delivered_at = NULL, "
        "next_attempt_at = CASE WHEN (SELECT enabled FROM webhooks WHERE id = $1) THEN now() END "
        f"WHERE webhook_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}",
        webhook_id,
        delivery_id,
    )
    if record is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    return record
