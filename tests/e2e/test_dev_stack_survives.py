"""``flowline-dev up`` keeps the stack running through a SIGKILL of the executor, then of the broker, mid-run."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from flowline_devstack.processes import read_tail, resolve_command
from flowline_devstack.reaper import Reaper, kill_command
from flowline_devstack.state import ProcessRecord, ProcessTable

from tests.ports import free_port
from tests.support import assert_each_ran_once, bearer, define

EXECUTIONS = 50
# Two naps: the executor dies during the first, the broker once the executor is back, before the second ends.
NAPS = {
    "ref": "survive.naps",
    "definition": {
        "steps": [
            {"id": "first", "type": "action", "action": "core.echo", "input": "{{ input.n }}"},
            {"id": "nap", "type": "sleep", "duration": "5s", "needs": ["first"]},
            {"id": "second", "type": "action", "action": "core.echo", "needs": ["nap"], "input": "{{ input.n }}"},
            {"id": "another_nap", "type": "sleep", "duration": "5s", "needs": ["second"]},
            {
                "id": "third",
                "type": "action",
                "action": "core.echo",
                "needs": ["another_nap"],
                "input": "{{ input.n }}",
            },
        ],
        "output": "{{ steps.third.output }}",
    },
}


@dataclass
class DevStack:
    """A ``flowline-dev up`` process and its state folder."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processes(self) -> dict[str, ProcessRecord]:
        stack = ProcessTable(self.state_dir).read()
        assert stack is not None, "flowline-dev recorded no processes"
        return {record.name: record for record in stack.processes}

    def dev_env(self) -> dict[str, str]:
        lines = (self.state_dir / "dev.env").read_text().splitlines()
        return dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)


