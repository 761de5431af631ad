from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flowline_devstack.state import (
    ProcessRecord,
    ProcessTable,
    StackRecord,
    StackRunningError,
    render_ps,
    stack_lock,
    start_ticks,
    stop_leftovers,
)

NO_SUCH_PID = 5_000_000  # above the largest pid Linux hands out


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_second_holder_of_the_lock_is_told_who_holds_it(tmp_path: Path) -> None:
    with stack_lock(tmp_path):
        assert (tmp_path / "supervisor.pid").read_text() == f"{os.getpid()}\n"
        with pytest.raises(StackRunningError, match=f"already running in {tmp_path} \\(pid {os.getpid()}\\)"):
            with stack_lock(tmp_path):
                pass
        assert (tmp_path / "supervisor.pid").read_text() == f"{os.getpid()}\n"

    assert (tmp_path / "supervisor.pid").read_text() == ""
    with stack_lock(tmp_path):
        pass


def test_a_record_tells_its_process_from_a_later_one_with_the_same_pid(sleeper: subprocess.Popen[bytes]) -> None:
    record = ProcessRecord.of("executor", sleeper.pid, "running")
    reused = ProcessRecord(name="executor", pid=sleeper.pid, started=(record.started or 0) - 1, state="running")

    assert record.is_alive()
    assert not reused.is_alive()
    assert not ProcessRecord.of("executor", NO_SUCH_PID, "running").is_alive()


def test_an_exited_process_that_is_not_yet_collected_does_not_run() -> None:
    process = subprocess.Popen(["true"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie

    assert start_ticks(process.pid) is None
    process.wait()


def test_the_table_is_read_back_as_written(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path)
    assert table.read() is None
    processes = [ProcessRecord.of("api", os.getpid(), "running"), ProcessRecord.of("broker", None, "restarting")]

    table.write(processes)

    stack = table.read()
    assert stack is not None
    assert stack.supervisor.pid == os.getpid()
    assert stack.processes == processes
    table.clear()
    assert table.read() is None


def test_leftovers_of_a_dead_supervisor_are_stopped_and_nothing_else(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        table = ProcessTable(tmp_path)
        started = start_ticks(bystander.pid)
        assert started is not None
        table.write(
            [
                ProcessRecord.of("executor", sleeper.pid, "running"),
                # The pid now names another process than the one recorded.
                ProcessRecord(name="api", pid=bystander.pid, started=started - 1, state="running"),
                ProcessRecord.of("postgresql", bystander.pid, "running"),
            ]
        )

        stop_leftovers(table, keep=["postgresql"], timeout=5.0)

        assert sleeper.wait(timeout=5.0) == -15
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_ps_shows_what_runs_now(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    table = ProcessTable(tmp_path)
    table.write(
        [
            ProcessRecord.of("api", sleeper.pid, "running"),
            ProcessRecord.of("executor", NO_SUCH_PID, "running"),
            ProcessRecord.of("broker", None, "restarting"),
        ]
    )
    stack = table.read()
    assert stack is not None

    assert render_ps(stack).splitlines() == [
        "NAME              PID  STATE",
        f"flowline-dev  {os.getpid():>7}  running",
        f"api           {sleeper.pid:>7}  running",
        f"executor      {NO_SUCH_PID:>7}  exited",
        "broker              -  restarting",
    ]


def test_ps_calls_the_processes_of_a_dead_supervisor_left_over(sleeper: subprocess.Popen[bytes]) -> None:
    stack = StackRecord(
        supervisor=ProcessRecord.of("flowline-dev", NO_SUCH_PID, "running"),
        processes=[ProcessRecord.of("api", sleeper.pid, "running"), ProcessRecord.of("broker", None, "restarting")],
    )

    supervisor, api, broker = render_ps(stack).splitlines()[1:]
    assert supervisor.endswith("  gone")
    assert api.endswith("  left over")
    assert broker.endswith("  exited")
