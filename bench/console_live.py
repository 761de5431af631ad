"""`python -m bench.console_live`: a state event committed → its fragment on the open execution page.

Starts the whole stack (four services as processes) and N executions (default 20) of `bench.streams`'s workflow
(two wait steps side by side, `ping`, followed by a `core.noop` step `pong`, and `hold`). Signs in to the console
and opens each execution's page stream, `GET /ui/executions/{id}/live`, as the page does (the fragments of the
page as it is now, then a burst of fragments each time its events change something). Then it resolves the `ping`
promises at a steady rate and, once every `pong` completed, the `hold` ones, until the server ends each stream.
For each event committed after the streams opened, the delay is the arrival of the first fragment whose SSE id
(the sequence of the last event it shows) reaches the event's, minus the event row's `occurred_at`. That time
is taken inside the committing transaction before its statement, so the figure is conservative: it includes the
commit, the outbox publish, the broker, the api's stream, re-rendering the page's parts and the client. Prints
p50/p95/p99 and the CPU time of every process in the live phase; writes bench/results/console_live.json.
Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.measures import percentile
from bench.sse import frames
from bench.stack import RESULTS, Stack, api_headers, define, machine, private_stack, tenant_api
from bench.streams import HELD, resolve_all


@dataclass
class Page:
    """One open page's stream: when the first fragment of each SSE id arrived (epoch ms)."""

    execution_id: str
    arrivals: dict[int, float] = field(default_factory=dict)
    open: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, console: httpx.AsyncClient) -> None:
        """Follow the page's stream until the server ends it (its ``end`` event, after the final status)."""
        async with console.stream("GET", f"/ui/executions/{self.execution_id}/live") as response:
            response.raise_for_status()
            self.open.set()
            async for frame in frames(response):
                if frame.event == "end":
                    return
                if frame.id is not None and frame.id.isdigit():
                    self.arrivals.setdefault(int(frame.id), frame.arrived_ms)

    def reached(self, sequence: int) -> float | None:
        """When the page first showed the state after event ``sequence``."""
        return min((at for shown, at in self.arrivals.items() if shown >= sequence), default=None)


async def signed_in(base: str, key: str) -> httpx.AsyncClient:
    console = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60, read=None), limits=httpx.Limits())
    (await console.get("/ui/login")).raise_for_status()
    signed = await console.post(
        "/ui/login", data={"credential": key, "_csrf_token": console.cookies["flowline_console_csrf"]}
    )
    if signed.status_code >= 400:
        raise RuntimeError(f"signing in to the console answered {signed.status_code}")
    return console


async def wait_for(database: asyncpg.Connection, sql: str, ids: list[str], expected: int) -> None:
    """Poll ``sql`` (a count over the executions ``ids``) until it reaches ``expected``."""
    for _ in range(1200):
        if await database.fetchval(sql, ids) >= expected:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{sql} never reached {expected}")


async def measure(stack: Stack, count: int, rate: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{stack.env['FLOWLINE_API_PORT']}"
    commands = httpx.AsyncClient(base_url=tenant_api(stack.env), headers=api_headers(stack.env), timeout=60)
    console = await signed_in(base, stack.env["FLOWLINE_API_KEY"])
    database = await asyncpg.connect(stack.env["FLOWLINE_DATABASE_URL"])
    try:
        await define(commands, HELD)
        started = await asyncio.gather(*(commands.post("/workflows/bench.held/execute", json={}) for _ in range(count)))
        ids = [str(response.raise_for_status().json()["executionId"]) for response in started]
        await wait_for(database, "SELECT count(*) FROM promises WHERE execution_id = ANY($1::uuid[])", ids, 2 * count)
        pages = [Page(execution_id) for execution_id in ids]
        readers = [asyncio.create_task(page.read(console)) for page in pages]
        await asyncio.wait_for(asyncio.gather(*(page.open.wait() for page in pages)), 120)
        await asyncio.sleep(1)  # the streams' first fragments (the pages as they are) are in
        live_from = await database.fetchval("SELECT clock_timestamp()")
        cpu_before = {**stack.cpu_seconds(), "bench client": time.process_time()}
        live_started = time.perf_counter()
        await resolve_all(commands, ids, "ping", rate)
        await wait_for(
            database,
            "SELECT count(*) FROM step_executions WHERE execution_id = ANY($1::uuid[]) AND step_id = 'pong' "
            "AND status = 'completed'",
            ids,
            count,
        )
        await resolve_all(commands, ids, "hold", rate)
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        live_seconds = time.perf_counter() - live_started
        cpu_after = {**stack.cpu_seconds(), "bench client": time.process_time()}
        events = await database.fetch(
            "SELECT execution_id::text, sequence, event_type, extract(epoch FROM occurred_at) * 1000 AS at "
            "FROM execution_events WHERE execution_id = ANY($1::uuid[]) AND occurred_at >= $2",
            ids,
            live_from,
        )
    finally:
        await database.close()
        await console.aclose()
        await commands.aclose()
    by_id = {page.execution_id: page for page in pages}
    delays = sorted(
        reached - float(event["at"])
        for event in events
        if (reached := by_id[event["execution_id"]].reached(event["sequence"])) is not None
    )
    return {
        "pages": count,
        "resolve_rate_per_second": rate,
        "events": len(events),
        "events_shown": len(delays),
        "delivery_p50_ms": round(statistics.median(delays), 1),
        "delivery_p95_ms": round(percentile(delays, 0.95), 1),
        "delivery_p99_ms": round(percentile(delays, 0.99), 1),
        "delivery_max_ms": round(delays[-1], 1),
        "live_seconds": round(live_seconds, 2),
        "cpu_seconds_live_phase": {name: round(cpu_after[name] - used, 2) for name, used in cpu_before.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_live", description=__doc__)
    parser.add_argument("--pages", type=int, default=20, help="executions, one open page stream each")
    parser.add_argument("--rate", type=float, default=5, help="promises resolved per second")
    args = parser.parse_args()

    with private_stack() as stack:
        result = asyncio.run(measure(stack, args.pages, args.rate))

    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "result": result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_live.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
