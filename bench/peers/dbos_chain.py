"""The 3-step no-op chain of `make bench` as a DBOS workflow, started with ``start_workflow`` in one process.

`python -m bench --peers dbos` runs it in an environment of its own (``uv run --no-project --with dbos``)
against a private PostgreSQL it started with Flowline's durability settings (fsync and synchronous commit on).
As Flowline's bench does, it measures
(a) idle latency: workflows one after another, start → result seen by this client, p50/p99;
(b) throughput: executions started by CONCURRENT_STARTS starters at once, completed per second, and the CPU
    time per execution of this process (DBOS runs inside it) and of PostgreSQL;
(c) the share of a core this process and PostgreSQL use while nothing is asked of them.
Writes one JSON object to --output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import statistics
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from dbos import DBOS

from bench.measures import percentile, postgres_cpu_seconds, stolen_seconds

CONCURRENT_STARTS = 64  # as many as Flowline's bench keeps requests in flight
IDLE_SECONDS = 5.0


@DBOS.step()
async def noop() -> None:
    """The step of the chain: does nothing, as Flowline's ``core.noop``."""


@DBOS.workflow()
async def chain() -> None:
    """Three steps, one after the other."""
    await noop()
    await noop()
    await noop()


async def latency(count: int) -> dict[str, Any]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await (await DBOS.start_workflow_async(chain)).get_result()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "executions": count,
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "max_ms": round(max(samples), 1),
    }


async def throughput(count: int) -> dict[str, Any]:
    remaining = iter(range(count))
    results: list[Awaitable[None]] = []

    async def start() -> None:
        for _ in remaining:
            results.append((await DBOS.start_workflow_async(chain)).get_result())

    started = time.perf_counter()
    await asyncio.gather(*(start() for _ in range(CONCURRENT_STARTS)))
    await asyncio.gather(*results)
    elapsed = time.perf_counter() - started
    return {"executions": count, "seconds": round(elapsed, 2), "executions_per_second": round(count / elapsed, 1)}


async def with_steal(run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A run's results and ``steal_percent``: the share of the machine's CPU time the hypervisor took meanwhile."""
    stolen, started = stolen_seconds(), time.perf_counter()
    results = await run
    available = (time.perf_counter() - started) * (os.cpu_count() or 1)
    results["steal_percent"] = round((stolen_seconds() - stolen) * 100 / available, 1)
    return results


def cpu_seconds(postmaster: int) -> dict[str, float]:
    return {"dbos": time.process_time(), "postgres": postgres_cpu_seconds(postmaster)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    DBOS(config={"name": "bench-chain", "system_database_url": args.database_url, "log_level": "WARNING"})
    DBOS.launch()
    try:
        await latency(20)  # warm up connections and caches
        results: dict[str, Any] = {"latency": await with_steal(latency(args.latency))}
        before = cpu_seconds(args.postmaster_pid)
        results["throughput"] = await with_steal(throughput(args.throughput))
        after = cpu_seconds(args.postmaster_pid)
        results["throughput"]["cpu_ms_per_execution"] = {
            name: round((after[name] - used) * 1000 / args.throughput, 2) for name, used in before.items()
        }
        await asyncio.sleep(1)  # let the last run's connections settle
        before = cpu_seconds(args.postmaster_pid)
        await asyncio.sleep(IDLE_SECONDS)
        after = cpu_seconds(args.postmaster_pid)
        results["idle_cpu_percent"] = {
            name: round((after[name] - used) * 100 / IDLE_SECONDS, 1) for name, used in before.items()
        }
        return results
    finally:
        DBOS.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.dbos_chain", description=__doc__)
    parser.add_argument("--database-url", required=True, help="the private PostgreSQL DBOS keeps its state in")
    parser.add_argument("--postmaster-pid", type=int, required=True, help="its server process, for its CPU time")
    parser.add_argument("--output", type=Path, required=True, help="where the results go (JSON)")
    parser.add_argument("--throughput", type=int, default=2000, help="executions in the throughput run")
    parser.add_argument("--latency", type=int, default=200, help="executions in the latency run")
    args = parser.parse_args()
    results = asyncio.run(measure(args))
    args.output.write_text(json.dumps({"version": importlib.metadata.version("dbos"), "results": results}))


if __name__ == "__main__":
    main()
