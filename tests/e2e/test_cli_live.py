"""The `flowline` command's live and fleet commands against the real services: watch, logs --follow, tasks,
agents, bulk with progress, audit, --all, --timeout, Ctrl+C, and the client's stream reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowline_client import AsyncFlowlineClient
from flowline_client.models import StreamEvent
from flowline_devstack.processes import ServiceGroup

from tests.e2e.cli import FLOWLINE, Cli, step_is
from tests.support import eventually

NAP = {
    "ref": "demo.nap",
    "definition": {
        "steps": [
            {"id": "before", "type": "action", "action": "core.log", "input": {"message": "going to sleep"}},
            {"id": "nap", "type": "sleep", "duration": "1s", "needs": ["before"]},
            {"id": "after", "type": "action", "action": "core.log", "input": {"message": "awake"}, "needs": ["nap"]},
        ]
    },
}
FAIL = {
    "ref": "demo.fail",
    "definition": {
        "steps": [{"id": "charge", "type": "action", "action": "core.fail", "input": {"message": "card declined"}}]
    },
}
APPROVE = {"ref": "demo.approve", "definition": {"steps": [{"id": "approval", "type": "wait", "promise": "ok"}]}}


async def _setup(cli: Cli, *workflows: dict[str, Any]) -> None:
    async with cli.client() as client:
        await client.create_pack("demo")
        for workflow in workflows:
            await client.apply_workflow(workflow)


async def _waiting_for_approval(cli: Cli, execution_id: str) -> bool:
    async with cli.client() as client:
        return await step_is(client, execution_id, "approval", "running")


async def test_watch_shows_a_sleeping_execution_live_then_its_outcome(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, NAP, FAIL)

    started = await cli.json("workflows", "execute", "demo.nap")
    watched = await cli.start("executions", "watch", started["executionId"])
    followed = await cli.start("executions", "logs", started["executionId"], "--follow")
    stdout, stderr = await asyncio.wait_for(watched.communicate(), timeout=60)
    assert watched.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    events = [line.split()[1] for line in lines if line[:2].isdigit()]
    assert events[0] == "WORKFLOW_CREATED"
    assert {"TIMER_STARTED", "TIMER_FIRED"} <= set(events)
    assert events[-1] == "WORKFLOW_COMPLETED"
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "TASK", "ID"]
    assert [row.split()[:3] for row in table[1:4]] == [
        ["before", "action", "COMPLETED"],
        ["nap", "sleep", "COMPLETED"],
        ["after", "action", "COMPLETED"],
    ]
    assert table[4].startswith(f"Execution {started['executionId']} finished. Status: COMPLETED")

    # The tail started with the execution and ended with it, holding both steps' records.
    logs, stderr = await asyncio.wait_for(followed.communicate(), timeout=60)
    assert followed.returncode == 0, stderr.decode()
    messages = [line.split("] ", 1)[1] for line in logs.decode().splitlines()]
    # Each record once; a record stored after its task's stream closed comes at the end, from the stored logs.
    assert sorted(message for message in messages if not message.startswith("attempt ")) == ["awake", "going to sleep"]
    assert sum(message.startswith("attempt 1 started on ") for message in messages) == 2  # before, after

    failed = await cli.json("workflows", "execute", "demo.fail")
    code, stdout_text, _ = await cli("executions", "watch", failed["executionId"])
    assert code == 3
    assert "Status: FAILED" in stdout_text
    assert "Error: " in stdout_text and "card declined" in stdout_text


def _as_foreground_job() -> None:
    """Let SIGINT interrupt the child, as a shell does for the job in a terminal's foreground.

    A suite started in the background by a non-interactive shell (`make test &` in a script, some CI runners)
    inherits SIGINT ignored, and Python keeps an inherited ignore: without this the CLI never sees the Ctrl+C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_watch_on_a_terminal_redraws_in_place_and_ctrl_c_exits_cleanly(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, APPROVE)
    execution_id = (await cli.json("workflows", "execute", "demo.approve"))["executionId"]
    await eventually(lambda: _waiting_for_approval(cli, execution_id))

    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        FLOWLINE,
        "executions",
        "watch",
        execution_id,
        env={**cli.env, "TERM": "xterm"},
        stdout=terminal,
        stderr=terminal,
        preexec_fn=_as_foreground_job,
    )
    os.close(terminal)
    screen = bytearray()

    async def read_until(marker: bytes) -> None:
        while marker not in screen:
            chunk = await asyncio.to_thread(os.read, controller, 4096)
            assert chunk, bytes(screen)
            screen.extend(chunk)

    try:
        await asyncio.wait_for(read_until(b"RUNNING"), timeout=30)
        await asyncio.wait_for(read_until(b"\x1b[J"), timeout=30)  # redrawn over itself (every second at least)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 130
        with contextlib.suppress(OSError):  # the terminal closes with the process
            while chunk := os.read(controller, 4096):
                screen.extend(chunk)
    finally:
        os.close(controller)
        if process.returncode is None:
            process.kill()
    assert f"Execution {execution_id}  demo.approve v1".encode() in screen
    assert b"approval  wait" in screen
    assert b"Traceback" not in screen


