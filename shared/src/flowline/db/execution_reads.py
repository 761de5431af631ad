"""Execution reads: one execution, filtered lists and their counts, steps, events, children and attempts."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import asyncpg

from flowline.db.sql import bind
from flowline.errors import NotFound

ExecutionSort = Literal["created_at", "completed_at"]
# Unfinished executions sort as if they completed at infinity: after every finished one in ascending order,
# first in descending order. One expression index serves both directions and keyset pages stay plain row
# comparisons (a nullable sort key would need OR conditions that no index can start from).
SORT_EXPRESSIONS: dict[ExecutionSort, str] = {
    "created_at": "e.created_at",
    "completed_at": "coalesce(e.completed_at, 'infinity'::timestamptz)",
}
SUMMARY_COLUMNS = """
    e.id, e.workflow_ref, e.workflow_version, e.status, e.error, e.triggered_by, e.started_by, e.parent_execution_id,
    e.parent_step_id, e.root_execution_id, e.idempotency_key, e.metadata, e.tags, e.created_at, e.started_at,
    e.completed_at, e.cancelled_at, e.cancelled_by, e.rerun_of, e.schedule_id, e.scheduled_for
"""
# Counting every match of a broad filter over a million executions costs more than the page itself: past
# this many, a list reports the planner's estimate instead (and says so).
COUNT_CAP = 1_000
_HEX_PREFIX = re.compile(r"^[0-9a-f]{1,32}$")
_UUID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


@dataclass(frozen=True, slots=True)
class ExecutionFilters:
    """What an execution list keeps; every given filter must hold.

    ``statuses``: any of them; ``tags``: all of them; ``metadata``: every key with exactly that value;
    ``search``: an execution id starting with it, or a workflow ref containing it (case-insensitive).
    """

    workflow: str | None = None
    statuses: list[str] | None = None
    triggered_by: str | None = None
    started_by: str | None = None
    parent_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tags: list[str] | None = None
    metadata: dict[str, str] | None = None
    search: str | None = None
    search_refs: list[str] | None = None  # the workflow refs containing ``search`` (``resolve_search``)
    # Only executions this principal owns, or of a public workflow (None: all, as an admin sees them).
    visible_to: str | None = None


async def resolve_search(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, filters: ExecutionFilters
) -> ExecutionFilters:
    """``filters`` with ``search_refs``: the refs of this tenant's workflows (deleted ones too) holding ``search``."""
    if not filters.search:
        return filters
    refs = await connection.fetch(
        "SELECT DISTINCT ref FROM workflows WHERE tenant_id = $1 AND ref ILIKE $2",
        tenant_id,
        f"%{_escape_like(filters.search)}%",
    )
    return replace(filters, search_refs=[record["ref"] for record in refs])


