"""`python -m bench.webhooks`: webhook deliveries to a local receiver: commit → delivered, and how many a second.

Starts the whole stack (four services as processes) and a receiver in this process (a bare ASGI app under
uvicorn on 127.0.0.1 answering 204). Idle: one webhook of WORKFLOW_COMPLETED, executions of a one-step
workflow one after another, each delivery awaited before the next start. Load: W webhooks of WORKFLOW_COMPLETED
(default 5), so every execution makes W deliveries, and N executions (default 1,000) started 64 at a time:
deliveries per second from the first arrival to the last, and their latency under load. Latency is arrival
minus the body's `timestamp`, the event's time taken inside the committing transaction: it includes the rest
of the commit, the outbox publish, the broker, the scheduler's consumer and delivery loop, and the receiver.
Also reports, per delivery of the load phase, the CPU time every process used (this process's included: on a
2-core machine the bench competes with the stack) and the SQL statements the database ran (pg_stat_statements;
those naming webhook tables apart). Prints a table and writes bench/results/webhooks.json. Timings are never
asserted anywhere. `python -m bench.webhook_loop` measures the delivery loop alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from flowline.runtime.ops import http_server
from flowline.runtime.outbound import LOOPBACK_NETWORKS
from flowline_devstack.ports import free_port

from bench.measures import percentile
from bench.stack import RESULTS, Stack, api_headers, define, machine, private_stack, tenant_api

STATEMENTS = """
    SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat%'
    GROUP BY query
