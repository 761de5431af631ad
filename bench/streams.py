"""`python -m bench.streams`: live SSE streams on one api process, event committed → delivered to the client.

Starts the whole stack (four services as processes) and N executions (default 1,000) of a workflow with two
wait steps side by side, `ping` (followed by a `core.noop` step, `pong`) and `hold`, then opens one
`GET /executions/{id}/stream` per execution, so N streams are held open on the api. It resolves the `ping`
promises at a steady rate, and for every event that arrives on a stream measures arrival minus the event's
`timestampMs`. That timestamp is taken inside the committing transaction just before its last statements, so
the figure is conservative: it includes the rest of the commit, the outbox publish, the broker, the api's
fan-out and the client. Finally it resolves `hold`, and counts the streams the server closes after the final
event. Also reports the api's resident memory (VmRSS) before and with the streams open, and the CPU time of
every process during the live phase, the bench client's own included: on a 2-core machine the client competes
with the stack. Prints a table and writes bench/results/streams.json. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from flowline_schemas.streams import FINAL_EVENTS

from bench.measures import percentile
from bench.sse import frames
from bench.stack import RESULTS, Stack, api_headers, define, machine, private_stack, rss_bytes, tenant_api

HELD = {
    "ref": "bench.held",
    "definition": {
        "steps": [
            {"id": "ping", "type": "wait", "promise": "ping"},
            {"id": "pong", "type": "action", "action": "core.noop", "needs": ["ping"]},
            {"id": "hold", "type": "wait", "promise": "hold"},
        ]
    },
}


@dataclass
class Stream:
    """What one client stream has received: each event's name, its timestampMs and when it arrived (ms)."""

    execution_id: str
    events: list[tuple[str, int, float]] = field(default_factory=list)
    promises: int = 0
    open: bool = False
    closed_by_server: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pong_completed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, client: httpx.AsyncClient, opened: asyncio.Semaphore) -> None:
        """Follow the stream until the server closes it; ``ready`` once both promises wait."""
        async with AsyncExitStack() as held:
            async with opened:  # a few streams open at a time: each opening reads the event log
                response = await held.enter_async_context(
                    client.stream("GET", f"/executions/{self.execution_id}/stream")
                )
            response.raise_for_status()
            self.open = True
            async for frame in frames(response):
                payload = json.loads(frame.data) if frame.data else {}
                if payload.get("type") != "Event":
                    continue
                self.events.append((payload["event"], payload["timestampMs"], frame.arrived_ms))
                if payload["event"] == "PROMISE_CREATED":
                    self.promises += 1
                    if self.promises == 2:
                        self.ready.set()
                elif payload["event"] == "TASK_COMPLETED" and payload.get("stepId") == "pong":
                    self.pong_completed.set()
            self.open = False
            self.closed_by_server = bool(self.events) and self.events[-1][0] in FINAL_EVENTS


async def resolve_all(client: httpx.AsyncClient, execution_ids: list[str], promise: str, rate: float) -> None:
    """Resolve ``promise`` of every execution, ``rate`` per second, without waiting for one to finish first."""
    started = time.perf_counter()

    async def resolve(index: int, execution_id: str) -> None:
        await asyncio.sleep(max(started + index / rate - time.perf_counter(), 0))
        response = await client.post(f"/executions/{execution_id}/promises/{promise}/resolve", json={})
        response.raise_for_status()

    await asyncio.gather(*(resolve(index, execution_id) for index, execution_id in enumerate(execution_ids)))