def id_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The range of UUIDs whose text starts with ``text`` (with its hyphens, or none), or None when none can.

    UUIDs compare byte by byte, in the order of their hex text, so a prefix is a range of the primary key.
    """
    text = text.strip().lower()
    canonical = "-" in text and len(text) <= len(_UUID_SHAPE)
    if canonical and not all((char == "-") == (shape == "-") for char, shape in zip(text, _UUID_SHAPE, strict=False)):
        return None
    digits = text.replace("-", "") if canonical else text
    if not _HEX_PREFIX.match(digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(tenant_id: uuid.UUID, filters: ExecutionFilters) -> tuple[list[str], list[Any]]:
    """The conditions of a filtered list and their arguments ($1 is the tenant)."""
    conditions = ["e.tenant_id = $1"]
    arguments: list[Any] = [tenant_id]

    def argument(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments)}"

    if filters.workflow is not None:
        conditions.append(f"e.workflow_ref = {argument(filters.workflow)}")
    if filters.statuses:
        if len(filters.statuses) == 1:
            conditions.append(f"e.status = {argument(filters.statuses[0])}")
        else:
            conditions.append(f"e.status = ANY({argument(filters.statuses)}::text[])")
    if filters.triggered_by is not None:
        conditions.append(f"e.triggered_by = {argument(filters.triggered_by)}")
    if filters.started_by is not None:
        conditions.append(f"e.started_by = {argument(filters.started_by)}")
    if filters.parent_id is not None:
        conditions.append(f"e.parent_execution_id = {argument(filters.parent_id)}")
    if filters.schedule_id is not None:
        conditions.append(f"e.schedule_id = {argument(filters.schedule_id)}")
    if filters.created_after is not None:
        conditions.append(f"e.created_at >= {argument(filters.created_after)}")
    if filters.created_before is not None:
        conditions.append(f"e.created_at < {argument(filters.created_before)}")
    if filters.tags:
        conditions.append(f"e.tags @> {argument(filters.tags)}::text[]")
    if filters.metadata:
        conditions.append(f"e.metadata @> {argument(filters.metadata)}::jsonb")
    if filters.visible_to is not None:
        conditions.append(
            f"(e.owned_by = {argument(filters.visible_to)} "
            "OR e.workflow_id IN (SELECT w.id FROM workflows w WHERE w.tenant_id = $1 AND w.public))"
        )
    if filters.search:
        # The refs are looked up first (``resolve_search``) so that the planner sees real values: behind an
        # opaque subquery it guesses a fifth of the table and walks all of it.
        matches = []
        if filters.search_refs:
            matches.append(f"e.workflow_ref = ANY({argument(filters.search_refs)}::text[])")
        bounds = id_prefix_range(filters.search)
        if bounds is not None:
            matches.append(f"e.id BETWEEN {argument(bounds[0])} AND {argument(bounds[1])}")
        conditions.append(f"({' OR '.join(matches)})" if matches else "false")
    return conditions, arguments


def list_executions_query(
    tenant_id: uuid.UUID,
    filters: ExecutionFilters,
    *,
    sort: ExecutionSort,
    descending: bool,
    limit: int,
    offset: int,
    after: tuple[datetime | None, uuid.UUID] | None,
) -> tuple[str, list[Any]]:
    """The SQL of one page of executions and its arguments (separate so that tests can EXPLAIN it).

    ``after`` is the sort value and id of the last item of the previous page (None for an unfinished
    execution when sorting by completion).
    """
    # Several statuses by creation: one ordered index range per status, merged. A single `status = ANY(…)` scan
    # cannot return rows in creation order, and the planner's alternatives (sort every match, or walk the
    # whole tenant filtering) cost hundreds of milliseconds at a million executions.
    merge = sort == "created_at" and filters.statuses is not None and len(filters.statuses) > 1
    conditions, arguments = _where(tenant_id, replace(filters, statuses=None) if merge else filters)
    key = SORT_EXPRESSIONS[sort]
    direction = "DESC" if descending else "ASC"
    if after is not None:
        arguments.extend(after)
        comparison = "<" if descending else ">"
        value = f"${len(arguments) - 1}::timestamptz"
        if sort == "completed_at":
            value = f"coalesce({value}, 'infinity'::timestamptz)"
        conditions.append(f"({key}, e.id) {comparison} ({value}, ${len(arguments)})")
    arguments.extend([limit, offset])
    limit_at, offset_at = len(arguments) - 1, len(arguments)
    limit_offset = f"LIMIT ${limit_at} OFFSET ${offset_at}"
    order_by = f"ORDER BY {key} {direction}, e.id {direction}"
    where = " AND ".join(conditions)
    if not merge:
        query = f"SELECT {SUMMARY_COLUMNS} FROM executions e WHERE {where}"
        if filters.search and not filters.search_refs and id_prefix_range(filters.search):
            # An id prefix matches few executions, but the planner cannot tell how few and would walk the whole
            # tenant in creation order looking for them: OFFSET 0 makes it find the matches first (by the
            # primary key), then sort them.
            query = f"SELECT * FROM ({query} OFFSET 0) e"
        return f"{query} {order_by} {limit_offset}", arguments
    branches = []
    for status in filters.statuses or []:
        arguments.append(status)
        branches.append(
            f"(SELECT {SUMMARY_COLUMNS} FROM executions e WHERE {where} AND e.status = ${len(arguments)} "
            f"{order_by} LIMIT ${limit_at}::bigint + ${offset_at}::bigint)"
        )
    query = f"SELECT * FROM ({' UNION ALL '.join(branches)}) e {order_by} {limit_offset}"
    return query, arguments


def count_executions_query(
    tenant_id: uuid.UUID, filters: ExecutionFilters, *, cap: int | None = COUNT_CAP
) -> tuple[str, list[Any]]:
    """The SQL counting the matches of a filtered list (up to ``cap + 1`` of them), and its arguments."""
    query, arguments = matches_query(tenant_id, filters)
    if cap is not None:
        query = f"{query} LIMIT {int(cap) + 1}"
    return f"SELECT count(*) FROM ({query}) m", arguments


def matches_query(tenant_id: uuid.UUID, filters: ExecutionFilters) -> tuple[str, list[Any]]:
    """The SQL selecting one row per match of a filtered list, and its arguments."""
    conditions, arguments = _where(tenant_id, filters)
    return f"SELECT 1 FROM executions e WHERE {' AND '.join(conditions)}", arguments


def matching_ids_query(
    tenant_id: uuid.UUID, filters: ExecutionFilters, *, after: uuid.UUID | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL selecting the ids of the next ``limit`` matches of a filtered list after id ``after``, in id order."""
    conditions, arguments = _where(tenant_id, filters)
    if after is not None:
        arguments.append(after)
        conditions.append(f"e.id > ${len(arguments)}")
    arguments.append(limit)
    return (
        f"SELECT e.id FROM executions e WHERE {' AND '.join(conditions)} ORDER BY e.id LIMIT ${len(arguments)}",
        arguments,
    )