async def test_logs_follow_and_tasks_commands(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, NAP)
    finished = await cli.json("workflows", "execute", "demo.nap", "--wait")
    before, nap, after = finished["steps"]

    # On a finished execution --follow prints everything and ends; --level and --step filter.
    followed = (await cli.ok("executions", "logs", finished["id"], "--follow", "--step", "after")).splitlines()
    assert {line.split(" [", 1)[1] for line in followed} >= {"after#1] awake"}
    assert all("[after#1]" in line for line in followed)
    assert await cli.ok("executions", "logs", finished["id"], "--follow", "--level", "ERROR") == ""
    records = (await cli.ok("executions", "logs", finished["id"], "--follow", "-O", "json")).splitlines()
    assert {"awake", "going to sleep"} <= {json.loads(line)["message"] for line in records}

    missing = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
    code, _, stderr = await cli("executions", "logs", missing, "--follow")
    assert (code, stderr) == (1, f"flowline: 404 Not found: execution {missing} does not exist\n")

    shown = await cli.ok("tasks", "get", nap["taskId"])
    assert "Step:       nap (sleep)" in shown
    assert "Status:     COMPLETED" in shown
    assert (await cli.json("tasks", "get", before["taskId"]))["workflowRef"] == "demo.nap"
    assert "INFO  [before#1] going to sleep\n" in await cli.ok("tasks", "logs", before["taskId"])
    assert "INFO  [after#1] awake\n" in await cli.ok("tasks", "logs", after["taskId"], "--follow")
    watched = (await cli.ok("tasks", "watch", after["taskId"])).splitlines()
    assert any("TASK_COMPLETED" in line for line in watched)
    assert any(line.endswith("[after#1] awake") for line in watched)
    assert watched[-1].startswith(f"Task {after['taskId']} (after) finished. Status: COMPLETED")


async def test_execute_wait_gives_up_after_its_timeout(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, APPROVE)

    code, stdout, stderr = await cli("workflows", "execute", "demo.approve", "--wait", "--timeout", "0.5")

    assert code == 124
    execution_id = stdout.split()[1]
    assert stderr == f"flowline: gave up waiting after 0.5s; execution {execution_id} is running\n"


