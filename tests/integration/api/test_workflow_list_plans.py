"""Workflow lists stay fast with 100,000 definitions: every list query reads an index, never the whole table.

Asserts on the shape of the plans (EXPLAIN), never on timings.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from flowline.db.workflows import WorkflowFilters, count_workflows_query, list_workflows_query

from tests.support import FIXTURE_TIMEOUT_SECONDS, analyze_every_row

WORKFLOWS = 100_000

FILTERS = {
    "none": WorkflowFilters(),
    "tags": WorkflowFilters(tags=["t7"]),
    "enabled": WorkflowFilters(enabled=False),
    "search-name": WorkflowFilters(search="w4242"),
    "search-description": WorkflowFilters(search="CODE-77777"),
    "pack": WorkflowFilters(pack="p42"),
    "everything": WorkflowFilters(tags=["t7", "t8"], enabled=True, search="w42", pack="p42"),
}


async def _fill(pool: asyncpg.Pool) -> uuid.UUID:
    tenant_id: uuid.UUID = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        # A fixture of 100,000 rows, not a request: the pool's timeouts (30 s) are no bound for it on a loaded machine.
        await connection.execute("SET LOCAL statement_timeout = 0")
        await connection.execute(
            "INSERT INTO packs (id, tenant_id, ref) "
            "SELECT gen_random_uuid(), $1, 'p' || g FROM generate_series(0, 99) g",
            tenant_id,
        )
        await connection.execute(
            """
            INSERT INTO workflows (id, tenant_id, pack_id, ref, name, label, description, tags, enabled,
                latest_version, created_at, updated_at)
            SELECT gen_random_uuid(), $1, p.id, p.ref || '.w' || g, 'w' || g, 'Workflow number ' || g,
                'does something, CODE-' || g, ARRAY['t' || (g % 50)], g % 10 <> 0, 1,
                now() - g * interval '1 second', now() - (g % 977) * interval '1 minute'
            FROM generate_series(1, $2::int) g JOIN packs p ON p.tenant_id = $1 AND p.ref = 'p' || (g % 100)
            """,
            tenant_id,
            WORKFLOWS,
            timeout=FIXTURE_TIMEOUT_SECONDS,
        )
    await analyze_every_row(pool, "ANALYZE workflows", "ANALYZE packs")
    return tenant_id


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def _scans(pool: asyncpg.Pool, query: str, arguments: list[Any]) -> list[str]:
    """``Node Type`` of every node of the plan that reads the workflows table."""
    plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *arguments)
    nodes = _nodes(plan[0]["Plan"])
    return [node["Node Type"] for node in nodes if node.get("Relation Name") == "workflows"] + [
        node["Node Type"]
        for node in nodes
        if str(node.get("Index Name", "")).startswith(("ix_workflows", "uq_workflows"))
    ]


async def test_list_queries_read_indexes_with_100k_workflows(pool: asyncpg.Pool) -> None:
    tenant_id = await _fill(pool)
    assert await pool.fetchval("SELECT count(*) FROM workflows") == WORKFLOWS
    keys: dict[str, Any] = {
        "name": "w5000",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    }

    plans: dict[str, list[str]] = {}
    for filter_name, filters in FILTERS.items():
        for sort in ("created_at", "name", "updated_at"):
            for descending in (True, False):
                for after in (None, (keys[sort], uuid.UUID(int=0))):
                    query, arguments = list_workflows_query(
                        tenant_id, filters, sort=sort, descending=descending, limit=21, offset=0, after=after
                    )
                    label = f"{filter_name} {sort} {'desc' if descending else 'asc'}{' cursor' if after else ''}"
                    plans[label] = await _scans(pool, query, arguments)
        # Counting every live workflow (or half of them) reads them all whichever way: PostgreSQL rightly
        # prefers a sequential scan there; selective filters must count through their index.
        if filter_name not in ("none", "enabled"):
            query, arguments = count_workflows_query(tenant_id, filters)
            plans[f"count {filter_name}"] = await _scans(pool, query, arguments)

    whole_table = {label: scans for label, scans in plans.items() if "Seq Scan" in scans}
    index_scans = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
    without_index = {label: scans for label, scans in plans.items() if not index_scans & set(scans)}
    assert whole_table == {}
    assert without_index == {}
