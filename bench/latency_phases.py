"""Where an idle execution's latency goes: its phases, from the client's clock and PostgreSQL's timestamps.

`uv run python -m bench.latency_phases` (`--executions`, default 200) starts the private stack with commit
timestamps on (`track_commit_timestamp`), starts the bench's 3-step chain one execution after another as
`make bench`'s latency run does (20 to warm up first), and splits each execution's time, submit → completed seen
by the client, into phases read from the same machine's clock:

- **request → statement**: the client's send to the start statement's `statement_timestamp()` (`created_at`):
  HTTP, authentication, limits and routing in the api;
- **statement → executor**: to the first event the executor wrote (`WORKFLOW_STARTED`'s time is its
  transaction's): the start's commit, publishing the request, the broker hop, the executor's fetch and claim;
- **executor → commit**: to the commit of the executor's change (`pg_xact_commit_timestamp` of the row it
  wrote last): the three steps run and written in one statement, and the WAL flush;
- **commit → seen**: to the client's sight of `WORKFLOW_COMPLETED` on the events topic: publishing the events
  and the second broker hop.

It also prints the api's answer (request → `202`) and the CPU each process used per execution. Writes
bench/results/latency_phases.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import asyncpg
import uvloop

from bench.__main__ import CHAIN, Starter, following_completions
from bench.measures import percentile
from bench.stack import RESULTS, Stack, api_headers, machine, private_stack, tenant_api

WARM_UP = 20
PHASES = """
    SELECT extract(epoch FROM e.created_at)::float8 AS statement,
           (SELECT extract(epoch FROM min(v.occurred_at))::float8 FROM execution_events v
            WHERE v.execution_id = e.id AND v.event_type = 'WORKFLOW_STARTED') AS executor,
           extract(epoch FROM pg_xact_commit_timestamp(e.xmin))::float8 AS committed
    FROM executions e WHERE e.id = $1::uuid
"""


class Sample:
    """One execution's moments: the client's (wall clock, for PostgreSQL's timestamps) and the database's."""

    def __init__(self, execution_id: str, sent: float, answered: float, seen: float) -> None:
        self.execution_id = execution_id
        self.sent, self.answered, self.seen = sent, answered, seen
        self.statement = self.executor = self.committed = 0.0


async def run(stack: Stack, executions: int) -> dict[str, Any]:
    env = stack.env
    samples = []
    async with (
        following_completions(stack, CHAIN) as completions,
        Starter(tenant_api(env), api_headers(env)) as starter,
    ):
        for _ in range(WARM_UP):
            await completions.wait(await starter.execute("bench.chain"))
        before = stack.cpu_seconds()
        for _ in range(executions):
            # perf_counter for the client's own intervals; its offset to the wall clock, taken once per
            # execution, places them against PostgreSQL's timestamps.
            wall_offset = time.time() - time.perf_counter()
            sent = time.perf_counter()
            execution_id = await starter.execute("bench.chain")
            answered = time.perf_counter()
            seen = await completions.wait(execution_id)
            samples.append(Sample(execution_id, sent + wall_offset, answered + wall_offset, seen + wall_offset))
        after = stack.cpu_seconds()
    database = await asyncpg.connect(env["FLOWLINE_DATABASE_URL"])
    try:
        for sample in samples:
            row = await database.fetchrow(PHASES, sample.execution_id)
            sample.statement, sample.executor, sample.committed = row["statement"], row["executor"], row["committed"]
    finally:
        await database.close()
    cpu = {name: round((after[name] - used) * 1000 / executions, 2) for name, used in before.items()}
    return {"executions": executions, "phases_ms": phases(samples), "cpu_ms_per_execution": cpu}


def phases(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Each phase's p50, p90 and p99 in milliseconds."""
    spans = {
        "request → statement": [s.statement - s.sent for s in samples],
        "statement → executor": [s.executor - s.statement for s in samples],
        "executor → commit": [s.committed - s.executor for s in samples],
        "commit → seen": [s.seen - s.committed for s in samples],
        "total": [s.seen - s.sent for s in samples],
        "request → 202 (the api's answer)": [s.answered - s.sent for s in samples],
    }
    return {
        name: {
            "p50": round(statistics.median(values) * 1000, 2),
            "p90": round(percentile(values, 0.90) * 1000, 2),
            "p99": round(percentile(values, 0.99) * 1000, 2),
        }
        for name, values in spans.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_phases", description=__doc__)
    parser.add_argument("--executions", type=int, default=200, help="executions, one after another")
    args = parser.parse_args()
    with private_stack(commit_timestamps=True) as stack:
        results = uvloop.run(run(stack, args.executions))
    print(f"{'phase':<36}{'p50':>9}{'p90':>9}{'p99':>9}  (ms)")
    for name, values in results["phases_ms"].items():
        print(f"{name:<36}{values['p50']:>9}{values['p90']:>9}{values['p99']:>9}")
    cpu = results["cpu_ms_per_execution"]
    print(f"CPU per execution: {sum(cpu.values()):.1f} ms — " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency_phases.json").write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