async def test_agents_bulk_audit_and_every_page(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, APPROVE, FAIL, NAP)

    created = await cli.ok(
        "agents", "create", "--name", "summarizer", "--url", "http://127.0.0.1:9/summarize",
        "--auth-type", "bearer", "--auth-config", '{"token": "s3cret"}',
    )  # fmt: skip
    assert created.startswith("Agent summarizer created. Id: ")
    agent_file = tmp_path / "agent.yaml"
    agent_file.write_text("name: translator\nurl: http://127.0.0.1:9/translate\ntimeoutMs: 5000\n")
    assert (await cli.json("agents", "create", "-f", str(agent_file)))["timeoutMs"] == 5000
    assert await cli.ok("agents", "update", "summarizer", "--timeout-ms", "1000") == "Agent summarizer updated.\n"
    shown = await cli.ok("agents", "get", "summarizer")
    assert "Auth:         bearer (token)" in shown and "Timeout:      1000ms" in shown
    assert "s3cret" not in shown
    listed = (await cli.ok("agents", "list")).splitlines()
    assert [line.split()[0] for line in listed] == ["NAME", "summarizer", "translator"]
    assert (await cli.ok("agents", "health", "summarizer")).startswith("Agent summarizer: UNREACHABLE in ")
    assert await cli.ok("agents", "delete", "translator") == "Agent translator deleted.\n"
    code, _, stderr = await cli("agents", "get", "translator")
    assert (code, stderr) == (1, "flowline: 404 Not found: no agent is named 'translator'\n")

    waiting = [(await cli.json("workflows", "execute", "demo.approve"))["executionId"] for _ in range(3)]
    for execution_id in waiting:
        await eventually(lambda execution_id=execution_id: _waiting_for_approval(cli, execution_id))
    code, stdout, _ = await cli("workflows", "execute", "demo.fail", "--wait")
    assert code == 3
    failed = stdout.split()[1]

    dry_run = await cli.ok("bulk", "retry", "--status", "failed", "--dry-run")
    assert dry_run == "Would retry 1 execution (dry run: nothing changed).\n"
    started = await cli.ok("bulk", "cancel", "--workflow", "demo.approve", "--reason", "not needed", "--no-wait")
    assert started.endswith("started: 3 executions.\n")
    followed = (await cli.ok("bulk", "get", started.split()[2], "--wait")).splitlines()
    assert followed[0] == f"Bulk cancel {started.split()[2]} completed: 3 succeeded, 0 failed, 0 skipped."
    retried = await cli.json("bulk", "retry", failed)
    assert (retried["status"], retried["succeeded"]) == ("completed", 1)
    code, _, stderr = await cli("bulk", "cancel")
    assert code == 2 and "by ids or by filters" in stderr

    every = await cli.json("executions", "list", "--limit", "3", "--all")
    assert every["total"] == len(every["items"]) == 4  # a retry runs the same execution again
    code, page, hint = await cli("executions", "list", "--limit", "3")
    assert (code, len(page.splitlines())) == (0, 4)  # the headers and three rows; where the rest is goes to stderr
    assert hint.startswith("3 of 4; next page: --cursor ")
    assert len((await cli.ok("workflows", "list", "--limit", "1", "--all")).splitlines()) == 4

    audit = (await cli.ok("audit", "list", "--entity-type", "agent", "--all")).splitlines()
    assert audit[0].split() == ["OCCURRED", "ENTITY", "ACTION", "PRINCIPAL", "ID"]
    assert sorted(line.split()[4] for line in audit[1:]) == ["create", "create", "delete", "update"]


async def test_the_client_stream_resumes_where_a_dropped_connection_stopped(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, APPROVE)
    async with _DroppingProxy(urlsplit(cli.api_url)) as proxy:
        async with AsyncFlowlineClient(proxy.url, tenant, cli.key) as client:
            started = await client.execute_workflow("demo.approve")
            events: list[StreamEvent] = []
            async for message in client.stream_execution(started.execution_id):
                assert isinstance(message, StreamEvent)
                events.append(message)
                if message.event == "PROMISE_CREATED":
                    proxy.drop_connections()  # mid-stream, as a load balancer or a flaky network would
                    async with cli.client() as direct:
                        await direct.resolve_promise(started.execution_id, "ok", {"approved": True})
    sequences = [event.sequence for event in events]
    assert sequences == list(range(1, len(events) + 1))  # nothing missed, nothing twice
    assert events[-1].event == "WORKFLOW_COMPLETED"
    assert proxy.connections >= 2


class _DroppingProxy:
    """A TCP proxy in front of the api that can cut every open connection."""

    def __init__(self, target: Any) -> None:
        self.target_host, self.target_port = target.hostname, target.port
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> _DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_connections()
        self._server.close()
        await self._server.wait_closed()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        self._writers += [writer, upstream_writer]
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


async def test_watch_and_wait_follow_a_retried_execution_past_its_old_failure(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, APPROVE)
    execution_id = (await cli.json("workflows", "execute", "demo.approve"))["executionId"]
    await eventually(lambda: _waiting_for_approval(cli, execution_id))
    await cli.ok("promises", "reject", execution_id, "ok", "--reason", "not yet", "--details", '{"by": "Ada"}')
    code, _, _ = await cli("executions", "watch", execution_id)
    assert code == 3  # failed

    await cli.ok("executions", "retry", execution_id)
    # Its history holds WORKFLOW_FAILED, then RETRY_REQUESTED: both follow it to the new end.
    watched = await cli.start("executions", "watch", execution_id)
    await eventually(lambda: _waiting_for_approval(cli, execution_id))
    await cli.ok("promises", "resolve", execution_id, "ok", "--value", "true")
    stdout, stderr = await asyncio.wait_for(watched.communicate(), timeout=60)

    assert watched.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert [line.split()[1] for line in lines if line[:2].isdigit()][-3:] == [
        "PROMISE_RESOLVED",
        "TASK_COMPLETED",
        "WORKFLOW_COMPLETED",
    ]
    assert "RETRY_REQUESTED" in stdout.decode()
    assert lines[-2].startswith(f"Execution {execution_id} finished. Status: COMPLETED")


