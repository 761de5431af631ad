"""`python -m bench.log_ingest`: how fast the log-ingest service drains a burst of task log records.

Starts a private PostgreSQL, a Tansu broker and the log-ingest service (a real process), then, per run,
produces a burst of records on `flowline.logs` as fast as one producer can: first as `TaskLogBatch` messages of
10-50 records (what the executor sends, one message per state change), then as single `TaskLogRecord`
messages. Measures records per second from the first produce to the moment the last row is in `task_logs`
(counted every 100 ms), and how long after the burst's last acknowledged produce the group's lag is back to
zero (offsets committed, which log-ingest does only once the rows are durable). Records are encoded before the
clock starts. Prints a table and writes bench/results/log_ingest.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from flowline.messages import TaskLogBatch, TaskLogRecord, encode
from flowline.runtime.ids import uuid7
from flowline.settings import load_settings
from flowline_schemas.logs import LogLevel

from bench.stack import RESULTS, Stack, machine, private_stack

SAMPLE_SECONDS = 0.1
LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR")
WORDS = "charge customer invoice retry shipment order payment webhook fetched parsed stored total page".split()


@dataclass(frozen=True)
class Burst:
    """The encoded messages of one run, with their keys (execution ids) and how many records they hold.

    Log-ingest stores a record only for an execution of the tenant it names: ``store_executions`` writes them.
    """

    name: str
    messages: list[tuple[bytes, bytes]]
    records: int
    tenant_id: uuid.UUID
    execution_ids: list[uuid.UUID]


def make_bursts(records: int, executions: int, seed: int) -> list[Burst]:
    """The same kind of records twice: in 10-50-record batches, and one per message."""
    rng = random.Random(seed)
    tenant_id = uuid.uuid4()
    execution_ids = [uuid.uuid4() for _ in range(executions)]
    started = datetime.now(UTC)

    def record(execution_id: uuid.UUID, task_id: uuid.UUID, step: int, index: int) -> TaskLogRecord:
        words = " ".join(rng.choices(WORDS, k=rng.randint(4, 16)))
        return TaskLogRecord(
            id=uuid7(),
            tenant_id=tenant_id,
            execution_id=execution_id,
            task_id=task_id,
            step_id=f"step-{step}",
            attempt=1 + (index % 7 == 0),
            level=rng.choice(LEVELS),
            message=f"{words} #{index}",
            timestamp=started + timedelta(milliseconds=index),
            metadata={"order": index, "region": "eu"} if index % 4 == 0 else {},
        )

    batched: list[tuple[bytes, bytes]] = []
    single: list[tuple[bytes, bytes]] = []
    made = 0
    while made < records:
        execution_id = rng.choice(execution_ids)
        task_id, step = uuid.uuid4(), rng.randint(1, 20)
        size = min(rng.randint(10, 50), records - made)
        key = str(execution_id).encode()
        batch = [record(execution_id, task_id, step, made + offset) for offset in range(size)]
        batched.append((key, encode(TaskLogBatch(tenant_id=tenant_id, execution_id=execution_id, records=batch))))
        # the single-record run sends other records (new ids) of the same shape
        single.extend((key, encode(record(execution_id, task_id, step, made + offset))) for offset in range(size))
        made += size
    return [
        Burst(f"TaskLogBatch x {len(batched):,} (10-50 records)", batched, records, tenant_id, execution_ids),
        Burst(f"TaskLogRecord x {len(single):,}", single, records, tenant_id, execution_ids),
    ]


async def store_executions(pool: asyncpg.Pool, burst: Burst) -> None:
    """The tenant and the executions the burst's records belong to (a workflow of no steps), unless stored."""
    async with pool.acquire() as connection, connection.transaction():
        tenant = burst.tenant_id
        if await connection.fetchval("SELECT EXISTS (SELECT FROM tenants WHERE id = $1)", tenant):
            return
        pack, workflow, version = uuid7(), uuid7(), uuid7()
        await connection.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $2)", tenant, f"bench-{tenant}")
        await connection.execute("INSERT INTO packs (id, tenant_id, ref) VALUES ($1, $2, 'bench')", pack, tenant)
        await connection.execute(
            "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) "
            "VALUES ($1, $2, $3, 'bench.logs', 'logs', 1)",
            workflow,
            tenant,
            pack,
        )
        await connection.execute(
            "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
            "VALUES ($1, $2, $3, 1, '{\"steps\": []}')",
            version,
            tenant,
            workflow,
        )
        await connection.execute(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version, "
            "status, root_execution_id, triggered_by) "
            "SELECT id, $2, $3, $4, 'bench.logs', 1, 'running', id, 'api' FROM unnest($1::uuid[]) AS e(id)",
            burst.execution_ids,
            tenant,
            workflow,
            version,
        )