async def measure(stack: Stack, count: int, rate: float) -> dict[str, Any]:
    api_pid = stack.services["api"].pid
    assert api_pid is not None
    base = tenant_api(stack.env)
    headers = api_headers(stack.env)
    commands = httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=httpx.Limits(max_connections=32))
    listening = httpx.AsyncClient(
        base_url=base,
        headers=headers,
        timeout=httpx.Timeout(60, read=None),
        limits=httpx.Limits(max_connections=count + 10),
    )
    async with commands, listening:
        await define(commands, HELD)
        started = await asyncio.gather(*(commands.post("/workflows/bench.held/execute", json={}) for _ in range(count)))
        streams = [Stream(str(response.raise_for_status().json()["executionId"])) for response in started]
        rss_before = rss_bytes(api_pid)

        opening = time.perf_counter()
        opened = asyncio.Semaphore(20)
        readers = [asyncio.create_task(stream.read(listening, opened)) for stream in streams]
        await asyncio.wait_for(asyncio.gather(*(stream.ready.wait() for stream in streams)), 300)
        open_seconds = time.perf_counter() - opening
        rss_open = rss_bytes(api_pid)

        live_from = time.time() * 1000
        cpu_before = {**stack.cpu_seconds(), "bench client": time.process_time()}
        live_started = time.perf_counter()
        await resolve_all(commands, [stream.execution_id for stream in streams], "ping", rate)
        await asyncio.wait_for(asyncio.gather(*(stream.pong_completed.wait() for stream in streams)), 120)
        live_seconds = time.perf_counter() - live_started
        cpu_after = {**stack.cpu_seconds(), "bench client": time.process_time()}
        held_open = sum(stream.open for stream in streams)
        rss_live = rss_bytes(api_pid)
        delays = sorted(arrived - ts for stream in streams for _, ts, arrived in stream.events if ts >= live_from)

        closing_from = time.time() * 1000
        await resolve_all(commands, [stream.execution_id for stream in streams], "hold", rate)
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        closing = sorted(arrived - ts for stream in streams for _, ts, arrived in stream.events if ts >= closing_from)

    return {
        "streams": count,
        "streams_held_open": held_open,
        "open_seconds": round(open_seconds, 2),
        "resolve_rate_per_second": rate,
        "live_seconds": round(live_seconds, 2),
        "events_delivered": len(delays),
        "delivery_p50_ms": round(statistics.median(delays), 1),
        "delivery_p99_ms": round(percentile(delays, 0.99), 1),
        "delivery_max_ms": round(delays[-1], 1),
        "closing_events_delivered": len(closing),
        "closing_delivery_p50_ms": round(statistics.median(closing), 1),
        "closing_delivery_p99_ms": round(percentile(closing, 0.99), 1),
        "streams_closed_after_final_event": sum(stream.closed_by_server for stream in streams),
        "api_rss_mib": {
            "before_streams": round(rss_before / 2**20, 1),
            "streams_open": round(rss_open / 2**20, 1),
            "after_live_phase": round(rss_live / 2**20, 1),
        },
        "api_rss_kib_per_stream": round((rss_open - rss_before) / 1024 / count, 1),
        "cpu_seconds_live_phase": {name: round(cpu_after[name] - used, 2) for name, used in cpu_before.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000, help="executions, one stream each")
    parser.add_argument("--rate", type=float, default=50, help="promises resolved per second")
    args = parser.parse_args()

    with private_stack() as stack:
        result = asyncio.run(measure(stack, args.streams, args.rate))

    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "result": result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streams.json").write_text(json.dumps(report, indent=2) + "\n")
    rss = result["api_rss_mib"]
    cpu = result["cpu_seconds_live_phase"]
    rows = [
        ("streams held open (one api process)", f"{result['streams_held_open']:,} / {result['streams']:,}"),
        ("time to open them", f"{result['open_seconds']} s"),
        (f"events delivered ({args.rate:g} resolves/s)", f"{result['events_delivered']:,}"),
        ("commit → client p50", f"{result['delivery_p50_ms']} ms"),
        ("commit → client p99", f"{result['delivery_p99_ms']} ms"),
        ("commit → client max", f"{result['delivery_max_ms']} ms"),
        ("closing: p50 / p99", f"{result['closing_delivery_p50_ms']} / {result['closing_delivery_p99_ms']} ms"),
        ("streams closed after the final event", f"{result['streams_closed_after_final_event']:,}"),
        ("api RSS before / with streams", f"{rss['before_streams']} / {rss['streams_open']} MiB"),
        ("api RSS per stream", f"{result['api_rss_kib_per_stream']} KiB"),
    ]
    for name, value in rows:
        print(f"{name:<40}{value:>24}")
    used = ", ".join(f"{name} {seconds} s" for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]))
    print(f"CPU during the live phase ({result['live_seconds']} s): {used}")
    print(f"written to {RESULTS / 'streams.json'}")


if __name__ == "__main__":
    main()
