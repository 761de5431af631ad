"""Where the time goes: what one execution of the bench's 3-step chain costs, counted rather than timed.

`uv run python -m bench.per_execution` starts the private stack with PostgreSQL counting statements
(pg_stat_statements) and the broker behind a counter of Kafka requests (bench/kafka_requests.py), then, per
execution, for executions one at a time on an idle stack and for 64 requests in flight:
- SQL statements (BEGIN and COMMIT included; each is a round trip, asyncpg sending a prepared statement's
  messages together), by statement, transactions and WAL flushes (fsyncs);
- Kafka messages by topic (the topics' end offsets) and Kafka requests by kind (Produce, Fetch…);
- CPU time by process (the bench client's includes the request counter's).
And the same per second while the stack sits idle: the background loops (schedules, timers, outbox relay) run
meanwhile too, and their share of a phase is its wall time times their rate at idle. The execution's own
statements and messages are counts that do not vary from run to run; fetches and CPU time depend on time (fetch
waits) and on what else runs on the machine.
Prints tables and writes bench/results/per_execution.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from flowline.settings import load_settings

from bench.__main__ import CHAIN, CLIENT, CONCURRENT_REQUESTS, Completions, Starter, latency, throughput
from bench.kafka_requests import KafkaRequestCounter
from bench.stack import RESULTS, Stack, api_headers, define, machine, private_stack, tenant_api

IDLE_SECONDS = 5.0
#: Cumulative statistics reach the views up to a second after a backend's transaction (PostgreSQL 15).
STATS_DELAY_SECONDS = 1.5
STATEMENTS = """
    SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat%'
    GROUP BY query