class Lag:
    """The log-ingest group's lag on the logs topic: records produced but not yet committed."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self._topic = topic
        self._group = group
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def start(self) -> None:
        await self._admin.start()

    async def stop(self) -> None:
        await self._admin.close()

    async def current(self, ends: dict[int, int]) -> int:
        """The records between the group's committed offsets and ``ends`` (the end of each partition)."""
        by_partition = {TopicPartition(self._topic, partition): end for partition, end in ends.items()}
        committed = await self._admin.list_consumer_group_offsets(self._group, partitions=list(by_partition))
        return sum(
            end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
            for tp, end in by_partition.items()
        )


async def produce(producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes, bytes]]) -> dict[int, int]:
    """Send ``messages`` keyed as the outbox does, in full batches per partition, and wait for the broker.

    Filling batches by hand keeps the producer ahead of ingestion: one ``send()`` per message costs more
    Python time per record than the service spends writing it.

    Returns:
        Each partition's end offset after the last batch: Tansu answers a ListOffsets request for the end with
        the last batch's first offset plus one, so the end is counted here.
    """
    partitions = sorted(await producer.partitions_for(topic))
    open_batches: dict[int, BatchBuilder] = {}
    sent: list[tuple[int, int, asyncio.Future[RecordMetadata]]] = []  # (partition, records, acknowledgement)

    async def send(partition: int, batch: BatchBuilder) -> None:
        sent.append((partition, batch.record_count(), await producer.send_batch(batch, topic, partition=partition)))

    for key, value in messages:
        partition = DefaultPartitioner()(key, partitions, partitions)
        batch = open_batches.setdefault(partition, producer.create_batch())
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
            await send(partition, batch)
            batch = open_batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for partition, batch in open_batches.items():
        await send(partition, batch)
    ends: dict[int, int] = {}
    for partition, records, acknowledgement in sent:
        ends[partition] = max(ends.get(partition, 0), (await acknowledgement).offset + records)
    return ends


async def count_rows(pool: asyncpg.Pool) -> int:
    rows: int = await pool.fetchval("SELECT count(*) FROM task_logs")
    return rows


