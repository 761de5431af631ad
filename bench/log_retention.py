"""`python -m bench.log_retention`: removing old task log records by dropping day partitions versus row deletes.

Loads 10,000,000 task log records (by default) spread over ten days past retention (40 to 31 days old) and a
tenth as many from yesterday into ``task_logs``' day partitions of a private PostgreSQL, and the same records
into a plain table with the same key and indexes. Then it removes the old records both ways and times each:

- partitions: one pass of the scheduler's loop (``LogPartitionLoop``), which drops the ten old days whole;
- rows: ``DELETE`` in batches of 10,000 (each its own transaction, as a retention loop that must not hold long
  locks would), oldest first through an index on the timestamp (which the plain table gets for this, untimed),
  followed by the ``VACUUM`` that makes the space reusable.

For each it reports the seconds, the WAL written (what a replica and the backups must carry too) and the
records left. Writes bench/results/log_retention.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from flowline.db.log_partitions import create_day_partition, list_log_partitions, start_of_day
from flowline_scheduler.log_partitions import LogPartitionLoop
from flowline_scheduler.metrics import SchedulerMetrics
from prometheus_client import CollectorRegistry

from bench.stack import RESULTS, machine, private_stack

OLD_DAYS = range(31, 41)  # days ago: all past the 30 days' retention
RETENTION_SECONDS = 30 * 86400.0
LOAD_BATCH = 1_000_000
DELETE_BATCH = 10_000
# Records of 1,000 tasks per day and execution-like ids; messages of about 80 bytes, as an attempt's lines.
LOAD = """
INSERT INTO {table} (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata)
SELECT gen_random_uuid(), $1, uuid_in(lpad(to_hex(g / 100), 32, '0')::cstring),
    uuid_in(lpad(to_hex(g / 10), 32, '0')::cstring), 'step-' || (g % 7), 1,
    (ARRAY['DEBUG', 'INFO', 'INFO', 'WARN', 'ERROR'])[1 + g % 5],
    'attempt 1 of step-' || (g % 7) || ' processed item ' || g || ' of the batch, all fields valid',
    $2::timestamptz + (g % 86400) * interval '1 second', '{{}}'::jsonb
FROM generate_series($3::bigint, $4::bigint) g
"""


async def _wal(connection: asyncpg.Connection) -> str:
    lsn: str = await connection.fetchval("SELECT pg_current_wal_lsn()::text")
    return lsn


async def _wal_since(connection: asyncpg.Connection, start: str) -> int:
    written: int = await connection.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint", start
    )
    return written


async def load(url: str, records: int) -> dict[str, Any]:
    """The old and the recent records in both tables; their counts and sizes."""
    connection = await asyncpg.connect(url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        today = datetime.now(UTC).date()
        async with connection.transaction():
            # The database is new: the partition the migration began with is empty, and days before it are wanted.
            for partition in await list_log_partitions(connection):
                if partition.name.startswith("task_logs_until_"):
                    await connection.execute(f"DROP TABLE {partition.name}")
            for days_ago in [*OLD_DAYS, 1, 0]:
                await create_day_partition(connection, today - timedelta(days=days_ago))
        await connection.execute(
            "CREATE TABLE task_logs_plain (LIKE task_logs INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)"
        )
        started = time.perf_counter()
        per_day = records // len(OLD_DAYS)
        loads = [(start_of_day(today - timedelta(days=days_ago)), per_day) for days_ago in OLD_DAYS]
        loads.append((start_of_day(today - timedelta(days=1)), records // 10))
        first = 0
        for day, count in loads:
            for low in range(first, first + count, LOAD_BATCH):
                high = min(low + LOAD_BATCH, first + count) - 1
                for table in ("task_logs", "task_logs_plain"):
                    await connection.execute(LOAD.format(table=table), tenant_id, day, low, high)
            first += count
            print(f"  loaded {first:>11,} records into each table ({time.perf_counter() - started:.0f} s)", flush=True)
        # Row deletes by age need an index on the time to find each batch (else every batch reads the whole table).
        await connection.execute("CREATE INDEX ON task_logs_plain (timestamp)")
        await connection.execute("VACUUM ANALYZE task_logs")
        await connection.execute("VACUUM ANALYZE task_logs_plain")
        return {
            "load_seconds": round(time.perf_counter() - started),
            "records": first,
            "old_records": per_day * len(OLD_DAYS),
            "partitioned_size": await connection.fetchval(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
                "WHERE inhparent = 'task_logs'::regclass"
            ),
            "plain_size": await connection.fetchval("SELECT pg_size_pretty(pg_total_relation_size('task_logs_plain'))"),
        }
    finally:
        await connection.close()


async def by_partitions(url: str) -> dict[str, Any]:
    """One pass of the scheduler's partition loop."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        registry = CollectorRegistry()
        loop = LogPartitionLoop(pool, SchedulerMetrics(registry), default_retention_seconds=RETENTION_SECONDS)
        async with pool.acquire() as connection:
            wal = await _wal(connection)
        started = time.perf_counter()
        await loop.start(loops=1)
        seconds = time.perf_counter() - started
        async with pool.acquire() as connection:
            return {
                "seconds": round(seconds, 2),
                "wal_bytes": await _wal_since(connection, wal),
                "partitions_dropped": registry.get_sample_value(
                    "flowline_task_log_partitions_total", {"change": "dropped"}
                ),
                "records_left": await connection.fetchval("SELECT count(*) FROM task_logs"),
            }
    finally:
        await pool.close()


