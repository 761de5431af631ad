"""The private stack every benchmark runs against: PostgreSQL, a Tansu broker and Flowline services as processes."""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from flowline.db.audit import Actor
from flowline.db.migrate import ensure_tenant, upgrade_head
from flowline.domain.credentials import issue_api_key
from flowline_devstack.broker import TansuBroker
from flowline_devstack.ports import free_port
from flowline_devstack.postgres import PrivatePostgres
from flowline_devstack.processes import SERVICE_NAMES, ServiceGroup

RESULTS = Path(__file__).parent / "results"
BENCH = Actor(principal="bench", request_id=None)


def api_headers(env: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate the benchmark client (an admin key of tenant ``dev``)."""
    return {"Authorization": f"Bearer {env['FLOWLINE_API_KEY']}"}


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
            used["postgres"] = cpu_seconds(postmaster, ended_children=True) + sum(
                cpu_seconds(pid) for pid in children(postmaster)
            )
        return used


@contextmanager
def private_stack(services: Sequence[str] = SERVICE_NAMES, *, durable: bool = True) -> Iterator[Stack]:
    """Start a fresh database (migrated, tenant ``dev``), a broker and ``services``; remove them all afterwards.

    Each service's output goes to ``bench/results/logs/<name>.log``, kept for a look after a surprising run.
    """
    postgres = PrivatePostgres.temporary(free_port(), durable=durable)
    broker = TansuBroker(free_port())
    postgres.start()
    try:
        broker.start()
        try:
            upgrade_head(postgres.url)
            ensure_tenant(postgres.url, "dev")
            key = asyncio.run(issue_api_key(postgres.url, tenant="dev", role="admin", name="bench", actor=BENCH))
            env = {
                **os.environ,
                "FLOWLINE_DATABASE_URL": postgres.url,
                "FLOWLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
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
            broker.stop()
    finally:
        postgres.remove()


def machine() -> dict[str, object]:
    """What a result was measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def stolen_seconds() -> float:
    """CPU time the hypervisor has taken from this machine's CPUs so far ("steal"; 0 where not counted).

    A virtual machine whose host runs other guests gets less CPU at some minutes than at others; a run's
    figures mean little without how much was taken meanwhile.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def cpu_seconds(pid: int, *, ended_children: bool = False) -> float:
    """User plus system CPU time a process has used so far (0 once it ended), and its ended children's with
    ``ended_children`` (PostgreSQL's backends of closed connections: their server collects them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if ended_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found


def rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"process {pid} reports no VmRSS")


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample at ``fraction`` (0.99: p99) of ``samples`` in order (nearest rank, no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
