"""The private stack every benchmark runs against: PostgreSQL, a Tansu broker and Flowline services as processes."""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from flowline.db.audit import Actor
from flowline.db.migrate import ensure_tenant, upgrade_head
from flowline.domain.credentials import issue_api_key
from flowline_devstack.broker import TansuBroker
from flowline_devstack.ports import free_port
from flowline_devstack.postgres import PrivatePostgres
from flowline_devstack.processes import SERVICE_NAMES, ServiceGroup

from bench.kafka_requests import KafkaRequestCounter
from bench.measures import cpu_seconds, postgres_cpu_seconds

RESULTS = Path(__file__).parent / "results"
BENCH = Actor(principal="bench", request_id=None)


def api_headers(env: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate the benchmark client (an admin key of tenant ``dev``)."""
    return {"Authorization": f"Bearer {env['FLOWLINE_API_KEY']}"}


def tenant_api(env: dict[str, str]) -> str:
    """The REST API of tenant ``dev`` on the stack ``env`` describes."""
    return f"http://127.0.0.1:{env['FLOWLINE_API_PORT']}/api/v1/tenants/dev"


async def define(client: httpx.AsyncClient, *workflows: dict[str, Any]) -> None:
    """Create the pack ``bench`` and ``workflows`` in it through ``client``, a client of ``tenant_api``."""
    (await client.post("/packs", json={"ref": "bench", "label": "Benchmarks"})).raise_for_status()
    for workflow in workflows:
        (await client.post("/workflows", json=workflow)).raise_for_status()


@dataclass(frozen=True)
class Stack:
    """A running stack: the services' environment (FLOWLINE_* settings) and the service processes."""

    env: dict[str, str]
    services: ServiceGroup
    postgres: PrivatePostgres
    broker: TansuBroker

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each server has used so far; PostgreSQL's is its server's and all its backends'."""
        used = {service.name: cpu_seconds(service.pid) for service in self.services if service.pid is not None}
        if (broker := self.broker.pid) is not None:
            used["tansu"] = cpu_seconds(broker)
        if (postmaster := self.postgres.postmaster_pid()) is not None:
            used["postgres"] = postgres_cpu_seconds(postmaster)
        return used


@contextmanager
def private_stack(
    services: Sequence[str] = SERVICE_NAMES,
    *,
    durable: bool = True,
    statement_stats: bool = False,
    commit_timestamps: bool = False,
    kafka_requests: KafkaRequestCounter | None = None,
) -> Iterator[Stack]:
    """Start a fresh database (migrated, tenant ``dev``), a broker and ``services``; remove them all afterwards.

    Each service's output goes to ``bench/results/logs/<name>.log``, kept for a look after a surprising run.
    ``statement_stats``: the database counts statements in ``pg_stat_statements``; ``commit_timestamps``: it
    keeps each transaction's commit time (``pg_xact_commit_timestamp``); ``kafka_requests``: the
    services reach the broker through this counter of their requests.
    """
    postgres = PrivatePostgres.temporary(free_port(), durable=durable)
    broker = TansuBroker(free_port())
    postgres.start()
    try:
        if statement_stats:
            enable_statement_stats(postgres)
        if commit_timestamps:
            _execute(postgres, "ALTER SYSTEM SET track_commit_timestamp = on")
            postgres.restart()
        broker.start()
        if kafka_requests is not None:
            kafka_requests.start(upstream_port=broker.port)
        try:
            upgrade_head(postgres.url)
            ensure_tenant(postgres.url, "dev")
            key = asyncio.run(issue_api_key(postgres.url, tenant="dev", role="admin", name="bench", actor=BENCH))
            env = {
                **os.environ,
                "FLOWLINE_DATABASE_URL": postgres.url,
                "FLOWLINE_KAFKA_BOOTSTRAP": kafka_requests.bootstrap if kafka_requests else broker.bootstrap,
                "FLOWLINE_API_PORT": str(free_port()),
                "FLOWLINE_EXECUTOR_HTTP_PORT": str(free_port()),
                "FLOWLINE_SCHEDULER_HTTP_PORT": str(free_port()),
                "FLOWLINE_LOG_INGEST_HTTP_PORT": str(free_port()),
                "FLOWLINE_LOG_LEVEL": "WARNING",
                "FLOWLINE_SECRET_KEY": Fernet.generate_key().decode(),
                "FLOWLINE_API_KEY": key,  # the benchmark client's credentials, as the CLI would read them
                # The runs start thousands of executions at once with one key: budgets they never reach, per
                # second because Litestar's limiter keeps a timestamp per request of the window.
                **{f"FLOWLINE_RATE_LIMIT_{budget}": "100000/second" for budget in ("READS", "WRITES", "STARTS")},
            }
            logs = RESULTS / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            with ServiceGroup(env, names=services, log_dir=logs) as group:
                yield Stack(env=env, services=group, postgres=postgres, broker=broker)
        finally:
            if kafka_requests is not None:
                kafka_requests.stop()
            broker.stop()
    finally:
        postgres.remove()


def _execute(postgres: PrivatePostgres, statement: str) -> None:
    """Run one statement on the database."""

    async def execute() -> None:
        connection = await asyncpg.connect(postgres.url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


def enable_statement_stats(postgres: PrivatePostgres) -> None:
    """Load pg_stat_statements (a restart: it lives in shared memory) and create its view."""
    _execute(postgres, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    postgres.restart()
    _execute(postgres, "CREATE EXTENSION pg_stat_statements")


def machine() -> dict[str, object]:
    """What a result was measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"process {pid} reports no VmRSS")
