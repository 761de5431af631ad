"""`python -m bench.retention`: how fast retention removes finished executions with all their rows.

Loads finished executions 40 days old (workflow `old.purge`) into a private PostgreSQL (durable: fsync on, as in
production), every tenth a child of the one before, each with 3 steps, 3 attempts, a timer, 8 events and 10 task
log records (so 1,000,000 executions come with 10,000,000 log records) in the day partition of their day, as a
database that has run for 40 days keeps them. Then it checkpoints (rows that old were written to their tables long
ago, so the first change of each page writes the whole page to the WAL) and runs the scheduler's retention loop
(in this process, `--loops` of them side by side, as that many schedulers would) beside one pass of its task log
partition loop, which drops the day partition whole (`--no-partition-drop`: not, so every record is deleted with
its execution), until nothing is left. It prints the executions and rows removed per second, the CPU time
PostgreSQL and the loops spent and the WAL written per 1,000 executions. Writes bench/results/retention.json.
Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from flowline.db.log_partitions import create_day_partition, drop_partition, list_log_partitions
from flowline.db.pool import create_pool
from flowline.db.retention import REMOVED_TABLES
from flowline.db.sql import bind
from flowline.settings import load_settings
from flowline_scheduler.log_partitions import LogPartitionLoop
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.retention import RetentionLoop, RetentionPeriods
from prometheus_client import CollectorRegistry

from bench.measures import stolen_seconds
from bench.stack import RESULTS, machine, private_stack

BATCH = 50_000
DAY = 86_400
# Execution g (1-based) has the id md5('e' || g); every tenth is a child of the one before. Steps, attempts,
# events and log records are numbered within it.
_EXECUTION = "md5('e' || {g})::uuid"
LOAD = {
    "executions": f"""
        INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version,
            status, parent_execution_id, parent_step_id, root_execution_id, triggered_by, created_at, updated_at,
            started_at, completed_at, last_event_sequence)
        SELECT {_EXECUTION.format(g="g")}, :tenant, :workflow, :version, 'old.purge', 1, 'completed',
            CASE WHEN g % 10 = 0 THEN {_EXECUTION.format(g="g - 1")} END,
            CASE WHEN g % 10 = 0 THEN 'call' END,
            {_EXECUTION.format(g="CASE WHEN g % 10 = 0 THEN g - 1 ELSE g END")},
            CASE WHEN g % 10 = 0 THEN 'workflow' ELSE 'api' END,
            now() - interval '40 days', now() - interval '40 days', now() - interval '40 days',
            now() - interval '40 days' + g * interval '1 millisecond', 8
        FROM generate_series(:low::int, :high::int) g
    """,
    "step_executions": f"""
        INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, attempts,
            input, output, started_at, completed_at)
        SELECT md5('s' || g || '.' || k)::uuid, :tenant, {_EXECUTION.format(g="g")}, 'step' || k, k, 'action',
            'completed', 1, '{{"n": 1}}', '{{"ok": true}}', now() - interval '40 days', now() - interval '40 days'
        FROM generate_series(:low::int, :high::int) g, generate_series(1, 3) k
    """,
    "task_attempts": f"""
        INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, status,
            worker, started_at, finished_at, duration_ms)
        SELECT md5('a' || g || '.' || k)::uuid, :tenant, md5('s' || g || '.' || k)::uuid, {_EXECUTION.format(g="g")},
            0, 1, 'completed', 'bench', now() - interval '40 days', now() - interval '40 days', 5
        FROM generate_series(:low::int, :high::int) g, generate_series(1, 3) k
    """,
    "timers": f"""
        INSERT INTO timers (id, tenant_id, execution_id, step_execution_id, kind, status, fire_at, fired_at)
        SELECT md5('t' || g)::uuid, :tenant, {_EXECUTION.format(g="g")}, md5('s' || g || '.1')::uuid, 'sleep', 'fired',
            now() - interval '40 days', now() - interval '40 days'
        FROM generate_series(:low::int, :high::int) g
    """,
    "execution_events": f"""
        INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, data, occurred_at)
        SELECT {_EXECUTION.format(g="g")}, k, :tenant, 'TASK_COMPLETED', 'step1', '{{"status": "completed"}}',
            now() - interval '40 days'
        FROM generate_series(:low::int, :high::int) g, generate_series(1, 8) k
    """,
    "task_logs": f"""
        INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp)
        SELECT md5('l' || g || '.' || k)::uuid, :tenant, {_EXECUTION.format(g="g")}, md5('s' || g || '.1')::uuid,
            'step1', 1, 'INFO', 'record ' || k || ' of a step that did its work', now() - interval '40 days'
        FROM generate_series(:low::int, :high::int) g, generate_series(1, 10) k
    """,
}


async def load(url: str, count: int) -> dict[str, Any]:
    """Load ``count`` finished executions and their rows; how long it took and how large the tables are."""
    connection = await asyncpg.connect(url)
    try:
        tenant = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        pack = await connection.fetchval(
            "INSERT INTO packs (id, tenant_id, ref) VALUES (gen_random_uuid(), $1, 'old') RETURNING id", tenant
        )
        workflow = await connection.fetchval(
            "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) "
            "VALUES (gen_random_uuid(), $1, $2, 'old.purge', 'purge', 1) RETURNING id",
            tenant,
            pack,
        )
        version = await connection.fetchval(
            "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
            "VALUES (gen_random_uuid(), $1, $2, 1, '{}') RETURNING id",
            tenant,
            workflow,
        )
        await day_partition_layout(connection)
        started = time.perf_counter()
        for low in range(1, count + 1, BATCH):
            high = min(count, low + BATCH - 1)
            async with connection.transaction():
                for sql in LOAD.values():
                    params = {"tenant": tenant, "workflow": workflow, "version": version, "low": low, "high": high}
                    await connection.execute(*bind(sql, params))
            print(f"  loaded {high:>9,} executions ({time.perf_counter() - started:.0f} s)", flush=True)
        await connection.execute("VACUUM ANALYZE")
        await connection.execute("CHECKPOINT")
        size = await connection.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        rows = {table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in LOAD}
        return {"load_seconds": round(time.perf_counter() - started), "database_size": size, "rows": rows}
    finally:
        await connection.close()


async def day_partition_layout(connection: asyncpg.Connection) -> None:
    """Put the records about to be loaded into the day partition of their day, as a database running for 40 days has.

    A fresh database has the table as migration 0009 found it, ``task_logs_until_<tomorrow>`` (empty: nothing ran
    yet), in their place and today's: a partition that would never be past retention.
    """
    today = datetime.now(UTC).date()
    async with connection.transaction():
        for partition in await list_log_partitions(connection):
            if partition.name.startswith("task_logs_until_"):
                await drop_partition(connection, partition)
        for day in (today - timedelta(days=40), today):
            await create_day_partition(connection, day)


async def wal_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """The WAL the whole server (autovacuum and checkpoints included) has written so far, and its checkpoints."""
    record = await pool.fetchrow(
        "SELECT wal_bytes::bigint AS wal_bytes, wal_fpi AS full_page_images, wal_records, "
        "(SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints FROM pg_stat_wal"
    )
    return dict(record)


async def purge(env: dict[str, str], loops: int, batch_size: int, *, drop_partitions: bool) -> dict[str, Any]:
    """Run ``loops`` retention loops side by side until every execution ``load`` made is gone.

    ``drop_partitions``: one pass of the task log partition loop runs beside their first pass, as when a scheduler
    starts.
    """
    settings = load_settings({**env, "FLOWLINE_DB_POOL_MAX_SIZE": str(loops + 3)})
    pool = await create_pool(settings)
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry)
    partition_loop = LogPartitionLoop(pool, metrics, default_retention_seconds=30 * DAY)
    try:
        workers = [
            RetentionLoop(
                pool,
                metrics,
                RetentionPeriods(executions=30 * DAY, audit=365 * DAY),
                interval_seconds=0,
                batch_size=batch_size,
                archive_dir=None,
            )
            for _ in range(loops)
        ]
        wal = await wal_counts(pool)
        stolen = stolen_seconds()
        started = time.perf_counter()
        beside = [partition_loop.run_once()] if drop_partitions else []
        while await pool.fetchval("SELECT EXISTS (SELECT FROM executions WHERE workflow_ref = 'old.purge')"):
            await asyncio.gather(*beside, *(worker.run_once() for worker in workers))
            beside = []
        seconds = time.perf_counter() - started
        wal = {name: value - wal[name] for name, value in (await wal_counts(pool)).items()}
        removed = {
            table: int(registry.get_sample_value("flowline_retention_removed_rows_total", {"table": table}) or 0)
            for table in REMOVED_TABLES
        }
        return {
            "seconds": round(seconds, 2),
            "executions_per_second": round(removed["executions"] / seconds),
            "rows_per_second": round(sum(removed.values()) / seconds),
            "removed": removed,
            "partitions_dropped": int(
                registry.get_sample_value("flowline_task_log_partitions_total", {"change": "dropped"}) or 0
            ),
            "wal_per_1000_executions": {
                "bytes": round(wal["wal_bytes"] * 1000 / removed["executions"]),
                "full_page_images": round(wal["full_page_images"] * 1000 / removed["executions"]),
                "records": round(wal["wal_records"] * 1000 / removed["executions"]),
            },
            "checkpoints": wal["checkpoints"],
            "stolen_cpu_seconds": round(stolen_seconds() - stolen, 1),
        }
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000, help="finished executions to load")
    parser.add_argument("--loops", type=int, default=2, help="retention loops side by side (schedulers)")
    parser.add_argument("--batch-size", type=int, default=1000, help="root executions per batch")
    parser.add_argument(
        "--no-partition-drop",
        action="store_true",
        help="no task log partition loop beside the retention loops: every record is deleted with its execution",
    )
    args = parser.parse_args()

    with private_stack(services=(), durable=True) as stack:
        print(f"loading {args.executions:,} finished executions and their rows …", flush=True)
        facts = asyncio.run(load(stack.postgres.url, args.executions))
        print(f"removing them with {args.loops} retention loops, batches of {args.batch_size} roots …", flush=True)
        # The CPU time PostgreSQL and the loops spent: on a machine shared with others the seconds vary with
        # their load, the CPU time far less.
        database_cpu, loops_cpu = stack.cpu_seconds()["postgres"], time.process_time()
        result = asyncio.run(purge(stack.env, args.loops, args.batch_size, drop_partitions=not args.no_partition_drop))
        result["cpu_ms_per_1000_executions"] = {
            "postgres": round((stack.cpu_seconds()["postgres"] - database_cpu) * 1e6 / args.executions),
            "retention loops": round((time.process_time() - loops_cpu) * 1e6 / args.executions),
        }

    report = {
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "executions": args.executions,
        "loops": args.loops,
        "batch_size": args.batch_size,
        "partition_drop": not args.no_partition_drop,
        **facts,
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retention.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nremoved {result['removed']['executions']:,} executions ({sum(result['removed'].values()):,} rows) in "
        f"{result['seconds']} s: {result['executions_per_second']:,} executions/s, "
        f"{result['rows_per_second']:,} rows/s"
    )
    dropped = facts["rows"]["task_logs"] - result["removed"]["task_logs"]
    partitions = result["partitions_dropped"]
    print(f"task log records dropped with their day partitions: {dropped:,} (partitions dropped: {partitions})")
    cpu, wal = result["cpu_ms_per_1000_executions"], result["wal_per_1000_executions"]
    print(f"CPU per 1,000 executions: PostgreSQL {cpu['postgres']:,} ms, retention loops {cpu['retention loops']:,} ms")
    print(
        f"WAL per 1,000 executions: {wal['bytes'] / 1e6:.2f} MB, {wal['full_page_images']:,} full-page images, "
        f"{wal['records']:,} records; {result['checkpoints']} checkpoints during the purge"
    )
    print(f"written to {RESULTS / 'retention.json'}")


if __name__ == "__main__":
    main()