"""
#: Cumulative statistics reach the views up to a second after a backend's transaction (PostgreSQL 15).
STATS_DELAY_SECONDS = 1.5

CONCURRENT_STARTS = 64
WAIT_SECONDS = 600  # bounds a run whose deliveries stopped coming
WORKFLOW = {
    "ref": "bench.hooked",
    "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]},
}


@dataclass
class Receiver:
    """An ASGI app that answers every delivery 204 and notes when it came and what event time it carries."""

    latencies_ms: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        now = time.time()
        event_time = datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()
        self.latencies_ms.append((now - event_time) * 1000)
        self.arrivals.append(now)
        self.ids.add(dict(scope["headers"])[b"webhook-id"].decode())
        self.arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.arrivals) < count:
                self.arrived.clear()
                await self.arrived.wait()


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "max_ms": round(max(samples), 1),
    }


async def idle(client: httpx.AsyncClient, receiver: Receiver, count: int) -> dict[str, float]:
    """One execution at a time, each delivery awaited: the latency of a quiet stack."""
    start = len(receiver.latencies_ms)
    for done in range(count):
        (await client.post(f"/workflows/{WORKFLOW['ref']}/execute", json={"input": {}})).raise_for_status()
        await receiver.wait_for(start + done + 1)
    return summary(receiver.latencies_ms[start:])


async def load(
    stack: Stack, client: httpx.AsyncClient, receiver: Receiver, webhooks: int, count: int
) -> dict[str, Any]:
    """``count`` executions started ``CONCURRENT_STARTS`` at a time, each told to ``webhooks`` webhooks."""
    start = len(receiver.arrivals)
    database = await asyncpg.connect(stack.env["FLOWLINE_DATABASE_URL"])
    await database.execute("SELECT pg_stat_statements_reset()")
    cpu_before = stack.cpu_seconds() | {"bench": time.process_time()}
    gate = asyncio.Semaphore(CONCURRENT_STARTS)

    async def execute() -> None:
        async with gate:
            (await client.post(f"/workflows/{WORKFLOW['ref']}/execute", json={"input": {}})).raise_for_status()

    await asyncio.gather(*(execute() for _ in range(count)))
    await receiver.wait_for(start + webhooks * count)
    cpu_after = stack.cpu_seconds() | {"bench": time.process_time()}
    await asyncio.sleep(STATS_DELAY_SECONDS)
    statements = await statements_per(database, webhooks * count)
    await database.close()
    arrivals = receiver.arrivals[start:]
    seconds = max(arrivals) - min(arrivals)
    return {
        "deliveries": len(arrivals),
        "seconds": round(seconds, 2),
        "deliveries_per_second": round(len(arrivals) / seconds, 1) if seconds else None,
        **summary(receiver.latencies_ms[start:]),
        "cpu_seconds": {name: round(cpu_after[name] - used, 2) for name, used in cpu_before.items()},
        "statements_per_delivery": statements,
    }


async def statements_per(database: asyncpg.Connection, deliveries: int) -> dict[str, Any]:
    """Statements run since the last reset, per delivery: in all, those naming a webhook table, and those by text."""
    calls = {record["query"]: record["calls"] for record in await database.fetch(STATEMENTS)}
    hooks = {query: count for query, count in calls.items() if "webhook" in query}
    return {
        "all": round(sum(calls.values()) / deliveries, 3),
        "webhook_tables": round(sum(hooks.values()) / deliveries, 3),
        "by_statement": {
            query[:160]: round(count / deliveries, 4)
            for query, count in sorted(hooks.items(), key=lambda item: -item[1])
        },
    }


async def measure(stack: Stack, webhooks: int, executions: int, idle_runs: int) -> dict[str, Any]:
    receiver = Receiver()
    port = free_port()
    server = http_server(receiver, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    api = tenant_api(stack.env)
    try:
        async with httpx.AsyncClient(base_url=api, headers=api_headers(stack.env), timeout=60) as client:
            await define(client, WORKFLOW)
            hook = {"url": f"http://127.0.0.1:{port}/hook", "events": ["WORKFLOW_COMPLETED"]}
            (await client.post("/webhooks", json=hook)).raise_for_status()
            quiet = await idle(client, receiver, idle_runs)
            for _ in range(webhooks - 1):
                (await client.post("/webhooks", json=hook)).raise_for_status()
            busy = await load(stack, client, receiver, webhooks, executions)
    finally:
        server.should_exit = True
        await serving
    return {
        "idle": {"executions": idle_runs, **quiet},
        "load": {"webhooks": webhooks, "executions": executions, **busy},
        "distinct_webhook_ids": len(receiver.ids),
        "deliveries_received": len(receiver.arrivals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=5, help="webhooks told of every execution under load")
    parser.add_argument("--executions", type=int, default=1000, help="executions started under load")
    parser.add_argument("--idle", type=int, default=100, help="executions one after another on a quiet stack")
    args = parser.parse_args()
    # The receiver listens on this machine: the stack's outbound policy must let the scheduler reach it.
    os.environ["FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"] = LOOPBACK_NETWORKS

    with private_stack(statement_stats=True) as stack:
        result = asyncio.run(measure(stack, args.webhooks, args.executions, args.idle))

    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "result": result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(report, indent=2) + "\n")
    quiet, busy = result["idle"], result["load"]
    rows = [
        (
            f"idle: commit → receiver p50 / p99 ({quiet['executions']} runs)",
            f"{quiet['p50_ms']} / {quiet['p99_ms']} ms",
        ),
        (f"load: deliveries ({busy['webhooks']} webhooks x {busy['executions']:,})", f"{busy['deliveries']:,}"),
        ("load: deliveries per second", f"{busy['deliveries_per_second']}"),
        ("load: commit → receiver p50 / p99", f"{busy['p50_ms']} / {busy['p99_ms']} ms"),
        ("distinct webhook-ids / received", f"{result['distinct_webhook_ids']:,} / {result['deliveries_received']:,}"),
    ]
    for name, value in rows:
        print(f"{name:<52}{value:>24}")
    cpu = busy["cpu_seconds"]
    used = ", ".join(f"{name} {seconds} s" for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]))
    print(f"CPU under load ({busy['seconds']} s of deliveries): {used}")
    per_delivery = ", ".join(
        f"{name} {seconds * 1000 / busy['deliveries']:.2f}"
        for name, seconds in sorted(cpu.items(), key=lambda x: -x[1])
    )
    print(f"CPU ms per delivery under load: {per_delivery}")
    statements = busy["statements_per_delivery"]
    print(f"statements per delivery: {statements['all']} in all, {statements['webhook_tables']} on webhook tables:")
    for query, calls in statements["by_statement"].items():
        print(f"  {calls:>8}  {query}")
    print(f"written to {RESULTS / 'webhooks.json'}")


if __name__ == "__main__":
    main()