async def run_burst(
    burst: Burst, producer: AIOKafkaProducer, pool: asyncpg.Pool, lag: Lag, topic: str, stack: Stack
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []  # (seconds since the first produce, rows)
    cpu_before = {**stack.cpu_seconds(), "bench client": time.process_time()}
    started = time.perf_counter()

    async def watch_rows() -> float:
        while True:
            rows = await count_rows(pool)
            now = time.perf_counter() - started
            samples.append((now, rows))
            if rows >= burst.records:
                return now
            await asyncio.sleep(SAMPLE_SECONDS)

    watcher = asyncio.create_task(watch_rows())
    ends = await produce(producer, topic, burst.messages)
    produced = time.perf_counter() - started
    max_lag = await lag.current(ends)
    while (current := await lag.current(ends)) > 0:
        max_lag = max(max_lag, current)
        await asyncio.sleep(SAMPLE_SECONDS)
    lag_zero = time.perf_counter() - started
    last_row = await asyncio.wait_for(watcher, 60)
    cpu_after = {**stack.cpu_seconds(), "bench client": time.process_time()}
    rows = await count_rows(pool)
    if rows != burst.records:
        raise RuntimeError(f"{burst.name}: {rows} rows for {burst.records} records")
    # the fastest second: the ingest rate once the consumer is past its first fetch
    peak = max(
        (
            (later_rows - rows_then) / (later - then)
            for then, rows_then in samples
            for later, later_rows in samples
            if 1.0 <= later - then < 1.0 + 2 * SAMPLE_SECONDS
        ),
        default=0.0,
    )
    return {
        "run": burst.name,
        "records": burst.records,
        "messages": len(burst.messages),
        "produce_seconds": round(produced, 2),
        "produce_records_per_second": round(burst.records / produced),
        "ingest_seconds": round(last_row, 2),
        "records_per_second": round(burst.records / last_row),
        "peak_records_per_second": round(peak),
        "lag_after_burst_messages": max_lag,
        "lag_zero_seconds_after_burst": round(max(lag_zero - produced, 0.0), 2),
        "cpu_seconds": {name: round(cpu_after[name] - used, 2) for name, used in cpu_before.items()},
        "rows": [(round(moment, 2), rows) for moment, rows in samples],
    }


async def measure(stack: Stack, warm_up: Burst, bursts: list[Burst]) -> list[dict[str, Any]]:
    settings = load_settings(stack.env)
    topic = settings.topics.logs
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", max_batch_size=256 * 1024)
    lag = Lag(settings.kafka_bootstrap, topic, settings.consumer_group("log-ingest"))
    await producer.start()
    await lag.start()
    try:
        # the service's consumer joins its group after it reports healthy: a first burst would time the join
        await store_executions(pool, warm_up)
        await run_burst(warm_up, producer, pool, lag, topic, stack)
        results = []
        for burst in bursts:
            await store_executions(pool, burst)
            await pool.execute("TRUNCATE task_logs")
            print(f"{burst.name} …", flush=True)
            results.append(await run_burst(burst, producer, pool, lag, topic, stack))
        return results
    finally:
        await lag.stop()
        await producer.stop()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_ingest", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="records in each burst")
    parser.add_argument("--executions", type=int, default=1000, help="executions the records belong to")
    args = parser.parse_args()

    warm_up = make_bursts(1000, args.executions, seed=5)[0]
    bursts = make_bursts(args.records, args.executions, seed=6)
    with private_stack(services=("log-ingest",)) as stack:
        results = asyncio.run(measure(stack, warm_up, bursts))

    report = {
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "log_ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    header = ("run", "produce/s", "ingested/s", "peak 1 s", "lag", "lag → 0", "ingest CPU")
    print(f"| {header[0]:<36} | " + " | ".join(f"{name:>10}" for name in header[1:]) + " |")
    print(f"|{'-' * 38}|" + "|".join("-" * 12 for _ in header[1:]) + "|")
    for row in results:
        values = (
            f"{row['produce_records_per_second']:,}",
            f"{row['records_per_second']:,}",
            f"{row['peak_records_per_second']:,}",
            f"{row['lag_after_burst_messages']:,}",
            f"{row['lag_zero_seconds_after_burst']} s",
            f"{row['cpu_seconds']['log-ingest']} s",
        )
        print(f"| {row['run']:<36} | " + " | ".join(f"{value:>10}" for value in values) + " |")
    for row in results:
        used = ", ".join(
            f"{name} {seconds} s" for name, seconds in sorted(row["cpu_seconds"].items(), key=lambda x: -x[1])
        )
        print(f"CPU during {row['run']} ({row['ingest_seconds']} s): {used}")
    print(f"written to {RESULTS / 'log_ingest.json'}")


if __name__ == "__main__":
    main()
