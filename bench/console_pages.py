"""`python -m bench.console_pages`: the console's executions page with 1,000,000 executions in the table.

Loads the executions as `bench.executions_list` does, signs in to the console (in this process, over its real
database and a Tansu broker), then asks for the executions page with each common filter and for one
execution's page, one request after another, and prints p50/p95/p99 of the server time per page, with the
median CPU time of this process per request (the rest of the time is waiting: for PostgreSQL, or for a core).
The list page also counts the matches in each status (six capped counts). Writes
bench/results/console_pages.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from flowline.settings import load_settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from bench.executions_list import load
from bench.measures import percentile
from bench.stack import RESULTS, machine, private_stack


def pages(facts: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("executions, no filter", "/ui/executions"),
        ("executions, status=failed", "/ui/executions?status=failed"),
        ("executions, running or pending", "/ui/executions?status=running&status=pending"),
        ("executions, workflow", "/ui/executions?workflow=bench.flow7"),
        ("executions, workflow + failed", "/ui/executions?workflow=bench.flow7&status=failed"),
        ("executions, tag", "/ui/executions?tag=team-7"),
        ("executions, metadata", "/ui/executions?meta=customer%3Dc42"),
        ("one execution", f"/ui/executions/{facts['newest_id']}"),
    ]


async def measure(env: dict[str, str], facts: dict[str, Any], requests: int) -> list[dict[str, Any]]:
    app = create_app(load_settings(env))
    results = []
    async with AsyncTestClient(app, base_url="http://bench.local", timeout=60) as client:
        await client.get("/ui/login")
        signed = await client.post(
            "/ui/login",
            data={"credential": env["FLOWLINE_API_KEY"], "_csrf_token": client.cookies["flowline_console_csrf"]},
        )
        signed.raise_for_status()
        for name, path in pages(facts):
            for _ in range(3):  # warm up
                (await client.get(path)).raise_for_status()
            samples, cpu = [], []
            for _ in range(requests):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = await client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
                response.raise_for_status()
            results.append(
                {
                    "page": name,
                    "path": path,
                    "bytes": len(response.content),
                    "p50_ms": round(statistics.median(samples), 1),
                    "p95_ms": round(percentile(samples, 0.95), 1),
                    "p99_ms": round(percentile(samples, 0.99), 1),
                    "cpu_p50_ms": round(statistics.median(cpu), 1),
                }
            )
            shown = results[-1]
            print(
                f"  {name:<34} p50 {shown['p50_ms']:>6} ms  p95 {shown['p95_ms']:>6} ms  p99 {shown['p99_ms']:>6} ms  "
                f"CPU p50 {shown['cpu_p50_ms']:>5} ms",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_pages", description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000, help="executions to load")
    parser.add_argument("--requests", type=int, default=100, help="requests per page")
    args = parser.parse_args()

    with private_stack(services=(), durable=False) as stack:
        print(f"loading {args.executions:,} executions …", flush=True)
        facts = asyncio.run(load(stack.postgres.url, args.executions))
        print(f"measuring {args.requests} sequential requests per page …", flush=True)
        results = asyncio.run(measure(stack.env, facts, args.requests))

    report = {
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "executions": args.executions,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_pages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| {'page':<34} | {'bytes':>8} | {'p50':>8} | {'p95':>8} | {'p99':>8} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for row in results:
        print(
            f"| {row['page']:<34} | {row['bytes']:>8} | {row['p50_ms']:>5} ms | {row['p95_ms']:>5} ms "
            f"| {row['p99_ms']:>5} ms |"
        )
    print(f"written to {RESULTS / 'console_pages.json'}")


if __name__ == "__main__":
    main()
