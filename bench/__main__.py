"""`make bench`: start the local stack and measure it through the REST API.

(a) throughput: executions of a 3-step `core.noop` chain submitted concurrently, completed per second;
(b) latency: executions one after another on an idle system, submit → completed (p50/p99);
(c) a 20-step fan-out/fan-in workflow, steps per second.
Completion is observed on the `flowline.events` topic (WORKFLOW_COMPLETED), as a subscriber would.
It also reports the CPU time each process spent per execution in the throughput run (the bench client's
included: it runs on the same machine), each one's share of a core while the stack sits idle, and how much
of the machine's CPU time its hypervisor took during each run (steal: on a shared host, the main reason one
minute's figures differ from the next's).
Prints a table and writes bench/results/latest.json.

`make bench PEERS=dbos` (``--peers dbos``) runs the latency and throughput workloads on DBOS too, in one sitting,
and prints both engines' figures and Flowline's advantage (bench/side_by_side.py); ``--rounds N`` alternates
Flowline's and the peers' runs N times and compares the medians, for a machine that others load meanwhile.

The other benchmarks run on their own (each starts its own stack and takes a minute or more), so that
`make bench` stays within about three minutes: `uv run python -m bench.log_ingest` (task log ingestion),
`uv run python -m bench.streams` (1,000 live SSE streams), `uv run python -m bench.executions_list`
(execution lists at 1,000,000 executions), `uv run python -m bench.retention` (removing finished executions),
`uv run python -m bench.console_pages` (the console's executions and execution pages at 1,000,000 executions),
`uv run python -m bench.webhooks` (webhook deliveries to a local receiver), `uv run python -m bench.log_retention`
(old task log records removed by dropping partitions versus deleting rows), `uv run python -m bench.per_execution`
(what one execution costs: statements, Kafka messages and requests, CPU by process), `uv run python -m
bench.purge_impact` (the latency and throughput runs alone and while retention removes finished executions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import uvloop
from aiokafka import AIOKafkaConsumer
from flowline.kafka.compat import broker_for
from flowline.messages import EventMessage, decoder
from flowline.settings import Settings, load_settings

from bench.measures import percentile, stolen_seconds
from bench.side_by_side import PEERS, comparison, run_peer
from bench.stack import RESULTS, Stack, api_headers, define, machine, private_stack, tenant_api

IDLE_SECONDS = 5.0
CONCURRENT_REQUESTS = 64  # HTTP requests in flight in the throughput and fan-out runs
CLIENT = "bench client"
EXECUTE_BODY = b'{"input": {}}'

CHAIN = {
    "ref": "bench.chain",
    "definition": {
        "steps": [
            {"id": "one", "type": "action", "action": "core.noop"},
            {"id": "two", "type": "action", "action": "core.noop", "needs": ["one"]},
            {"id": "three", "type": "action", "action": "core.noop", "needs": ["two"]},
        ]
    },
}
FAN_WIDTH = 18
FAN = {
    "ref": "bench.fan",
    "definition": {
        "steps": [
            {"id": "start", "type": "action", "action": "core.noop"},
            *(
                {"id": f"branch{index}", "type": "action", "action": "core.noop", "needs": ["start"]}
                for index in range(FAN_WIDTH)
            ),
            {"id": "join", "type": "action", "action": "core.noop", "needs": [f"branch{i}" for i in range(FAN_WIDTH)]},
        ]
    },
}


class Completions:
    """Follows the events topic and resolves a future per execution when it completes.

    It follows the topic as the api's live streams do, with the stack's broker workarounds (fetch waits).
    """

    def __init__(self, settings: Settings) -> None:
        broker = broker_for(settings)
        self._consumer = AIOKafkaConsumer(
            settings.topics.events,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="latest",
            fetch_max_wait_ms=broker.fetch_max_wait_ms(),
        )
        self._workarounds = broker.consumer_workarounds(self._consumer)
        self._decoder = decoder(EventMessage)
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._done: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.seek_to_end()
        self._task = asyncio.create_task(self._follow())

    def pause(self) -> None:
        """Stop fetching (for the idle measurement: the stack's own idle cost, not this subscriber's polling)."""
        self._consumer.pause(*self._consumer.assignment())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=await self._workarounds.before_fetch(1000))
            self._workarounds.after_fetch(batch)
            for records in batch.values():
                for record in records:
                    self._seen(record.value)

    def _seen(self, value: bytes) -> None:
        if b'"WORKFLOW_' not in value:  # decode only what can finish an execution
            return
        event = self._decoder.decode(value)
        if event.event in ("WORKFLOW_COMPLETED", "WORKFLOW_FAILED"):
            now = time.perf_counter()
            key = str(event.execution_id)
            self._done[key] = now
            future = self._waiting.pop(key, None)
            if future and not future.done():
                future.set_result(now)

    def wait(self, execution_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if execution_id in self._done:
            future.set_result(self._done[execution_id])
        else:
            self._waiting[execution_id] = future
        return future


@asynccontextmanager
async def following_completions(stack: Stack, *workflows: dict[str, Any]) -> AsyncIterator[Completions]:
    """The bench pack and ``workflows`` defined on ``stack``, and the completions of their executions followed."""
    completions = Completions(load_settings(stack.env))
    await completions.start()
    try:
        async with httpx.AsyncClient(
            base_url=tenant_api(stack.env), headers=api_headers(stack.env), timeout=60
        ) as client:
            await define(client, *workflows)
        yield completions
    finally:
        await completions.stop()


class Starter:
    """Starts executions through the REST API over one keep-alive HTTP/1.1 connection of its own.

    The client shares the machine with the stack it measures, so it does no more than a load generator such
    as wrk: it writes a request prepared once (only the path changes) and reads the response by its
    Content-Length. httpcore spent about three times its CPU per request (h11's parser, anyio's locks and
    timeouts), and scanned its whole pool on every request when one pool served every starter.
    """

    def __init__(self, api: str, headers: dict[str, str]) -> None:
        url = urllib.parse.urlsplit(api)
        self._host, self._port, self._prefix = url.hostname or "127.0.0.1", url.port or 80, url.path
        lines = [f"Host: {url.netloc}", "Content-Type: application/json", f"Content-Length: {len(EXECUTE_BODY)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._headers = ("\r\n".join(lines) + "\r\n\r\n").encode() + EXECUTE_BODY
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Starter:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def execute(self, ref: str) -> str:
        """Start an execution of workflow ``ref``; its id."""
        assert self._reader is not None and self._writer is not None, "use the starter in `async with`"
        self._writer.write(f"POST {self._prefix}/workflows/{ref}/execute HTTP/1.1\r\n".encode() + self._headers)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in header_lines if line.lower().startswith("content-length:"))
        body = await self._reader.readexactly(length)
        if status_line.split(" ", 2)[1] != "202":
            raise RuntimeError(f"starting {ref} answered {status_line!r}: {body[:500]!r}")
        return str(json.loads(body)["executionId"])


async def _submit_all(starters: Sequence[Starter], ref: str, count: int) -> list[str]:
    """Start ``count`` executions, one request in flight per starter at a time."""
    remaining = iter(range(count))
    started: list[str] = []

    async def submit(starter: Starter) -> None:
        for _ in remaining:
            started.append(await starter.execute(ref))

    await asyncio.gather(*(submit(starter) for starter in starters))
    return started


async def throughput(starters: Sequence[Starter], completions: Completions, count: int) -> dict[str, float]:
    started = time.perf_counter()
    ids = await _submit_all(starters, "bench.chain", count)
    finished = await asyncio.gather(*(completions.wait(execution_id) for execution_id in ids))
    elapsed = max(finished) - started
    return {"executions": count, "seconds": round(elapsed, 2), "executions_per_second": round(count / elapsed, 1)}


async def latency(starter: Starter, completions: Completions, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        finished = await completions.wait(await starter.execute("bench.chain"))
        samples.append((finished - started) * 1000)
    samples.sort()
    return {
        "executions": count,
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "max_ms": round(samples[-1], 1),
    }


async def fan_out(starters: Sequence[Starter], completions: Completions, count: int) -> dict[str, float]:
    started = time.perf_counter()
    ids = await _submit_all(starters, "bench.fan", count)
    finished = await asyncio.gather(*(completions.wait(execution_id) for execution_id in ids))
    elapsed = max(finished) - started
    steps = count * (FAN_WIDTH + 2)
    return {
        "executions": count,
        "steps": steps,
        "seconds": round(elapsed, 2),
        "steps_per_second": round(steps / elapsed),
    }


async def with_steal(run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A run's results and ``steal_percent``: the share of the machine's CPU time the hypervisor took meanwhile."""
    stolen, started = stolen_seconds(), time.perf_counter()
    results = await run
    available = (time.perf_counter() - started) * (os.cpu_count() or 1)
    results["steal_percent"] = round((stolen_seconds() - stolen) * 100 / available, 1)
    return results


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time every process of the stack, and this one, has used so far."""
    return {**stack.cpu_seconds(), CLIENT: time.process_time()}


async def idle_cpu(stack: Stack) -> dict[str, float]:
    """Each process's share of a core, in percent, while nothing is asked of the stack."""
    before = cpu_seconds(stack)
    await asyncio.sleep(IDLE_SECONDS)
    after = cpu_seconds(stack)
    return {name: round((after[name] - used) * 100 / IDLE_SECONDS, 1) for name, used in before.items()}


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    env = stack.env
    api = tenant_api(env)
    async with following_completions(stack, CHAIN, FAN) as completions, AsyncExitStack() as opened:
        starters = [
            await opened.enter_async_context(Starter(api, api_headers(env))) for _ in range(CONCURRENT_REQUESTS)
        ]
        await latency(starters[0], completions, 20)  # warm up connections, caches and consumer groups
        results: dict[str, Any] = {"latency": await with_steal(latency(starters[0], completions, args.latency))}
        before = cpu_seconds(stack)
        results["throughput"] = await with_steal(throughput(starters, completions, args.throughput))
        after = cpu_seconds(stack)
        results["throughput"]["cpu_ms_per_execution"] = {
            name: round((after[name] - used) * 1000 / args.throughput, 2) for name, used in before.items()
        }
        results["fan_out"] = await with_steal(fan_out(starters, completions, args.fan_out))
        await asyncio.sleep(1)  # the stragglers of the last run (log records, outbox clean-up)
        completions.pause()
        results["idle_cpu_percent"] = await idle_cpu(stack)
        return results


