"""`python -m bench.purge_impact`: what a retention purge costs the `make bench` latency and throughput runs.

Starts the stack (its own scheduler keeps executions 10 years, so that it removes nothing by itself), loads
`--executions` finished executions 40 days old with their rows as `bench.retention` does, then runs the latency
run (p50/p99, one execution after another) and the throughput run (`--throughput` concurrent executions) of
`make bench` three times: alone; while `--loops` retention loops (30 days, in a process of their own, as a
scheduler would, beside one pass of its task log partition loop, which drops the old records' day partition)
remove the old executions, from their first batch on; and alone again. Prints each phase, the
ratio of the purge phase to the mean of the two alone, and how many executions the purge removed per second
meanwhile; a purge that ended before the phase did is reported (load more). Writes
bench/results/purge_impact.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import uvloop

from bench.__main__ import (
    CHAIN,
    CONCURRENT_REQUESTS,
    Completions,
    Starter,
    following_completions,
    latency,
    throughput,
    with_steal,
)
from bench.retention import load, purge
from bench.stack import RESULTS, Stack, api_headers, machine, private_stack, tenant_api

OLD_EXECUTIONS = "SELECT count(*) FROM executions WHERE workflow_ref = 'old.purge'"


def _purge(env: dict[str, str], loops: int, batch_size: int) -> None:
    """The purge, in a process of its own (the bench client's loop must not run it)."""
    asyncio.run(purge(env, loops, batch_size, drop_partitions=True))


async def _phase(starters: Sequence[Starter], completions: Completions, args: argparse.Namespace) -> dict[str, Any]:
    """One latency run and one throughput run, as `make bench` makes them."""
    return {
        "latency": await with_steal(latency(starters[0], completions, args.latency)),
        "throughput": await with_steal(throughput(starters, completions, args.throughput)),
    }


async def _purging_phase(
    stack: Stack, starters: Sequence[Starter], completions: Completions, args: argparse.Namespace
) -> dict[str, Any]:
    """A phase while the purge runs, with what the purge removed meanwhile."""
    connection = await asyncpg.connect(stack.postgres.url)
    purger = multiprocessing.get_context("spawn").Process(
        target=_purge, args=(stack.env, args.loops, args.batch_size), daemon=True
    )
    try:
        loaded = await connection.fetchval(OLD_EXECUTIONS)
        purger.start()
        while (before := await connection.fetchval(OLD_EXECUTIONS)) == loaded:  # until its first batch is in
            if not purger.is_alive():
                raise RuntimeError(f"the purge ended (exit code {purger.exitcode}) before removing anything")
            await asyncio.sleep(0.2)
        started = time.perf_counter()
        results = await _phase(starters, completions, args)
        after, seconds = await connection.fetchval(OLD_EXECUTIONS), time.perf_counter() - started
        results["purge"] = {
            "removed_executions": before - after,
            "executions_per_second": round((before - after) / seconds),
            "ran_throughout": purger.is_alive() and after > 0,
        }
        return results
    finally:
        if purger.is_alive():
            purger.terminate()
        purger.join()
        await connection.close()


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    env = stack.env
    async with following_completions(stack, CHAIN) as completions, AsyncExitStack() as opened:
        starters = [
            await opened.enter_async_context(Starter(tenant_api(env), api_headers(env)))
            for _ in range(CONCURRENT_REQUESTS)
        ]
        await latency(starters[0], completions, 20)  # warm up connections, caches and consumer groups
        alone = await _phase(starters, completions, args)
        purging = await _purging_phase(stack, starters, completions, args)
        alone_again = await _phase(starters, completions, args)
        return {"alone": alone, "purging": purging, "alone_again": alone_again}


def _ratios(results: dict[str, Any]) -> dict[str, float]:
    """The purge phase's throughput and latency p99 over the mean of the two phases alone."""
    alone = (results["alone"], results["alone_again"])
    throughput_alone = sum(phase["throughput"]["executions_per_second"] for phase in alone) / 2
    p99_alone = sum(phase["latency"]["p99_ms"] for phase in alone) / 2
    return {
        "throughput": round(results["purging"]["throughput"]["executions_per_second"] / throughput_alone, 2),
        "latency_p99": round(results["purging"]["latency"]["p99_ms"] / p99_alone, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.purge_impact", description=__doc__)
    parser.add_argument("--executions", type=int, default=200_000, help="finished executions for the purge")
    parser.add_argument("--throughput", type=int, default=2000, help="executions in each throughput run")
    parser.add_argument("--latency", type=int, default=200, help="executions in each latency run")
    parser.add_argument("--loops", type=int, default=2, help="retention loops side by side (schedulers)")
    parser.add_argument("--batch-size", type=int, default=1000, help="root executions per batch")
    args = parser.parse_args()

    # The stack's own scheduler (its retention read when it starts) removes nothing: only the purge phase does.
    os.environ["FLOWLINE_EXECUTION_RETENTION"] = "3650d"
    with private_stack() as stack:
        print(f"loading {args.executions:,} finished executions and their rows …", flush=True)
        facts = asyncio.run(load(stack.postgres.url, args.executions))
        results = uvloop.run(measure(stack, args))

    ratios = _ratios(results)
    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **facts}
    report.update(results=results, ratios=ratios, executions=args.executions)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "purge_impact.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'phase':<14}{'throughput':>14}{'latency p50':>14}{'latency p99':>14}")
    for name in ("alone", "purging", "alone_again"):
        thr, lat = results[name]["throughput"], results[name]["latency"]
        print(f"{name:<14}{thr['executions_per_second']:>12} /s{lat['p50_ms']:>11} ms{lat['p99_ms']:>11} ms")
    print(f"purging / alone: throughput x {ratios['throughput']}, latency p99 x {ratios['latency_p99']}")
    purge_facts = results["purging"]["purge"]
    print(
        f"the purge removed {purge_facts['removed_executions']:,} executions meanwhile "
        f"({purge_facts['executions_per_second']:,}/s)"
        + ("" if purge_facts["ran_throughout"] else "; it ended before the phase did: load more executions")
    )
    print(f"written to {RESULTS / 'purge_impact.json'}")


if __name__ == "__main__":
    main()