async def list_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: ExecutionFilters,
    *,
    sort: ExecutionSort,
    descending: bool,
    limit: int,
    offset: int,
    after: tuple[datetime | None, uuid.UUID] | None = None,
) -> list[asyncpg.Record]:
    """One page of executions (without input and output), after the keyset ``after`` when given."""
    query, arguments = list_executions_query(
        tenant_id, filters, sort=sort, descending=descending, limit=limit, offset=offset, after=after
    )
    records: list[asyncpg.Record] = await connection.fetch(query, *arguments)
    return records


async def count_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: ExecutionFilters,
    *,
    cap: int = COUNT_CAP,
) -> tuple[int, bool]:
    """How many executions match ``filters``, and whether that is exact.

    Up to ``cap`` matches are counted; past it the answer is PostgreSQL's estimate (at least ``cap + 1``),
    so that a broad filter over millions of executions stays as fast as its page.
    """
    query, arguments = count_executions_query(tenant_id, filters, cap=cap)
    count: int = await connection.fetchval(query, *arguments)
    if count <= cap:
        return count, True
    query, arguments = matches_query(tenant_id, filters)
    plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *arguments)
    if isinstance(plan, str):
        plan = json.loads(plan)
    return max(int(plan[0]["Plan"]["Plan Rows"]), cap + 1), False


