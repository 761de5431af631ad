"""`python -m bench.executions_list`: GET /executions with 1,000,000 executions in the table.

Loads the executions into a private PostgreSQL (30 days of history over 50 workflows: mostly completed, some
failed and cancelled, the newest still pending, running or paused; a tenth started by workflow steps as
children; tags and metadata), then asks the api (in this process, over its real database and a Tansu broker)
for the first page of each common filter, one request after another, and prints p50/p99 per filter.
Writes bench/results/executions_list.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import timedelta
from typing import Any

import asyncpg
from flowline.settings import load_settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from bench.measures import percentile
from bench.stack import RESULTS, api_headers, machine, private_stack

WORKFLOWS = 50
BATCH = 100_000

# g = 1 is the newest execution, created now; g = N the oldest, 30 days ago. Ids are UUIDv7-shaped (time first,
# then g) so that they sort like the api's. Execution g + 1 is older than g, so a child can name it as parent.
_ID = (
    "(lpad(to_hex((extract(epoch FROM {t}) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex({g} % 4096), 3, '0') "
    "|| '8' || lpad(to_hex({g}), 15, '0'))::uuid"
)
LOAD = f"""
INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version, status,
    input, error, parent_execution_id, parent_step_id, root_execution_id, triggered_by, metadata, tags, created_at,
    updated_at, started_at, completed_at, cancelled_at)
SELECT x.id, $1, w.id, v.id, w.ref, 1, x.status, jsonb_build_object('order', x.g),
    CASE WHEN x.status = 'failed' THEN '{{"type": "StepFailed", "message": "charge declined"}}'::jsonb END,
    x.parent, CASE WHEN x.parent IS NOT NULL THEN 'child' END, coalesce(x.parent, x.id), x.trigger,
    jsonb_build_object('customer', 'c' || (x.g % 5000), 'region', (ARRAY['eu', 'us', 'ap', 'sa', 'af'])[1 + x.g % 5]),
    ARRAY['team-' || (x.g % 20), CASE WHEN x.g % 3 = 0 THEN 'staging' ELSE 'prod' END],
    x.created, x.created, x.created + interval '1 second',
    CASE WHEN x.status IN ('completed', 'failed', 'cancelled') THEN x.created + (1 + x.g % 600) * interval '1 second'
    END,
    CASE WHEN x.status = 'cancelled' THEN x.created + interval '5 seconds' END