"""


class Counts:
    """Everything counted so far, read at the start and the end of each phase."""

    def __init__(self, stack: Stack, kafka_requests: KafkaRequestCounter) -> None:
        self._stack = stack
        self._kafka_requests = kafka_requests
        self._offsets = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap)
        self._database: asyncpg.Connection | None = None

    async def __aenter__(self) -> Counts:
        await self._offsets.start()
        self._database = await asyncpg.connect(self._stack.env["FLOWLINE_DATABASE_URL"])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._offsets.stop()
        if self._database is not None:
            await self._database.close()

    async def around(self, phase: Awaitable[object]) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
        """The counts before and after ``phase``: those that depend on time (CPU, requests) at its very start
        and end, the others once they have settled (statistics, messages published after the completion)."""
        before = await self._settled()
        before |= self._now()
        await phase
        after = self._now()
        after |= await self._settled()
        return before, after

    def _now(self) -> dict[str, Counter[str]]:
        cpu = {name: round(seconds * 1000, 1) for name, seconds in self._stack.cpu_seconds().items()}
        return {
            "kafka_requests": self._kafka_requests.snapshot(),
            "cpu_ms": Counter(cpu) + Counter({CLIENT: round(time.process_time() * 1000, 1)}),
            "wall_ms": Counter({"wall": round(time.perf_counter() * 1000, 1)}),
        }

    async def _settled(self) -> dict[str, Counter[str]]:
        assert self._database is not None
        await asyncio.sleep(STATS_DELAY_SECONDS)
        statements = Counter({row["query"]: row["calls"] for row in await self._database.fetch(STATEMENTS)})
        database = await self._database.fetchrow(
            "SELECT xact_commit + xact_rollback AS transactions, wal_sync AS wal_flushes, wal_records"
            " FROM pg_stat_database, pg_stat_wal WHERE datname = current_database()"
        )
        return {
            "statements": statements,
            "database": Counter(dict(database)),
            "kafka_messages": await self._kafka_messages(),
        }

    async def _kafka_messages(self) -> Counter[str]:
        topics = await self._offsets.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in self._offsets.partitions_for_topic(topic) or ()
        ]
        ends = await self._offsets.end_offsets(partitions)
        return Counter({topic: sum(end for tp, end in ends.items() if tp.topic == topic) for topic in topics})


def per_unit(before: dict[str, Counter[str]], after: dict[str, Counter[str]], units: float) -> dict[str, Any]:
    """What each kind of count grew by, divided by ``units`` (executions, or seconds), largest first."""
    grown = {kind: after[kind] - before[kind] for kind in after}  # Counter subtraction keeps what grew
    return {
        kind: {name: round(value / units, 2) for name, value in counts.most_common()} for kind, counts in grown.items()
    }


async def measure(stack: Stack, args: argparse.Namespace, kafka_requests: KafkaRequestCounter) -> dict[str, Any]:
    env = stack.env
    api = tenant_api(env)
    async with httpx.AsyncClient(base_url=api, headers=api_headers(env), timeout=60) as client:
        await define(client, CHAIN)
    # The client follows the events topic on the broker itself: its own fetches are not the stack's.
    completions = Completions(load_settings({**env, "FLOWLINE_KAFKA_BOOTSTRAP": stack.broker.bootstrap}))
    await completions.start()
    try:
        async with AsyncExitStack() as opened:
            counts = await opened.enter_async_context(Counts(stack, kafka_requests))
            starters = [
                await opened.enter_async_context(Starter(api, api_headers(env))) for _ in range(CONCURRENT_REQUESTS)
            ]
            await latency(starters[0], completions, 20)  # warm up connections, caches and consumer groups
            results: dict[str, Any] = {}
            before, after = await counts.around(latency(starters[0], completions, args.sequential))
            results["one_at_a_time"] = per_unit(before, after, args.sequential)
            before, after = await counts.around(throughput(starters, completions, args.concurrent))
            results[f"{CONCURRENT_REQUESTS}_in_flight"] = per_unit(before, after, args.concurrent)
            completions.pause()
            before, after = await counts.around(asyncio.sleep(IDLE_SECONDS))
            results["idle_per_second"] = per_unit(before, after, IDLE_SECONDS)
            return results
    finally:
        await completions.stop()


def print_table(results: dict[str, Any]) -> None:
    phases = list(results)
    print(f"{'per execution (idle: per second)':<44}" + "".join(f"{phase:>18}" for phase in phases))
    rows: list[tuple[str, str, str]] = [("SQL statements (round trips)", "statements", "")]
    rows += [(f"  {name}", "database", name) for name in ("transactions", "wal_flushes", "wal_records")]
    rows += [("Kafka messages", "kafka_messages", "")]
    rows += [(f"  {topic}", "kafka_messages", topic) for topic in results[phases[1]]["kafka_messages"]]
    rows += [("Kafka requests", "kafka_requests", "")]
    rows += [(f"  {kind}", "kafka_requests", kind) for kind in results[phases[1]]["kafka_requests"]]
    rows += [("wall time (ms)", "wall_ms", ""), ("CPU (ms)", "cpu_ms", "")]
    rows += [(f"  {name}", "cpu_ms", name) for name in results[phases[1]]["cpu_ms"]]
    for label, kind, name in rows:
        figures = [results[phase][kind] for phase in phases]
        values = [figure.get(name, 0.0) if name else sum(figure.values()) for figure in figures]
        if kind == "database" and not name:
            continue
        print(f"{label:<44}" + "".join(f"{value:>18.2f}" for value in values))
    for phase in phases[:2]:
        print(f"\nstatements per execution, {phase.replace('_', ' ')}:")
        for query, calls in results[phase]["statements"].items():
            print(f"{calls:>8.2f}  {' '.join(query.split())[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.per_execution", description=__doc__)
    parser.add_argument("--sequential", type=int, default=100, help="executions one at a time")
    parser.add_argument("--concurrent", type=int, default=1000, help=f"executions {CONCURRENT_REQUESTS} in flight")
    args = parser.parse_args()
    kafka_requests = KafkaRequestCounter()
    with private_stack(statement_stats=True, kafka_requests=kafka_requests) as stack:
        results = uvloop.run(measure(stack, args, kafka_requests))
    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "per_execution.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"written to {RESULTS / 'per_execution.json'}")


if __name__ == "__main__":
    main()