async def read_execution(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> asyncpg.Record:
    """An execution of this tenant, every column.

    Raises:
        NotFound: no such execution in this tenant (another tenant's looks the same).
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        "SELECT * FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
    )
    if record is None:
        raise NotFound(f"execution {execution_id} does not exist")
    return record


async def execution_exists(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> None:
    """Nothing when the execution is this tenant's.

    Raises:
        NotFound: no such execution in this tenant.
    """
    if not await connection.fetchval(
        "SELECT 1 FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
    ):
        raise NotFound(f"execution {execution_id} does not exist")


STEP_COLUMNS = """
    s.id, s.execution_id, s.step_id, s.step_type, s.status, s.generation, s.attempts, s.input, s.output, s.error,
    s.created_at, s.scheduled_at, s.started_at, s.completed_at
"""


async def list_step_executions(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> list[asyncpg.Record]:
    """The step executions of an execution, in definition order."""
    records: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {STEP_COLUMNS} FROM step_executions s WHERE s.execution_id = $1 AND s.tenant_id = $2 "
        "ORDER BY s.position",
        execution_id,
        tenant_id,
    )
    return records


async def count_step_statuses(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> dict[str, int]:
    """How many step executions of an execution are in each status (no step row leaves the database)."""
    records = await connection.fetch(
        *bind(
            "SELECT status, count(*) AS steps FROM step_executions "
            "WHERE execution_id = :execution_id AND tenant_id = :tenant_id GROUP BY status",
            execution_id=execution_id,
            tenant_id=tenant_id,
        )
    )
    return {record["status"]: record["steps"] for record in records}


# Each step row finds its span by a binary search on the spans' first places (width_bucket), and counts if it lies
# at or before that span's last place: one pass over the execution's rows, however many spans.
_COUNT_IN_SPANS = """
SELECT k.key, c.status, sum(c.steps)::int AS steps FROM (
    SELECT width_bucket(s.position, :firsts::int[]) AS span, s.status, count(*) AS steps FROM step_executions s
    WHERE s.execution_id = :execution_id AND s.tenant_id = :tenant_id
        AND s.position <= (:lasts::int[])[width_bucket(s.position, :firsts::int[])]
    GROUP BY 1, 2
) c JOIN unnest(:keys::text[]) WITH ORDINALITY AS k(key, span) ON k.span = c.span
GROUP BY k.key, c.status
"""


async def count_step_statuses_in_spans(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    spans: Sequence[tuple[int, int, str]],
) -> dict[str, dict[str, int]]:
    """How many step executions are in each status, per key, counting each step under the key of its span.

    ``spans`` are ``(first, last, key)``, none overlapping: the steps at positions ``first`` to ``last`` (their
    places in the definition) count under ``key``, such as the fan-out they belong to; a key may have several
    spans. A fan-out of 5,000 branches is one span, not 5,000 ids to send.
    """
    if not spans:
        return {}
    ordered = sorted(spans)
    records = await connection.fetch(
        *bind(
            _COUNT_IN_SPANS,
            firsts=[first for first, _, _ in ordered],
            lasts=[last for _, last, _ in ordered],
            keys=[key for _, _, key in ordered],
            execution_id=execution_id,
            tenant_id=tenant_id,
        )
    )
    counted: dict[str, dict[str, int]] = {}
    for record in records:
        counted.setdefault(record["key"], {})[record["status"]] = record["steps"]
    return counted


async def list_named_step_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    step_ids: Sequence[str],
) -> list[asyncpg.Record]:
    """The step executions of the steps ``step_ids`` names (those the execution reached), in definition order."""
    records: list[asyncpg.Record] = await connection.fetch(
        *bind(
            f"SELECT {STEP_COLUMNS} FROM step_executions s WHERE s.execution_id = :execution_id "
            "AND s.tenant_id = :tenant_id AND s.step_id = ANY(:step_ids::text[]) ORDER BY s.position",
            execution_id=execution_id,
            tenant_id=tenant_id,
            step_ids=list(step_ids),
        )
    )
    return records


async def list_step_executions_in(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    *,
    statuses: Sequence[str],
    after_position: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` step executions in one of ``statuses``, in definition order after ``after_position``.

    Each record carries its ``position``: the next page starts after the last one's.
    """
    records: list[asyncpg.Record] = await connection.fetch(
        *bind(
            f"SELECT {STEP_COLUMNS}, s.position FROM step_executions s WHERE s.execution_id = :execution_id "
            "AND s.tenant_id = :tenant_id AND s.status = ANY(:statuses::text[]) AND s.position > :after "
            "ORDER BY s.position LIMIT :limit",
            execution_id=execution_id,
            tenant_id=tenant_id,
            statuses=list(statuses),
            after=after_position,
            limit=limit,
        )
    )
    return records


async def read_step_execution(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, task_id: uuid.UUID
) -> asyncpg.Record:
    """One step execution (a task) of this tenant, with its execution's workflow ref.

    Raises:
        NotFound: no such task in this tenant.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {STEP_COLUMNS}, e.workflow_ref FROM step_executions s JOIN executions e ON e.id = s.execution_id "
        "WHERE s.id = $1 AND s.tenant_id = $2",
        task_id,
        tenant_id,
    )
    if record is None:
        raise NotFound(f"task {task_id} does not exist")
    return record


async def list_execution_events(
    connection: asyncpg.Connection | asyncpg.Pool,
    execution_id: uuid.UUID,
    *,
    since_sequence: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` events of an execution with a sequence above ``since_sequence``, in order."""
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT sequence, event_type, step_id, task_id, data, occurred_at FROM execution_events "
        "WHERE execution_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        execution_id,
        since_sequence,
        limit,
    )
    return records