FROM (
    SELECT g, {_ID.format(t="c.created", g="g")} AS id, c.created,
        CASE WHEN g <= 3000 THEN (ARRAY['pending', 'running', 'running', 'paused'])[1 + g % 4]
             WHEN g % 100 < 88 THEN 'completed' WHEN g % 100 < 96 THEN 'failed'
             WHEN g % 100 < 99 THEN 'cancelled' ELSE 'running' END AS status,
        CASE WHEN g % 10 < 6 THEN 'api' WHEN g % 10 < 9 THEN 'kafka' ELSE 'workflow' END AS trigger,
        CASE WHEN g % 10 = 9 AND g < $3 THEN {_ID.format(t="p.created", g="(g + 1)")} END AS parent
    FROM generate_series($2::int, $3::int) g
    CROSS JOIN LATERAL (SELECT $4::timestamptz - g * $5::interval AS created) c
    CROSS JOIN LATERAL (SELECT $4::timestamptz - (g + 1) * $5::interval AS created) p
) x
JOIN workflows w ON w.tenant_id = $1 AND w.name = 'flow' || (x.g / 100 % {WORKFLOWS})
JOIN workflow_versions v ON v.workflow_id = w.id
"""


async def load(url: str, count: int) -> dict[str, Any]:
    connection = await asyncpg.connect(url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        pack_id = await connection.fetchval(
            "INSERT INTO packs (id, tenant_id, ref) VALUES (gen_random_uuid(), $1, 'bench') RETURNING id", tenant_id
        )
        await connection.execute(
            "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) "
            "SELECT gen_random_uuid(), $1, $2, 'bench.flow' || g, 'flow' || g, 1 FROM generate_series(0, $3 - 1) g",
            tenant_id,
            pack_id,
            WORKFLOWS,
        )
        await connection.execute(
            "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
            "SELECT gen_random_uuid(), tenant_id, id, 1, '{}' FROM workflows"
        )
        now = await connection.fetchval("SELECT date_trunc('second', now())")
        step = await connection.fetchval("SELECT $1::int * interval '30 days' / $2::int", 1, count)
        started = time.perf_counter()
        # Oldest first, so that every child's parent (one older) is already there.
        for high in range(count, 0, -BATCH):
            low = max(1, high - BATCH + 1)
            await connection.execute(LOAD, tenant_id, low, high, now, step)
            print(f"  loaded {count - low + 1:>9,} executions ({time.perf_counter() - started:.0f} s)", flush=True)
        await connection.execute("VACUUM ANALYZE executions")
        await connection.execute("ANALYZE workflows")
        newest = await connection.fetch("SELECT id, workflow_ref FROM executions ORDER BY created_at DESC LIMIT 1")
        parent = await connection.fetchval(
            "SELECT parent_execution_id FROM executions WHERE parent_execution_id IS NOT NULL "
            "ORDER BY created_at DESC LIMIT 1"
        )
        size = await connection.fetchval("SELECT pg_size_pretty(pg_total_relation_size('executions'))")
        return {
            "load_seconds": round(time.perf_counter() - started),
            "now": now,
            "newest_id": str(newest[0]["id"]),
            "parent_id": str(parent),
            "table_size": size,
        }
    finally:
        await connection.close()


def cases(facts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    day_ago = (facts["now"] - timedelta(days=1)).isoformat()
    return [
        ("no filter", {}),
        ("status=failed", {"status": "failed"}),
        ("status=running,pending", {"status": "running,pending"}),
        ("status=cancelled, oldest first", {"status": "cancelled", "order": "asc"}),
        ("workflow", {"workflow": "bench.flow7"}),
        ("workflow + status=failed", {"workflow": "bench.flow7", "status": "failed"}),
        ("triggeredBy=kafka", {"triggeredBy": "kafka"}),
        ("parentId", {"parentId": facts["parent_id"]}),
        ("createdAfter (last 24 h)", {"createdAfter": day_ago}),
        ("tag", {"tag": "team-7"}),
        ("metadata.customer", {"metadata.customer": "c42"}),
        ("metadata.region + status", {"metadata.region": "eu", "status": "failed"}),
        ("search (workflow ref)", {"search": "flow7"}),
        ("search (id prefix)", {"search": facts["newest_id"][:13]}),
        ("sort=completedAt", {"sort": "completedAt"}),
        ("sort=completedAt asc", {"sort": "completedAt", "order": "asc"}),
        ("offset=1000", {"offset": 1000}),
    ]


async def measure(env: dict[str, str], facts: dict[str, Any], requests: int) -> list[dict[str, Any]]:
    app = create_app(load_settings(env))
    results = []
    async with AsyncTestClient(app, base_url="http://bench.local/api/v1/tenants/dev/", timeout=60) as client:
        client.headers.update(api_headers(env))
        for name, params in [*cases(facts), ("cursor page 5", {"_cursor": 5})]:
            query = dict(params)
            if "_cursor" in query:  # follow nextCursor four times, then measure the fifth page
                query = {}
                for _ in range(4):
                    query = {"cursor": (await client.get("/executions", params=query)).json()["nextCursor"]}
            for _ in range(5):  # warm up
                response = await client.get("/executions", params=query)
                response.raise_for_status()
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.get("/executions", params=query)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            body = response.json()
            results.append(
                {
                    "filter": name,
                    "params": query,
                    "items": len(body["items"]),
                    "total": body["total"],
                    "total_exact": body["totalExact"],
                    "p50_ms": round(statistics.median(samples), 1),
                    "p99_ms": round(percentile(samples, 0.99), 1),
                    "max_ms": round(max(samples), 1),
                }
            )
            print(f"  {name:<34} p50 {results[-1]['p50_ms']:>6} ms  p99 {results[-1]['p99_ms']:>6} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.executions_list", description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000, help="executions to load")
    parser.add_argument("--requests", type=int, default=200, help="requests per filter")
    args = parser.parse_args()

    with private_stack(services=(), durable=False) as stack:
        print(f"loading {args.executions:,} executions …", flush=True)
        facts = asyncio.run(load(stack.postgres.url, args.executions))
        print(f"measuring {args.requests} sequential requests per filter …", flush=True)
        results = asyncio.run(measure(stack.env, facts, args.requests))

    report = {
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "executions": args.executions,
        "table_size": facts["table_size"],
        "load_seconds": facts["load_seconds"],
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "executions_list.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.executions:,} executions ({facts['table_size']} with indexes)")
    print(f"| {'filter':<34} | {'total':>10} | {'p50':>8} | {'p99':>8} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 10}|{'-' * 10}|")
    for row in results:
        total = f"{row['total']:,}" + ("" if row["total_exact"] else "~")
        print(f"| {row['filter']:<34} | {total:>10} | {row['p50_ms']:>5} ms | {row['p99_ms']:>5} ms |")
    print(f"written to {RESULTS / 'executions_list.json'}")


if __name__ == "__main__":
    main()
