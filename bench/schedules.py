"""`python -m bench.schedules`: 10,000 schedules firing every minute, and how late their runs start.

Starts a private PostgreSQL, a Tansu broker and the scheduler (a real process; no executor, so the runs stay
pending and only the firing is measured), stores the schedules (`* * * * *`, overlap `allow`) straight in the
database, due from the next whole minute, and lets them fire for a few minutes. Lateness is each run's start
(its execution row's creation) minus its fire time, from the database, and so is the time it became visible
(the commit of its transaction, kept with track_commit_timestamp); the scheduler's own histogram
(`flowline_schedule_lateness_seconds`) is read from its /metrics as well. It also counts the runs per fire time
(each must be exactly one per schedule: no run doubled or missed). Prints a table and writes
bench/results/schedules.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from flowline.db.packs import create_pack
from flowline.db.pool import connect
from flowline.db.workflows import create_workflow

from bench.stack import RESULTS, Stack, machine, private_stack

DEFINITION = {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}


async def _store_schedules(database_url: str, count: int) -> datetime:
    """``count`` schedules firing every minute from the next whole minute (at least 20 s away); that minute."""
    connection = await connect(database_url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        await create_pack(connection, tenant_id=tenant_id, ref="bench", label=None, description=None, version=None)
        async with connection.transaction():
            await create_workflow(
                connection,
                tenant_id=tenant_id,
                ref="bench.tick",
                label=None,
                description=None,
                tags=[],
                enabled=True,
                definition=DEFINITION,
                input_schema=None,
                output_schema=None,
                created_by=None,
            )
        now = datetime.now(UTC)
        first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if first - now < timedelta(seconds=20):
            first += timedelta(minutes=1)
        await connection.execute(
            "INSERT INTO schedules (id, tenant_id, name, workflow_ref, cron, overlap, next_run_at, created_by) "
            "SELECT gen_random_uuid(), $1, 'tick-' || n, 'bench.tick', '* * * * *', 'allow', $3, 'bench' "
            "FROM generate_series(1, $2) AS n",
            tenant_id,
            count,
            first,
        )
    finally:
        await connection.close()
    return first


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def _histogram_p99(metrics: str) -> str:
    """The smallest bucket bound of the scheduler's lateness histogram that holds 99% of the runs."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith("flowline_schedule_lateness_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return f"<= {bound:g} s"
    return "-"


async def measure(stack: Stack, schedules: int, minutes: int) -> dict[str, Any]:
    pool = await asyncpg.create_pool(stack.env["FLOWLINE_DATABASE_URL"], min_size=1, max_size=2)
    try:
        first = await _store_schedules(stack.env["FLOWLINE_DATABASE_URL"], schedules)
        last = first + timedelta(minutes=minutes - 1)
        cpu_before = stack.cpu_seconds()
        # The last fire time and 20 s for its runs to be stored.
        await asyncio.sleep((last + timedelta(seconds=20) - datetime.now(UTC)).total_seconds())
        cpu = {name: round(used - cpu_before.get(name, 0.0), 1) for name, used in stack.cpu_seconds().items()}
        rows = await pool.fetch(
            "SELECT scheduled_for, extract(epoch FROM created_at - scheduled_for)::float8 AS late, "
            "extract(epoch FROM pg_xact_commit_timestamp(xmin) - scheduled_for)::float8 AS visible, "
            "count(*) OVER (PARTITION BY schedule_id, scheduled_for) AS copies "
            "FROM executions WHERE scheduled_for <= $1",
            last,
        )
    finally:
        await pool.close()
    port = stack.env["FLOWLINE_SCHEDULER_HTTP_PORT"]
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    lateness = [row["late"] for row in rows]
    visible = [row["visible"] for row in rows]
    per_minute: dict[str, int] = {}
    for row in rows:
        key = row["scheduled_for"].strftime("%H:%M")
        per_minute[key] = per_minute.get(key, 0) + 1
    return {
        "schedules": schedules,
        "minutes": minutes,
        "runs": len(rows),
        "expected_runs": schedules * minutes,
        "doubled": sum(1 for row in rows if row["copies"] > 1),
        "runs_per_fire_time": per_minute,
        "lateness_p50_seconds": round(_quantile(lateness, 0.5), 3),
        "lateness_p99_seconds": round(_quantile(lateness, 0.99), 3),
        "lateness_max_seconds": round(max(lateness, default=float("nan")), 3),
        "visible_p50_seconds": round(_quantile(visible, 0.5), 3),
        "visible_p99_seconds": round(_quantile(visible, 0.99), 3),
        "visible_min_seconds": round(min(visible, default=float("nan")), 3),
        "metric_p99": _histogram_p99(metrics),
        "cpu_seconds": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.schedules", description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000, help="schedules firing every minute")
    parser.add_argument("--minutes", type=int, default=3, help="fire times to measure")
    args = parser.parse_args()

    with private_stack(services=("scheduler",), commit_timestamps=True) as stack:
        result = asyncio.run(measure(stack, args.schedules, args.minutes))

    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "result": result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "schedules.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"runs {result['runs']:,} of {result['expected_runs']:,} expected, doubled {result['doubled']}")
    print(f"per fire time: {result['runs_per_fire_time']}")
    print(
        f"lateness p50 {result['lateness_p50_seconds']} s, p99 {result['lateness_p99_seconds']} s, "
        f"max {result['lateness_max_seconds']} s (scheduler histogram p99 {result['metric_p99']})"
    )
    print(
        f"committed (visible) after the fire time: p50 {result['visible_p50_seconds']} s, "
        f"p99 {result['visible_p99_seconds']} s, min {result['visible_min_seconds']} s"
    )
    print(f"CPU seconds: {result['cpu_seconds']}")


if __name__ == "__main__":
    main()