async def test_paging_filters_files_and_profiles_reach_the_api(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    await _setup(cli, NAP)
    input_file = tmp_path / "input.json"
    input_file.write_text('{"batch": 7}')
    started = await cli.json(
        "workflows", "execute", "demo.nap", "--input", f"@{input_file}", "--metadata", "team=ops", "--tag", "b7",
        "--wait", "--timeout", "60",
    )  # fmt: skip
    assert (started["status"], started["input"], started["metadata"], started["tags"]) == (
        "completed",
        {"batch": 7},
        {"team": "ops"},
        ["b7"],
    )
    execution_id = started["id"]
    await cli.json("workflows", "execute", "demo.nap")  # another, without the tag

    for filters in (["--tag", "b7"], ["--metadata", "team=ops"], ["--search", execution_id[:13]]):
        assert [item["id"] for item in (await cli.json("executions", "list", *filters))["items"]] == [execution_id]
    newest_first = await cli.json(
        "executions", "list", "--triggered-by", "api", "--sort", "createdAt", "--order", "desc"
    )
    assert newest_first["items"][-1]["id"] == execution_id

    async with cli.client() as client:
        await eventually(lambda: _logged(client, execution_id, 2))
    with_logs = await cli.json("executions", "get", execution_id, "--logs")
    assert {"going to sleep", "awake"} <= {record["message"] for record in with_logs["logs"]}
    assert (await cli.json("executions", "events", execution_id, "--since", "2", "--limit", "1"))["events"][0][
        "sequence"
    ] == 3
    every = (await cli.ok("executions", "logs", execution_id)).splitlines()
    code, second, hint = await cli(
        "executions", "logs", execution_id, "--limit", "1", "--offset", "1", "--level", "info"
    )
    assert (code, second.splitlines()) == (0, every[1:2])
    assert hint.startswith(f"2 of {len(every)} records; more: --cursor ")
    third = await cli.ok(
        "executions", "logs", execution_id, "--limit", "1", "--level", "info", "--cursor", hint.split()[-1]
    )
    assert third.splitlines() == every[2:3]
    assert (await cli.ok("executions", "logs", execution_id, "--attempt", "1")).splitlines() == every
    assert await cli.ok("executions", "logs", execution_id, "--attempt", "2") == ""
    found = (await cli.ok("executions", "logs", execution_id, "--grep", "AWAKE", "-C", "1")).splitlines()
    assert [line for line in found if line.startswith("> ")] == [f"> {line}" for line in every if "awake" in line]
    assert len(found) > 1 and all(line.startswith(("> ", "  ", "--")) for line in found)
    searched = await cli.json("tasks", "logs", started["steps"][0]["taskId"], "--search", "SLEEP")
    assert [(record["message"], record["matched"]) for record in searched["logs"]] == [("going to sleep", True)]
    downloaded = json.loads(await cli.ok("executions", "download-logs", execution_id, "-O", "json"))
    assert [record["message"] for record in downloaded] == [line.split("] ", 1)[1] for line in every]
    assert (await cli.ok("executions", "download-logs", execution_id)).splitlines() == every

    await cli.ok("workflows", "apply", "-f", _workflow_file(tmp_path, {**NAP, "description": "v2"}))
    await cli.ok("workflows", "disable", "demo.nap")
    await cli.ok("workflows", "apply", "-f", _workflow_file(tmp_path, {**NAP, "description": "v3"}))
    assert (await cli.json("workflows", "get", "demo.nap", "--version", "1"))["version"] == 1
    assert (await cli.json("workflows", "get", "demo.nap"))["enabled"] is False  # applying kept it disabled

    profiles = tmp_path / "config.toml"
    profiles.write_text(f'[profiles.ci]\napi_url = "{cli.api_url}"\ntenant = "{tenant}"\napi_key = "{cli.key}"\n')
    env = {"PATH": cli.env["PATH"], "FLOWLINE_CONFIG": str(profiles)}
    process = await asyncio.create_subprocess_exec(
        FLOWLINE, "--profile", "ci", "packs", "list", env=env, stdout=asyncio.subprocess.PIPE
    )
    listed, _ = await process.communicate()
    assert (process.returncode, listed.decode().split()[4]) == (0, "demo")


def _workflow_file(folder: Path, workflow: dict[str, Any]) -> str:
    path = folder / f"{workflow['description']}.json"
    path.write_text(json.dumps(workflow))
    return str(path)


async def _logged(client: AsyncFlowlineClient, execution_id: str, at_least: int) -> bool:
    page = await client.get_execution_logs(execution_id, level="INFO")
    return sum(record.message in ("going to sleep", "awake") for record in page.logs) >= at_least
