"""Measurements with the standard library only: CPU time of processes, the hypervisor's steal, percentiles.

The benchmarks share them with the peer scripts (bench/peers/), which run in environments of their own,
without Flowline installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


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


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User plus system CPU time a process has used so far (0 once it ended); ``reaped_children``: with that of
    its children that ended and that it waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(field) for field in fields[11 : 15 if reaped_children else 13])
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


def postgres_cpu_seconds(postmaster: int) -> float:
    """CPU time a PostgreSQL server has used so far: its postmaster's, its live backends' and workers', and
    those of the backends and workers that ended (the postmaster reaps them: their time is its children's).

    Without the ended ones, a client whose pool closes its overflow connections after a burst (SQLAlchemy's)
    would seem to cost PostgreSQL nothing.
    """
    return cpu_seconds(postmaster, reaped_children=True) + sum(cpu_seconds(pid) for pid in children(postmaster))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample at ``fraction`` (0.99: p99) of ``samples`` in order (nearest rank, no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