async def _eventually(check: Callable[[], bool], what: str, stack: DevStack, timeout: float = 60.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                assert stack.process.poll() is None, f"flowline-dev exited:\n{read_tail(stack.log_path, 60)}"
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {timeout:.0f}s:\n{read_tail(stack.log_path, 60)}")


@pytest.fixture
def dev_stack() -> Iterator[DevStack]:
    # Not under pytest's temp folder: PostgreSQL runs as the `postgres` user when the suite runs as root, and
    # pytest makes that folder root-only again whenever another session starts.
    root = Path(tempfile.mkdtemp(prefix="flowline-dev-"))
    root.chmod(0o711)
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLOWLINE_")}
    env |= {
        "FLOWLINE_DEV_POSTGRES_PORT": str(free_port()),
        "FLOWLINE_DEV_KAFKA_PORT": str(free_port()),
        "FLOWLINE_API_PORT": str(free_port()),
        "FLOWLINE_EXECUTOR_HTTP_PORT": str(free_port()),
        "FLOWLINE_SCHEDULER_HTTP_PORT": str(free_port()),
        "FLOWLINE_LOG_INGEST_HTTP_PORT": str(free_port()),
        # Recover within the test's time: short leases, lost messages re-sent after a few seconds, and a dead
        # member's partitions handed on sooner.
        "FLOWLINE_LEASE_SECONDS": "2",
        "FLOWLINE_REDRIVE_AFTER_SECONDS": "3",
        "FLOWLINE_OUTBOX_RELAY_GRACE_SECONDS": "0.5",
        "FLOWLINE_OUTBOX_RELAY_INTERVAL_SECONDS": "0.2",
        "FLOWLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    log_path = root / "flowline-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [resolve_command("flowline-dev"), "up", "--state-dir", str(root / "state")],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    reaper = Reaper(kill_command(process.pid))  # the stack stops if this test run is killed
    try:
        yield DevStack(process, root / "state", log_path)
    finally:
        reaper.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


async def test_the_stack_survives_sigkill_of_the_executor_and_the_broker_mid_run(dev_stack: DevStack) -> None:
    await _eventually(lambda: "Flowline is running" in dev_stack.output(), "the banner", dev_stack, timeout=120)
    env = dev_stack.dev_env()
    before = dev_stack.processes()
    health_failures: list[str] = []
    stop_watching = asyncio.Event()

    async def watch_api(client: httpx.AsyncClient) -> None:
        while not stop_watching.is_set():
            try:
                response = await client.get("/health")
                if response.status_code != 200:
                    health_failures.append(f"{response.status_code} {response.text}")
            except httpx.HTTPError as err:
                health_failures.append(repr(err))
            await asyncio.sleep(0.1)

    api = f"{env['FLOWLINE_API_URL']}/api/v1/tenants/{env['FLOWLINE_TENANT']}"
    async with (
        httpx.AsyncClient(base_url=api, headers=bearer(env["FLOWLINE_API_KEY"]), timeout=30) as client,
        httpx.AsyncClient(base_url=env["FLOWLINE_API_URL"], timeout=5) as health_client,
    ):
        watcher = asyncio.create_task(watch_api(health_client))
        second = await asyncio.create_subprocess_exec(
            resolve_command("flowline-dev"), "up", "--state-dir", str(dev_stack.state_dir), stderr=subprocess.PIPE
        )
        refusal = (await second.communicate())[1].decode()
        assert second.returncode == 1
        assert f"flowline-dev is already running in {dev_stack.state_dir} (pid {dev_stack.process.pid})" in refusal
        assert (await define(client, NAPS)).status_code == 201
        accepted = await asyncio.gather(
            *(client.post(f"/workflows/{NAPS['ref']}/execute", json={"input": {"n": n}}) for n in range(EXECUTIONS))
        )
        assert all(response.status_code == 202 for response in accepted)

        connection = await asyncpg.connect(env["FLOWLINE_DATABASE_URL"])
        try:

            async def completed() -> int:
                return int(await connection.fetchval("SELECT count(*) FROM executions WHERE status = 'completed'"))

            async def napping() -> int:
                return int(
                    await connection.fetchval(
                        "SELECT count(*) FROM step_executions WHERE step_id = 'first' AND status = 'completed'"
                    )
                )

            async with asyncio.timeout(60):
                while await napping() < EXECUTIONS // 2:
                    await asyncio.sleep(0.05)
            os.kill(before["executor"].pid or 0, signal.SIGKILL)
            await _eventually(
                lambda: "executor exited with code -9; restarting (1)" in dev_stack.output(), "a restart", dev_stack
            )
            await _eventually(
                lambda: "executor is healthy again" in dev_stack.output(), "the executor's recovery", dev_stack
            )
            assert await completed() < EXECUTIONS, "the broker was killed after all work was done"

            os.kill(before["broker"].pid or 0, signal.SIGKILL)  # in memory: every message and offset is gone
            await _eventually(
                lambda: "broker exited with code -9; restarting (1)" in dev_stack.output(), "a restart", dev_stack
            )

            try:
                async with asyncio.timeout(60):
                    while await completed() < EXECUTIONS:
                        await asyncio.sleep(0.2)
            except TimeoutError:
                pytest.fail(f"{await completed()} of {EXECUTIONS} completed:\n{read_tail(dev_stack.log_path, 60)}")
            await assert_each_ran_once(connection, EXECUTIONS)
        finally:
            await connection.close()
            stop_watching.set()
            await watcher

    assert health_failures == []
    after = dev_stack.processes()
    for name in ("executor", "broker"):
        assert after[name].pid != before[name].pid
        assert after[name].is_alive()
    for name in ("api", "scheduler", "log-ingest", "postgresql"):
        assert after[name] == before[name], f"{name} was restarted"
    ps = await asyncio.create_subprocess_exec(
        resolve_command("flowline-dev"), "ps", "--state-dir", str(dev_stack.state_dir), stdout=subprocess.PIPE
    )
    listing = (await ps.communicate())[0].decode()
    assert re.search(rf"^executor +{after['executor'].pid} +running$", listing, re.MULTILINE), listing

    dev_stack.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(dev_stack.process.wait, 60) == 0
    assert not any(record.is_alive() for record in after.values())
    assert ProcessTable(dev_stack.state_dir).read() is None
