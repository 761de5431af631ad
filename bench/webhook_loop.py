"""`python -m bench.webhook_loop`: the scheduler's webhook delivery loop alone, against a receiver in this process.

A private PostgreSQL (pg_stat_statements on), ``--webhooks`` webhooks (default 5) to a bare ASGI receiver under
uvicorn on 127.0.0.1 answering 204, and ``--deliveries`` (default 3,000) deliveries due at once, each of its own
execution; then the scheduler's ``WebhookDeliveryLoop`` with its settings' defaults sends them all
(``--concurrent``: at most this many in flight instead of the setting's 50). No executions, broker or events
consumer: what one delivery costs the loop, its HTTP client and the queue's statements. Reports deliveries per
second (first arrival to last), CPU per delivery of this process (the loop and the receiver) and of
PostgreSQL, and statements per delivery by statement; ``--profile`` runs the loop under cProfile and prints
the functions that took the most time (the receiver's included). Writes bench/results/webhook_loop.json.
Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import uvloop
from cryptography.fernet import Fernet
from flowline.db.migrate import ensure_tenant, upgrade_head
from flowline.db.pool import create_pool
from flowline.domain.agents import auth_cipher, seal_secret
from flowline.domain.webhooks import new_secret
from flowline.runtime.ops import http_server
from flowline.runtime.outbound import LOOPBACK_NETWORKS
from flowline.settings import load_settings
from flowline_devstack.ports import free_port
from flowline_devstack.postgres import PrivatePostgres
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.webhooks import WebhookDeliveryLoop, create_webhook_client
from prometheus_client import CollectorRegistry

from bench.measures import postgres_cpu_seconds
from bench.stack import RESULTS, enable_statement_stats, machine
from bench.webhooks import STATS_DELAY_SECONDS, Receiver, statements_per, summary


async def measure(url: str, postmaster: int, args: argparse.Namespace) -> dict[str, Any]:
    webhooks, deliveries, profile = args.webhooks, args.deliveries, args.profile
    key = Fernet.generate_key().decode()
    settings = msgspec.structs.replace(
        load_settings({}), database_url=url, secret_key=key, outbound_allowed_networks=LOOPBACK_NETWORKS
    )
    if args.concurrent:
        settings = msgspec.structs.replace(settings, webhook_max_concurrent_deliveries=args.concurrent)
    cipher = auth_cipher(key)
    receiver = Receiver()
    port = free_port()
    server = http_server(receiver, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    pool = await create_pool(settings)
    client = create_webhook_client(settings)
    try:
        tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        hook_ids = [
            await pool.fetchval(
                "INSERT INTO webhooks (id, tenant_id, url, events, secret_sealed) "
                "VALUES (gen_random_uuid(), $1, $2, '{WORKFLOW_COMPLETED}', $3) RETURNING id",
                tenant_id,
                f"http://127.0.0.1:{port}/hook",
                seal_secret(cipher, new_secret()),
            )
            for _ in range(webhooks)
        ]
        payload = {"type": "WORKFLOW_COMPLETED", "timestamp": datetime.now(UTC).isoformat(), "data": {}}
        await pool.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_type, execution_id, sequence, payload, "
            "event_at, next_attempt_at) SELECT gen_random_uuid(), ($1::uuid[])[1 + g % $2], $3, "
            "'WORKFLOW_COMPLETED', gen_random_uuid(), 1, $4, now(), now() FROM generate_series(1, $5) g",
            hook_ids,
            webhooks,
            tenant_id,
            payload,
            deliveries,
        )
        await asyncio.sleep(STATS_DELAY_SECONDS)
        await pool.execute("SELECT pg_stat_statements_reset()")
        loop = WebhookDeliveryLoop(pool, cipher, client, SchedulerMetrics(CollectorRegistry()), settings)
        profiler = cProfile.Profile() if profile else None
        postgres_before, process_before = postgres_cpu_seconds(postmaster), time.process_time()
        if profiler is not None:
            profiler.enable()
        sending = asyncio.create_task(loop.start())
        await receiver.wait_for(deliveries)
        if profiler is not None:
            profiler.disable()
        process_used, postgres_used = (
            time.process_time() - process_before,
            postgres_cpu_seconds(postmaster) - postgres_before,
        )
        loop.stop()
        await sending
        await loop.drain()
        await asyncio.sleep(STATS_DELAY_SECONDS)
        async with pool.acquire() as connection:
            statements = await statements_per(connection, deliveries)
    finally:
        await client.aclose()
        await pool.close()
        server.should_exit = True
        await serving
    seconds = max(receiver.arrivals) - min(receiver.arrivals)
    result = {
        "webhooks": webhooks,
        "in_flight_at_most": settings.webhook_max_concurrent_deliveries,
        "deliveries": len(receiver.arrivals),
        "distinct_webhook_ids": len(receiver.ids),
        "seconds": round(seconds, 2),
        "deliveries_per_second": round(len(receiver.arrivals) / seconds, 1),
        "cpu_ms_per_delivery": {
            "bench (loop and receiver)": round(process_used * 1000 / deliveries, 3),
            "postgres": round(postgres_used * 1000 / deliveries, 3),
        },
        "queued_to_received": summary(receiver.latencies_ms),
        "statements_per_delivery": statements,
    }
    if profiler is not None:
        report = io.StringIO()
        pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(30)
        result["profile"] = report.getvalue()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_loop", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=5, help="webhooks the deliveries are spread over")
    parser.add_argument("--deliveries", type=int, default=3000, help="deliveries due at once")
    parser.add_argument("--concurrent", type=int, help="deliveries in flight at most (default: the setting's)")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    args = parser.parse_args()

    postgres = PrivatePostgres.temporary(free_port(), durable=True)
    postgres.start()
    try:
        enable_statement_stats(postgres)
        upgrade_head(postgres.url)
        ensure_tenant(postgres.url, "dev")
        postmaster = postgres.postmaster_pid()
        assert postmaster is not None
        # The scheduler's event loop, as in the service.
        result = uvloop.run(measure(postgres.url, postmaster, args))
    finally:
        postgres.remove()

    profile = result.pop("profile", None)
    report = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "result": result}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhook_loop.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if profile is not None:
        print(profile)


if __name__ == "__main__":
    main()
