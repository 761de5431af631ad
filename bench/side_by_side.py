"""`make bench PEERS=dbos`: the bench's chain on a peer engine, alternating with Flowline's runs in one sitting.

Each peer round gets a private PostgreSQL of its own with Flowline's durability settings (fsync and synchronous
commit on), and the peer's script (bench/peers/) runs in an environment uv makes for it with the peer's current
release (``uv run --no-project --with <package>``): the peer is never a dependency of Flowline.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowline_devstack.ports import free_port
from flowline_devstack.postgres import PrivatePostgres

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Peer:
    """An engine to compare with: the package uv installs and the module that runs the workloads on it."""

    package: str
    module: str


PEERS = {"dbos": Peer(package="dbos", module="bench.peers.dbos_chain")}
#: The processes in Flowline's results that are the bench's, not Flowline's (a peer's client runs inside it).
FLOWLINE_CLIENTS = ("bench client",)


def run_peer(name: str, *, latency: int, throughput: int) -> dict[str, Any]:
    """One round of ``name``'s workloads against a private PostgreSQL of its own: its version and results."""
    peer = PEERS[name]
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    postgres = PrivatePostgres.temporary(free_port(), durable=True)
    postgres.start()
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
            output = Path(folder) / "results.json"
            command = [uv, "run", "--no-project", "--with", peer.package, "python", "-m", peer.module]
            command += ["--database-url", postgres.url, "--postmaster-pid", str(postgres.postmaster_pid())]
            command += ["--output", str(output), "--latency", str(latency), "--throughput", str(throughput)]
            subprocess.run(command, cwd=ROOT, check=True)
            result: dict[str, Any] = json.loads(output.read_text())
            return result
    finally:
        postgres.remove()


def headline(results: dict[str, Any], clients: tuple[str, ...] = ()) -> dict[str, float]:
    """The figures compared side by side, from one round's results; CPU without the bench's own client."""
    cpu = results["throughput"]["cpu_ms_per_execution"]
    idle = results["idle_cpu_percent"]
    return {
        "p50_ms": results["latency"]["p50_ms"],
        "p99_ms": results["latency"]["p99_ms"],
        "executions_per_second": results["throughput"]["executions_per_second"],
        "cpu_ms_per_execution": sum(ms for name, ms in cpu.items() if name not in clients),
        "idle_cpu_percent": sum(share for name, share in idle.items() if name not in clients),
    }


#: (headline key, label, whether more is better)
MEASURES = [
    ("p50_ms", "idle latency p50 (ms)", False),
    ("p99_ms", "idle latency p99 (ms)", False),
    ("executions_per_second", "throughput (executions/s)", True),
    ("cpu_ms_per_execution", "CPU per execution (ms)", False),
    ("idle_cpu_percent", "idle CPU (% of a core)", False),
]


def comparison(flowline_rounds: list[dict[str, Any]], peer_name: str, peer_rounds: list[dict[str, Any]]) -> str:
    """The side-by-side table: each measure's median over the rounds, and Flowline's advantage (>1: ahead)."""

    def median(rounds: list[dict[str, Any]], clients: tuple[str, ...] = ()) -> Callable[[str], float]:
        figures = [headline(results, clients) for results in rounds]
        return lambda key: statistics.median(figure[key] for figure in figures)

    ours, theirs = median(flowline_rounds, FLOWLINE_CLIENTS), median(peer_rounds)
    lines = [f"{'measure':<30}{'Flowline':>10}{peer_name:>10}{'Flowline ahead by':>20}"]
    for key, label, more_is_better in MEASURES:
        better, worse = (ours(key), theirs(key)) if more_is_better else (theirs(key), ours(key))
        advantage = f"{better / worse:.2f}x" if worse else "-"
        lines.append(f"{label:<30}{ours(key):>10.1f}{theirs(key):>10.1f}{advantage:>20}")
    return "\n".join(lines)