async def by_rows(url: str) -> dict[str, Any]:
    """Batched deletes of every record past retention, then the VACUUM that frees their space for reuse."""
    connection = await asyncpg.connect(url)
    try:
        cutoff = datetime.now(UTC) - timedelta(seconds=RETENTION_SECONDS)
        wal = await _wal(connection)
        started = time.perf_counter()
        deleted = 0
        while True:
            batch = await connection.fetchval(
                "WITH gone AS (DELETE FROM task_logs_plain WHERE ctid IN (SELECT ctid FROM task_logs_plain "
                "WHERE timestamp < $1 ORDER BY timestamp LIMIT $2) RETURNING 1) SELECT count(*) FROM gone",
                cutoff,
                DELETE_BATCH,
            )
            deleted += batch
            if batch < DELETE_BATCH:
                break
            if deleted % 1_000_000 < DELETE_BATCH:
                print(f"  deleted {deleted:>11,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        delete_seconds = time.perf_counter() - started
        await connection.execute("VACUUM task_logs_plain")
        return {
            "seconds": round(time.perf_counter() - started, 2),
            "delete_seconds": round(delete_seconds, 2),
            "vacuum_seconds": round(time.perf_counter() - started - delete_seconds, 2),
            "wal_bytes": await _wal_since(connection, wal),
            "rows_deleted": deleted,
            "records_left": await connection.fetchval("SELECT count(*) FROM task_logs_plain"),
        }
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_retention", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000, help="old records to load (and remove)")
    args = parser.parse_args()

    with private_stack(services=(), durable=False) as stack:
        print(f"loading {args.records:,} old task log records into each table …", flush=True)
        facts = asyncio.run(load(stack.postgres.url, args.records))
        print("dropping the old day partitions …", flush=True)
        partitions = asyncio.run(by_partitions(stack.postgres.url))
        print(f"deleting the old rows in batches of {DELETE_BATCH:,} …", flush=True)
        rows = asyncio.run(by_rows(stack.postgres.url))

    report = {
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **facts,
        "partitions": partitions,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "log_retention.json").write_text(json.dumps(report, indent=2) + "\n")
    old = facts["old_records"]
    print(f"\n{old:,} old records of {facts['records']:,} ({facts['partitioned_size']} partitioned)")
    print("| way | seconds | WAL | records left |")
    print("|---|---|---|---|")
    print(
        f"| drop {partitions['partitions_dropped']:.0f} day partitions | {partitions['seconds']} | "
        f"{partitions['wal_bytes'] / 1e6:.1f} MB | {partitions['records_left']:,} |"
    )
    print(
        f"| delete rows ({rows['delete_seconds']} s) + vacuum ({rows['vacuum_seconds']} s) | {rows['seconds']} | "
        f"{rows['wal_bytes'] / 1e6:.1f} MB | {rows['records_left']:,} |"
    )
    print(f"written to {RESULTS / 'log_retention.json'}")


if __name__ == "__main__":
    main()
