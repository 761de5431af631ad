"""What ``flowline-dev up`` keeps in its state folder: a lock holding its pid, and its processes' pids."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec

from flowline_devstack.errors import DevStackError

logger = logging.getLogger(__name__)

LOCK_NAME = "supervisor.pid"
PROCESSES_NAME = "processes.json"
SUPERVISOR = "flowline-dev"


class StackRunningError(DevStackError):
    """Another ``flowline-dev up`` runs on the same state folder."""


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` when it does not run.

    The pid and its start time name one process: a later process that reuses the pid has
    another start time. A zombie (exited, not yet collected) does not run.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after it are fixed:
    # the state is field 3, the start time field 22.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


class ProcessRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One process of the stack as ``flowline-dev ps`` shows it."""

    name: str
    pid: int | None
    started: int | None  # start_ticks(pid) when recorded
    state: str

    @classmethod
    def of(cls, name: str, pid: int | None, state: str) -> ProcessRecord:
        """The record of process ``pid`` (``None``: none runs), stamped with its start time."""
        return cls(name=name, pid=pid, started=start_ticks(pid) if pid is not None else None, state=state)

    def is_alive(self) -> bool:
        """Whether the recorded process still runs (not another one that got its pid since)."""
        return self.pid is not None and self.started is not None and start_ticks(self.pid) == self.started


class StackRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The supervisor and the processes it runs."""

    supervisor: ProcessRecord
    processes: list[ProcessRecord]


@contextmanager
def stack_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state folder's lock, ``supervisor.pid`` (the holder's pid inside), while the block runs.

    The operating system releases the lock when the holder dies, however it dies.

    Raises:
        StackRunningError: another process holds the lock.
    """
    with (state_dir / LOCK_NAME).open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            raise StackRunningError(
                f"flowline-dev is already running in {state_dir} (pid {holder}); use that stack "
                "(`flowline-dev ps` lists its processes) or stop it first"
            ) from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            # Emptied rather than removed: a file removed while another process opens it
            # could let two processes each lock a file of their own.
            file.truncate(0)


class ProcessTable:
    """``processes.json`` in the state folder: the pids of this ``flowline-dev up`` and of what it runs."""

    def __init__(self, state_dir: Path) -> None:
        """The table of the stack in ``state_dir``."""
        self.path = state_dir / PROCESSES_NAME

    def write(self, processes: Sequence[ProcessRecord]) -> None:
        """Record this process as the supervisor of ``processes`` (replacing the file whole)."""
        record = StackRecord(supervisor=ProcessRecord.of(SUPERVISOR, os.getpid(), "running"), processes=[*processes])
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(msgspec.json.encode(record))
        partial.replace(self.path)

    def read(self) -> StackRecord | None:
        """What the last supervisor recorded, or ``None`` when nothing was (or it stopped cleanly)."""
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=StackRecord)
        except FileNotFoundError:
            return None

    def clear(self) -> None:
        """Forget the processes: all of them stopped."""
        self.path.unlink(missing_ok=True)


def stop_leftovers(table: ProcessTable, *, keep: Sequence[str], timeout: float) -> None:
    """Stop the processes a killed supervisor left running: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Only processes recorded in ``table`` whose pid still names the same process are
    signalled. Call this while holding the stack's lock.

    Args:
        table: the state folder's process table.
        keep: names of processes to leave alone (PostgreSQL: its own pid file tells, and it needs its own signal).
        timeout: seconds the processes get to exit after SIGTERM.
    """
    record = table.read()
    if record is None:
        return
    leftovers = [process for process in record.processes if process.name not in keep and process.is_alive()]
    if leftovers:
        logger.info(
            "flowline-dev (pid %s) ended without stopping its processes; stopping them now: %s",
            record.supervisor.pid,
            ", ".join(f"{process.name} (pid {process.pid})" for process in leftovers),
        )
    for process in leftovers:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process.is_alive() for process in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in leftovers:
        if process.is_alive():
            _signal(process, signal.SIGKILL)


def _signal(process: ProcessRecord, signum: signal.Signals) -> None:
    if process.pid is not None:
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass  # it exited in the meantime


def render_ps(record: StackRecord) -> str:
    """The ``flowline-dev ps`` table: each process's name, pid and state, as it is now."""
    supervised = record.supervisor.is_alive()
    rows = [(record.supervisor.name, record.supervisor.pid, "running" if supervised else "gone")]
    for process in record.processes:
        if process.is_alive():
            state = process.state if supervised else "left over"
        else:
            state = "restarting" if supervised and process.state == "restarting" else "exited"
        rows.append((process.name, process.pid, state))
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'NAME':<{width}}  {'PID':>7}  STATE"]
    lines += [f"{name:<{width}}  {pid if pid is not None else '-':>7}  {state}" for name, pid, state in rows]
    return "\n".join(lines)
