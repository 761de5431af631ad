"""Execution lists stay fast with many executions: every common list query reads an index, never the whole table.

Asserts on the shape of the plans (EXPLAIN), never on timings; `bench/executions_list.py` measures 1,000,000.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from flowline.db.execution_reads import ExecutionFilters, count_executions_query, list_executions_query

from tests.support import FIXTURE_TIMEOUT_SECONDS, analyze_every_row

EXECUTIONS = 100_000
STATUSES = (
    "ARRAY['completed','completed','completed','completed','completed','completed','failed','running',"
    "'pending','cancelled']"
)

FILTERS = {
    "none": ExecutionFilters(),
    "status": ExecutionFilters(statuses=["failed"]),
    "rare-status": ExecutionFilters(statuses=["cancelled"]),
    "statuses": ExecutionFilters(statuses=["running", "pending"]),
    "workflow": ExecutionFilters(workflow="p3.w7"),
    "workflow-status": ExecutionFilters(workflow="p3.w7", statuses=["failed"]),
    "triggered-by": ExecutionFilters(triggered_by="kafka"),
    "started-by": ExecutionFilters(started_by="api-key:7"),
    "started-by-kafka": ExecutionFilters(started_by="kafka"),
    "parent": ExecutionFilters(parent_id=uuid.UUID(int=5)),
    "created-range": ExecutionFilters(
        created_after=datetime(2026, 11, 1, tzinfo=UTC), created_before=datetime(2026, 11, 2, tzinfo=UTC)
    ),
    "tag": ExecutionFilters(tags=["t7"]),
    "metadata": ExecutionFilters(metadata={"customer": "c42"}),
    "search-ref": ExecutionFilters(search="w7", search_refs=["p2.w7", "p2.w17", "p2.w27", "p2.w37", "p2.w47"]),
    "search-id": ExecutionFilters(search="0193a5", search_refs=[]),
    "search-both": ExecutionFilters(search="abc", search_refs=["p0.abc"]),
}


async def _fill(pool: asyncpg.Pool) -> uuid.UUID:
    tenant_id: uuid.UUID = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        # A fixture of 100,000 rows, not a request: the pool's timeouts (30 s) are no bound for it on a loaded machine.
        await connection.execute("SET LOCAL statement_timeout = 0")
        await connection.execute(
            "INSERT INTO packs (id, tenant_id, ref) "
            "SELECT gen_random_uuid(), $1, 'p' || g FROM generate_series(0, 4) g",
            tenant_id,
        )
        await connection.execute(
            """
            INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version)
            SELECT gen_random_uuid(), $1, p.id, p.ref || '.w' || g, 'w' || g, 1
            FROM generate_series(0, 49) g JOIN packs p ON p.tenant_id = $1 AND p.ref = 'p' || (g % 5)
            """,
            tenant_id,
        )
        await connection.execute(
            "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
            "SELECT gen_random_uuid(), tenant_id, id, 1, '{}' FROM workflows WHERE tenant_id = $1",
            tenant_id,
        )
        await connection.execute(
            f"""
            INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version,
                status, root_execution_id, triggered_by, started_by, metadata, tags, created_at, started_at,
                completed_at)
            SELECT x.id, $1, w.id, v.id, w.ref, 1, x.status, x.id, CASE WHEN g % 4 = 0 THEN 'kafka' ELSE 'api' END,
                CASE WHEN g % 4 = 0 THEN 'kafka' ELSE 'api-key:' || (g % 100) END,
                jsonb_build_object('customer', 'c' || (g % 1000)), ARRAY['t' || (g % 20)], x.created,
                x.created, CASE WHEN x.status IN ('completed', 'failed', 'cancelled')
                    THEN x.created + interval '3 seconds' END
            FROM generate_series(1, $2::int) g
            CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id, ({STATUSES})[1 + g % 10] AS status,
                timestamptz '2026-12-01' - g * interval '30 seconds' AS created) x
            JOIN workflows w ON w.tenant_id = $1 AND w.name = 'w' || (g % 50)
            JOIN workflow_versions v ON v.workflow_id = w.id
            """,
            tenant_id,
            EXECUTIONS,
            timeout=FIXTURE_TIMEOUT_SECONDS,
        )
    await analyze_every_row(pool, "VACUUM ANALYZE executions", "ANALYZE workflows")
    return tenant_id


def _nodes(plan: dict[str, Any], limited: bool = False) -> list[tuple[dict[str, Any], bool]]:
    """Every node of a plan, with whether a Limit above it stops it early."""
    limited = limited or plan["Node Type"] == "Limit"
    return [(plan, limited), *(node for child in plan.get("Plans", []) for node in _nodes(child, limited))]


async def _indexes(pool: asyncpg.Pool, query: str, arguments: list[Any]) -> frozenset[str]:
    """The indexes of the executions table that the plan reads."""
    plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *arguments)
    return frozenset(
        {
            node["Index Name"]
            for node, _ in _nodes(plan[0]["Plan"])
            if str(node.get("Index Name", "")).startswith("ix_executions")
        }
    )


async def _scans(pool: asyncpg.Pool, query: str, arguments: list[Any]) -> list[str]:
    """``Node Type`` of every node of the plan that reads the executions table or one of its indexes.

    A sequential scan under a Limit (a capped count of a broad filter: it stops after ``COUNT_CAP`` matches,
    found within the first pages of the table) is ``Limited Seq Scan``.
    """
    plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *arguments)
    nodes = _nodes(plan[0]["Plan"])
    return [
        f"Limited {node['Node Type']}" if limited and node["Node Type"] == "Seq Scan" else node["Node Type"]
        for node, limited in nodes
        if node.get("Relation Name") == "executions"
    ] + [
        node["Node Type"]
        for node, _ in nodes
        if str(node.get("Index Name", "")).startswith(("ix_executions", "pk_exec"))
    ]


async def test_list_queries_read_indexes_with_100k_executions(pool: asyncpg.Pool) -> None:
    tenant_id = await _fill(pool)
    assert await pool.fetchval("SELECT count(*) FROM executions") == EXECUTIONS
    key = (datetime(2026, 11, 20, tzinfo=UTC), uuid.UUID(int=0))

    plans: dict[str, list[str]] = {}
    for filter_name, filters in FILTERS.items():
        sorts = ("created_at", "completed_at") if filter_name in ("none", "status", "workflow") else ("created_at",)
        for sort in sorts:
            for descending in (True, False):
                for after in (None, key):
                    query, arguments = list_executions_query(
                        tenant_id, filters, sort=sort, descending=descending, limit=21, offset=0, after=after
                    )
                    label = f"{filter_name} {sort} {'desc' if descending else 'asc'}{' cursor' if after else ''}"
                    plans[label] = await _scans(pool, query, arguments)
        query, arguments = count_executions_query(tenant_id, filters)
        plans[f"count {filter_name}"] = await _scans(pool, query, arguments)

    whole_table = {label: scans for label, scans in plans.items() if "Seq Scan" in scans}
    index_scans = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
    without_index = {
        label: scans
        for label, scans in plans.items()
        if not index_scans & set(scans) and not (label.startswith("count") and "Limited Seq Scan" in scans)
    }
    assert whole_table == {}
    assert without_index == {}

    # A started-by list reads the index made for it (tenant, started_by, created_at, id), in either direction.
    started_by_indexes = set()
    for filters in (FILTERS["started-by"], FILTERS["started-by-kafka"]):
        for descending in (True, False):
            for after in (None, key):
                query, arguments = list_executions_query(
                    tenant_id, filters, sort="created_at", descending=descending, limit=21, offset=0, after=after
                )
                started_by_indexes.add(await _indexes(pool, query, arguments))
    assert started_by_indexes == {frozenset({"ix_executions_tenant_started_by_created"})}
