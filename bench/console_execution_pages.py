"""`python -m bench.console_execution_pages`: the console's page of one execution, big and small.

Writes three executions straight into a fresh database: 5,002 steps (`start`, a 5,000-branch fan-out
`fetch-<n>`, `join`), 200 steps (25 levels of 8, each step needing two of the level before: no fan-out, every
step drawn), and 3 steps; every step has 400 bytes of input and output. Signs in to the console in this process
(over the real database and a Tansu broker) and asks for each page, the pages taking turns, after two warm-up
requests each; prints per page the median and p95 of the server time and the median of this process's CPU time
per request. Writes bench/results/console_execution_pages.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import asyncpg
from flowline.db.pool import connect
from flowline.settings import load_settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from bench.measures import percentile
from bench.stack import RESULTS, machine, private_stack

PAYLOAD = {"blob": "x" * 384}  # some 400 bytes of JSON
LEVELS, PER_LEVEL = 25, 8


def fan_out_steps(width: int) -> list[dict[str, Any]]:
    return [
        {"id": "start", "type": "action", "action": "core.noop"},
        *({"id": f"fetch-{n}", "type": "action", "action": "core.noop", "needs": ["start"]} for n in range(width)),
        {"id": "join", "type": "action", "action": "core.noop", "needs": [f"fetch-{n}" for n in range(width)]},
    ]


def layered_steps() -> list[dict[str, Any]]:
    """``LEVELS`` levels of ``PER_LEVEL`` steps; each needs two of the level before, so no siblings share needs."""
    steps: list[dict[str, Any]] = []
    for level in range(LEVELS):
        for place in range(PER_LEVEL):
            step: dict[str, Any] = {"id": f"l{level}s{place}", "type": "action", "action": "core.noop"}
            if level:
                step["needs"] = [f"l{level - 1}s{place}", f"l{level - 1}s{(place + 1) % PER_LEVEL}"]
            steps.append(step)
    return steps


async def execution(connection: asyncpg.Connection, tenant_id: uuid.UUID, ref: str, steps: list[dict[str, Any]]) -> str:
    """A running execution of ``steps`` with a row for each: most completed, some failed or running."""
    pack_id = await connection.fetchval("SELECT id FROM packs WHERE tenant_id = $1 AND ref = 'bench'", tenant_id)
    workflow_id, version_id, execution_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) VALUES ($1, $2, $3, $4, $5, 1)",
        workflow_id,
        tenant_id,
        pack_id,
        ref,
        ref.split(".", 1)[1],
    )
    await connection.execute(
        "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) VALUES ($1, $2, $3, 1, $4)",
        version_id,
        tenant_id,
        workflow_id,
        {"steps": steps},
    )
    await connection.execute(
        "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version, "
        "status, input, root_execution_id, triggered_by, metadata, tags, created_at, updated_at, started_at) "
        "VALUES ($1, $2, $3, $4, $5, 1, 'running', '{}', $1, 'api', '{}', '{}', now(), now(), now())",
        execution_id,
        tenant_id,
        workflow_id,
        version_id,
        ref,
    )
    statuses = ["failed" if n % 83 == 5 else "running" if n % 97 == 7 else "completed" for n in range(len(steps))]
    await connection.execute(
        "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, attempts, "
        "input, output, error, scheduled_at, started_at, completed_at) "
        "SELECT gen_random_uuid(), $1, $2, s.step_id, s.position - 1, 'action', s.status, 1, $5::jsonb, "
        "CASE WHEN s.status = 'completed' THEN $5::jsonb END, "
        "CASE WHEN s.status = 'failed' THEN '{\"message\": \"timed out\"}'::jsonb END, now(), now(), "
        "CASE WHEN s.status <> 'running' THEN now() END "
        "FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS s(step_id, status, position)",
        tenant_id,
        execution_id,
        [step["id"] for step in steps],
        statuses,
        PAYLOAD,
    )
    return str(execution_id)


async def load(url: str) -> dict[str, str]:
    connection = await connect(url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        await connection.execute(
            "INSERT INTO packs (id, tenant_id, ref) VALUES (gen_random_uuid(), $1, 'bench')", tenant_id
        )
        wide = await execution(connection, tenant_id, "bench.wide", fan_out_steps(5_000))
        layered = await execution(connection, tenant_id, "bench.layered", layered_steps())
        small = await execution(connection, tenant_id, "bench.small", fan_out_steps(1))
        await connection.execute("VACUUM ANALYZE step_executions")
        return {"wide": wide, "layered": layered, "small": small}
    finally:
        await connection.close()


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("5,002 steps, fan-out folded", f"/ui/executions/{ids['wide']}"),
        ("5,002 steps, summary", f"/ui/executions/{ids['wide']}?expand=fetch"),
        ("5,002 steps, ?step=start", f"/ui/executions/{ids['wide']}?step=start"),
        ("200 steps", f"/ui/executions/{ids['layered']}"),
        ("3 steps", f"/ui/executions/{ids['small']}"),
    ]


async def measure(env: dict[str, str], ids: dict[str, str], requests: int) -> list[dict[str, Any]]:
    app = create_app(load_settings(env))
    shown = pages(ids)
    wall: dict[str, list[float]] = {name: [] for name, _ in shown}
    cpu: dict[str, list[float]] = {name: [] for name, _ in shown}
    sizes: dict[str, int] = {}
    async with AsyncTestClient(app, base_url="http://bench.local", timeout=60) as client:
        await client.get("/ui/login")
        signed = await client.post(
            "/ui/login",
            data={"credential": env["FLOWLINE_API_KEY"], "_csrf_token": client.cookies["flowline_console_csrf"]},
        )
        signed.raise_for_status()
        for round_number in range(requests + 2):  # the pages take turns; the first two rounds warm up
            for name, path in shown:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = await client.get(path)
                elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
                response.raise_for_status()
                sizes[name] = len(response.content)
                if round_number >= 2:
                    wall[name].append(elapsed * 1000)
                    cpu[name].append(elapsed_cpu * 1000)
    return [
        {
            "page": name,
            "path": path,
            "bytes": sizes[name],
            "p50_ms": round(statistics.median(wall[name]), 1),
            "p95_ms": round(percentile(wall[name], 0.95), 1),
            "cpu_p50_ms": round(statistics.median(cpu[name]), 1),
        }
        for name, path in shown
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_execution_pages", description=__doc__)
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    args = parser.parse_args()

    with private_stack(services=(), durable=False) as stack:
        ids = asyncio.run(load(stack.postgres.url))
        print(f"measuring {args.requests} requests per page, the pages taking turns …", flush=True)
        results = asyncio.run(measure(stack.env, ids, args.requests))

    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_execution_pages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| {'page':<30} | {'bytes':>8} | {'p50':>8} | {'p95':>8} | {'CPU p50':>8} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for row in results:
        print(
            f"| {row['page']:<30} | {row['bytes']:>8} | {row['p50_ms']:>5} ms | {row['p95_ms']:>5} ms "
            f"| {row['cpu_p50_ms']:>5} ms |"
        )
    print(f"written to {RESULTS / 'console_execution_pages.json'}")


if __name__ == "__main__":
    main()