# Whether the execution ``e`` is visible to the principal whose subject is ``$3`` (NULL: an admin, who sees
# all): it owns it, or its workflow is public. The rule of ``require_visible`` and of ``visible_to``.
VISIBLE_TO = (
    "($3::text IS NULL OR e.owned_by = $3 "
    "OR EXISTS (SELECT 1 FROM workflows w WHERE w.id = e.workflow_id AND w.public))"
)


async def list_child_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    visible_to: str | None = None,
) -> list[asyncpg.Record]:
    """The executions started by the workflow steps of an execution, oldest first.

    Only those ``visible_to`` may see (None: all, as an admin sees them).
    """
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT e.id, e.workflow_ref, e.parent_step_id, e.status, e.created_at, e.completed_at FROM executions e "
        f"WHERE e.parent_execution_id = $1 AND e.tenant_id = $2 AND {VISIBLE_TO} ORDER BY e.created_at, e.id",
        execution_id,
        tenant_id,
        visible_to,
    )
    return records


async def list_visible_tree(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    visible_to: str | None = None,
) -> list[asyncpg.Record]:
    """An execution and its descendants that ``visible_to`` may see (None: all), oldest first.

    The walk stops at a descendant the principal may not see: what is below it is left out too, so a hidden
    child does not show through its own children. The execution itself is included as it is (its route checks
    that the caller may see it); an empty list when it is not this tenant's.
    """
    records: list[asyncpg.Record] = await connection.fetch(
        "WITH RECURSIVE tree AS (SELECT id, created_at, status, last_event_sequence FROM executions "
        "WHERE id = $1 AND tenant_id = $2 "
        "UNION ALL SELECT e.id, e.created_at, e.status, e.last_event_sequence FROM executions e "
        f"JOIN tree t ON e.parent_execution_id = t.id WHERE e.tenant_id = $2 AND {VISIBLE_TO}) "
        "SELECT id, status, last_event_sequence FROM tree ORDER BY created_at, id",
        execution_id,
        tenant_id,
        visible_to,
    )
    return records


async def execution_visible(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID, visible_to: str | None
) -> bool:
    """Whether this tenant's execution exists and ``visible_to`` may see it (None: an admin, who sees all)."""
    visible: bool | None = await connection.fetchval(
        f"SELECT {VISIBLE_TO} FROM executions e WHERE e.id = $1 AND e.tenant_id = $2",
        execution_id,
        tenant_id,
        visible_to,
    )
    return bool(visible)


async def read_event_sequence(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> int:
    """The sequence of this tenant's execution's last event (0: none yet, or no such execution)."""
    sequence: int | None = await connection.fetchval(
        "SELECT last_event_sequence FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
    )
    return sequence or 0


async def list_task_attempts(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID, task_id: uuid.UUID
) -> list[asyncpg.Record]:
    """The attempts of a task of this execution, by generation (manual retries) then number.

    Raises:
        NotFound: no such execution in this tenant, or the task is not one of its steps.
    """
    step = await connection.fetchval(
        "SELECT s.execution_id FROM step_executions s WHERE s.id = $1 AND s.tenant_id = $2", task_id, tenant_id
    )
    if step != execution_id:
        await execution_exists(connection, tenant_id, execution_id)
        raise NotFound(f"execution {execution_id} has no task {task_id}")
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT generation, number, status, worker, started_at, finished_at, duration_ms, error, input, output "
        "FROM task_attempts "
        "WHERE step_execution_id = $1 ORDER BY generation, number",
        task_id,
    )
    return records


async def first_hidden_execution(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_ids: list[uuid.UUID], owner: str
) -> uuid.UUID | None:
    """One of the tenant's ``execution_ids`` that ``owner`` may not see, or None when it may see them all.

    Hidden means owned by another principal (or none), of a workflow that is not public.
    """
    hidden: uuid.UUID | None = await connection.fetchval(
        "SELECT e.id FROM executions e JOIN workflows w ON w.id = e.workflow_id "
        "WHERE e.tenant_id = $1 AND e.id = ANY($2::uuid[]) AND e.owned_by IS DISTINCT FROM $3 AND NOT w.public "
        "ORDER BY e.id LIMIT 1",
        tenant_id,
        execution_ids,
        owner,
    )
    return hidden