def print_flowline(results: dict[str, Any]) -> None:
    print(f"{'measure':<34}{'value':>12}")
    lat, thr, fan = results["latency"], results["throughput"], results["fan_out"]
    rows = [
        (f"latency p50 ({lat['executions']} sequential)", f"{lat['p50_ms']} ms"),
        ("latency p99", f"{lat['p99_ms']} ms"),
        (f"throughput ({thr['executions']} concurrent)", f"{thr['executions_per_second']} /s"),
        (f"fan-out ({fan['executions']} x {FAN_WIDTH + 2} steps)", f"{fan['steps_per_second']} steps/s"),
    ]
    for name, value in rows:
        print(f"{name:<34}{value:>12}")
    cpu, idle = thr["cpu_ms_per_execution"], results["idle_cpu_percent"]
    print(f"{'CPU per execution (throughput run)':<34}{sum(cpu.values()):>9.1f} ms")
    for name in cpu:
        print(f"  {name:<32}{cpu[name]:>9.2f} ms{idle[name]:>8.1f} % of a core when idle")
    steal = f"{lat['steal_percent']} / {thr['steal_percent']} / {fan['steal_percent']} %"
    print(f"{'CPU stolen by the hypervisor':<34}{steal:>12}  (latency / throughput / fan-out runs)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--throughput", type=int, default=2000, help="executions in the throughput run")
    parser.add_argument("--latency", type=int, default=200, help="executions in the latency run")
    parser.add_argument("--fan-out", type=int, default=50, help="executions of the 20-step fan-out workflow")
    parser.add_argument(
        "--peers", default="", help=f"comma-separated engines to run the chain on too: {', '.join(PEERS)}"
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --peers: rounds of Flowline then each peer")
    args = parser.parse_args()
    peers = [name for name in args.peers.split(",") if name]
    if unknown := set(peers) - set(PEERS):
        parser.error(f"--peers: no peer named {', '.join(sorted(unknown))} (known: {', '.join(PEERS)})")

    rounds: list[dict[str, Any]] = []
    peer_rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in peers}
    for _ in range(args.rounds if peers else 1):
        with private_stack() as stack:
            # The client shares the machine with the stack it measures: uvloop's loop leaves the stack more of it.
            rounds.append(uvloop.run(measure(stack, args)))
        for name in peers:
            peer_rounds[name].append(run_peer(name, latency=args.latency, throughput=args.throughput))

    report: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": rounds[-1],
    }
    if peers:
        report["rounds"] = {"flowline": rounds, **peer_rounds}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print_flowline(rounds[-1])
    for name, runs in peer_rounds.items():
        print(f"\nside by side with {name} {runs[-1]['version']}, medians of {len(runs)} alternating round(s):")
        print(comparison(rounds, name, [run["results"] for run in runs]))
    print(f"written to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
