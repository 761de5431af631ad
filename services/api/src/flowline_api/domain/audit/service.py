"""Reading the audit log: newest first, filtered, with offset or keyset pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from flowline.errors import ClientError
from flowline_schemas.audit import AuditLog
from flowline_schemas.pagination import Page
from litestar.di import NamedDependency

from flowline_api.pagination import decode_cursor, encode_cursor


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """Which audit rows to list; every set field must match. ``since`` is inclusive, ``until`` exclusive."""

    entity_type: str | None = None
    entity_id: str | None = None
    principal: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _aware(moment: datetime) -> datetime:
    """A timestamp without a zone is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_audit_log(record: asyncpg.Record) -> AuditLog:
    """The response body for an ``audit_logs`` row."""
    return AuditLog(
        id=str(record["id"]),
        entity_type=record["entity_type"],
        entity_id=record["entity_id"],
        action=record["action"],
        principal=record["principal"],
        changes=record["changes"],
        request_id=record["request_id"],
        occurred_at=record["occurred_at"],
    )


class AuditService:
    """Reads a tenant's audit log."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list(
        self, tenant_id: uuid.UUID, where: AuditFilter, *, limit: int, offset: int, cursor: str | None
    ) -> Page[AuditLog]:
        """One page of audit rows, newest first.

        Args:
            tenant_id: whose audit log.
            where: the filters.
            limit: rows per page.
            offset: rows to skip (not with ``cursor``).
            cursor: the ``nextCursor`` of the previous page.

        Raises:
            ClientError: a cursor this list did not write, a cursor with an offset, or ``from`` after ``to``.
        """
        conditions = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        for column, value in (
            ("entity_type", where.entity_type),
            ("entity_id", where.entity_id),
            ("principal", where.principal),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        since = _aware(where.since) if where.since else None
        until = _aware(where.until) if where.until else None
        if since and until and since > until:
            raise ClientError("from: must not be later than to")
        if since:
            args.append(since)
            conditions.append(f"occurred_at >= ${len(args)}")
        if until:
            args.append(until)
            conditions.append(f"occurred_at < ${len(args)}")
        count_sql = f"SELECT count(*) FROM audit_logs WHERE {' AND '.join(conditions)}"
        count_args = list(args)
        if cursor is not None:
            if offset:
                raise ClientError("give either offset or cursor, not both")
            key = decode_cursor(cursor, 2)
            try:
                args.extend([datetime.fromisoformat(str(key[0])), uuid.UUID(str(key[1]))])
            except ValueError as err:
                raise ClientError("cursor: not a cursor returned by this list") from err
            conditions.append(f"(occurred_at, id) < (${len(args) - 1}, ${len(args)})")
        args.extend([limit + 1, offset])
        async with self._pool.acquire() as connection:
            total = await connection.fetchval(count_sql, *count_args)
            records = await connection.fetch(
                "SELECT id, entity_type, entity_id, action, principal, changes, request_id, occurred_at "
                f"FROM audit_logs WHERE {' AND '.join(conditions)} "
                f"ORDER BY occurred_at DESC, id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}",
                *args,
            )
        page = records[:limit]
        next_cursor = (
            encode_cursor([page[-1]["occurred_at"].isoformat(), str(page[-1]["id"])])
            if len(records) > limit and page
            else None
        )
        return Page(
            items=[to_audit_log(record) for record in page],
            total=total,
            limit=limit,
            offset=offset,
            next_cursor=next_cursor,
        )


def provide_audit_service(pool: NamedDependency[asyncpg.Pool]) -> AuditService:
    """An audit log reader for this request."""
    return AuditService(pool)
