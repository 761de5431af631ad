"""The `flowline` command and the Python client against the real services: a newcomer's path, exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from flowline_client import AsyncFlowlineClient, FlowlineApiError, FlowlineClient
from flowline_client.cli import main
from flowline_client.models import StreamEvent, StreamMessage
from flowline_devstack.processes import ServiceGroup

from tests.e2e.cli import Cli, execution_is, step_is
from tests.support import eventually

PACK_YAML = "ref: demo\nlabel: Demo\nversion: 1.0.0\n"
HELLO_YAML = """\
label: Hello
definition:
  steps:
    - id: greet
      type: action
      action: core.log
      input: {message: "hello {{ input.name }}"}
    - id: shout
      type: action
      action: core.transform
      needs: [greet]
      input: "{{ steps.greet.output.logged | upper }}"
  output: {message: "{{ steps.shout.output }}!"}
"""
BROKEN_YAML = """\
definition:
  steps:
    - {id: charge, type: action, action: core.fail, input: {message: card declined}}
"""


def _pack_folder(root: Path) -> Path:
    folder = root / "demo"
    (folder / "workflows").mkdir(parents=True)
    (folder / "pack.yaml").write_text(PACK_YAML)
    (folder / "workflows" / "hello.yaml").write_text(HELLO_YAML)
    (folder / "workflows" / "broken.yaml").write_text(BROKEN_YAML)
    (folder / "README.md").write_text("not sent: the api takes pack.yaml and workflows/*.yaml only\n")
    return folder


async def test_a_newcomer_applies_a_pack_runs_a_workflow_and_reads_its_logs(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)

    code, applied, stderr = await cli.subprocess("workflows", "apply", "-f", str(_pack_folder(tmp_path)))
    assert code == 0, stderr
    assert applied.splitlines() == [
        "Pack demo created.",
        "FILE                   REF          CHANGE   VERSION",
        "workflows/broken.yaml  demo.broken  created  1",
        "workflows/hello.yaml   demo.hello   created  1",
    ]

    execution = await cli.json("workflows", "execute", "demo.hello", "--input", '{"name": "Ada"}', "--wait")
    assert execution["status"] == "completed"
    assert execution["output"] == {"message": "HELLO ADA!"}

    # log-ingest stores records moments after the step: wait for them with the Python client.
    async def logged() -> bool:
        async with cli.client() as client:
            return (await client.get_execution_logs(execution["id"], step_id="greet", level="INFO")).total > 0

    await eventually(logged)
    code, logs, stderr = await cli.subprocess("executions", "logs", execution["id"], "--step", "greet")
    assert code == 0, stderr
    assert any(line.endswith("INFO  [greet#1] hello Ada") for line in logs.splitlines()), logs

    downloaded = tmp_path / "logs.json"
    code, said, stderr = await cli.subprocess(
        "executions", "download-logs", execution["id"], "--format", "json", "-o", str(downloaded)
    )
    assert code == 0, stderr
    assert said.startswith(f"Wrote {downloaded.stat().st_size} bytes of logs to {downloaded}")
    assert "hello Ada" in [record["message"] for record in json.loads(downloaded.read_text())]

    def read_with_the_blocking_client() -> tuple[list[str], int, bytes, list[str]]:
        with FlowlineClient(stack["api"].url, tenant, cli.env["FLOWLINE_API_KEY"]) as client:
            return (
                [item.id for item in client.iter_executions()],
                client.get_workflow("demo.hello").version,
                b"".join(client.download_execution_logs(execution["id"])),
                [
                    message.event
                    for message in client.stream_execution(execution["id"])
                    if isinstance(message, StreamEvent)
                ],
            )

    ids, version, text_logs, events = await asyncio.to_thread(read_with_the_blocking_client)
    assert (ids, version) == ([execution["id"]], 1)
    assert b"INFO  [greet#1] hello Ada\n" in text_logs
    assert events[0] == "WORKFLOW_CREATED"
    assert events[-1] == "WORKFLOW_COMPLETED"

    code, steps, stderr = await cli.subprocess("executions", "steps", execution["id"])
    assert code == 0, stderr
    header, greet, shout = steps.splitlines()
    assert header.split() == ["STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "TASK", "ID", "ERROR"]
    assert greet.split()[:4] == ["greet", "action", "COMPLETED", "1"]
    assert shout.index("COMPLETED") == header.index("STATUS")


async def test_exit_codes_say_what_went_wrong_and_a_failed_execution_can_be_retried(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    assert (await cli.json("packs", "install", str(_pack_folder(tmp_path))))["change"] == "created"

    code, finished, stderr = await cli.subprocess("workflows", "execute", "demo.broken", "--wait")
    assert code == 3, stderr
    assert "Status: FAILED" in finished
    assert "card declined" in finished
    [failed] = (await cli.json("executions", "list", "--workflow", "demo.broken", "--status", "failed"))["items"]

    [step] = (await cli.json("executions", "steps", failed["id"]))["steps"]
    code, attempts, stderr = await cli.subprocess("executions", "task-attempts", failed["id"], step["taskId"])
    assert code == 0, stderr
    header, attempt = attempts.splitlines()
    assert header.split() == ["ATTEMPT", "STATUS", "DURATION", "WORKER", "ERROR"]
    assert attempt.startswith("1        FAILED")
    assert attempt.endswith("card declined")

    code, preview, stderr = await cli.subprocess("executions", "retry", failed["id"], "--dry-run")
    assert (code, preview) == (
        0,
        f"A retry of {failed['id']} would run again: {step['stepId']}; kept: no step. Nothing was changed.\n",
    ), stderr
    (tmp_path / "card.json").write_text('{"card": "4242"}')
    code, retried, stderr = await cli.subprocess(
        "executions", "retry", failed["id"], "--note", "new card", "--input", f"@{tmp_path / 'card.json'}"
    )
    assert (code, retried) == (0, f"Execution {failed['id']} reset for retry. Status: PENDING\n"), stderr
    assert (await cli.json("executions", "get", failed["id"]))["input"] == {"card": "4242"}

    code, disabled, stderr = await cli.subprocess("workflows", "disable", "demo.hello")
    assert (code, disabled) == (0, "Workflow demo.hello disabled.\n"), stderr
    code, _, stderr = await cli.subprocess("workflows", "execute", "demo.hello", "--input", '{"name": "Ada"}')
    assert code == 1
    assert stderr.startswith("flowline: 409 Conflict: ") and "disabled" in stderr

    missing = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
    code, _, stderr = await cli.subprocess("executions", "cancel", missing)
    assert code == 1
    assert stderr == f"flowline: 404 Not found: execution {missing} does not exist\n"

    code, _, stderr = await cli.subprocess("executions", "task-attempts", failed["id"])
    assert code == 2
    assert "required: task_id" in stderr


WAIT_DEFINITION = {
    "steps": [
        {"id": "approval", "type": "wait", "promise": "manager-approval"},
        {
            "id": "after",
            "type": "action",
            "action": "core.echo",
            "needs": ["approval"],
            "input": "{{ steps.approval.output }}",
        },
    ],
    "output": "{{ steps.after.output }}",
}


async def test_the_python_client_reads_writes_and_follows_executions(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str]
) -> None:
    key = api_headers["Authorization"].removeprefix("Bearer ")
    async with AsyncFlowlineClient(stack["api"].url, tenant, key) as client:
        await client.create_pack("demo", label="Demo")
        first = await client.apply_workflow(
            {"ref": "demo.approve", "definition": {"steps": [WAIT_DEFINITION["steps"][0]]}}
        )
        second = await client.apply_workflow({"ref": "demo.approve", "definition": WAIT_DEFINITION, "tags": ["ops"]})
        assert (first.version, second.version) == (1, 2)
        assert [v.version for v in (await client.list_workflow_versions("demo.approve")).items] == [2, 1]
        assert not (await client.update_workflow("demo.approve", {"enabled": False})).enabled
        with pytest.raises(FlowlineApiError) as refused:
            await client.execute_workflow("demo.approve")
        assert (refused.value.status, refused.value.title) == (409, "Conflict")
        assert refused.value.instance == f"/api/v1/tenants/{tenant}/workflows/demo.approve/execute"
        enabled = await client.update_workflow("demo.approve", {"enabled": True})
        assert (enabled.enabled, enabled.version, enabled.tags) == (True, 2, ["ops"])
        assert [workflow.ref async for workflow in client.iter_workflows(pack="demo")] == ["demo.approve"]

        started = await client.execute_workflow("demo.approve", tags=["cli"])
        events = asyncio.create_task(_collect(client.stream_execution(started.execution_id)))
        await eventually(lambda: step_is(client, started.execution_id, "approval", "running"))
        assert (await client.pause_execution(started.execution_id)).status == "paused"
        assert (await client.resume_execution(started.execution_id)).status == "running"
        settled = await client.resolve_promise(started.execution_id, "manager-approval", {"by": "Grace"})
        assert settled.status == "resolved"
        streamed = await asyncio.wait_for(events, timeout=30)
        assert streamed[-1].event == "WORKFLOW_COMPLETED"

        execution = await client.get_execution(started.execution_id)
        assert (execution.status, execution.output, execution.tags) == ("completed", {"by": "Grace"}, ["cli"])
        # Resuming after an event replays only what came after it.
        resumed = await _collect(client.stream_execution(execution.id, last_event_id=str(streamed[1].sequence)))
        assert [event.sequence for event in resumed] == [event.sequence for event in streamed[2:]]
        history = await client.get_events(execution.id)
        assert [event.event for event in history.events] == [event.event for event in streamed]
        assert await client.get_children(execution.id) == []
        task = await client.get_task(execution.steps[0].task_id)
        assert (task.workflow_ref, task.step_id) == ("demo.approve", "approval")
        assert (await client.get_task_logs(task.task_id)).limit == 100

        rerun = await client.rerun_execution(execution.id, "after")
        assert rerun.rerun_of == execution.id
        assert [e.id async for e in client.iter_executions(workflow="demo.approve", order="asc")] == [
            execution.id,
            rerun.execution_id,
        ]

        agent = await client.create_agent({"name": "summarizer", "url": "http://127.0.0.1:9/summarize"})
        assert (await client.update_agent(agent.id, {"timeoutMs": 1000})).timeout_ms == 1000
        assert [a.name for a in (await client.list_agents()).items] == ["summarizer"]
        assert (await client.check_agent_health(agent.id)).status == "unreachable"
        await client.delete_agent(agent.id)
        with pytest.raises(FlowlineApiError) as gone:
            await client.get_agent(agent.id)
        assert gone.value.status == 404

        dry_run = await client.bulk_retry(ids=[execution.id], dry_run=True)
        assert (dry_run.status, dry_run.total) == ("completed", 1)
        assert (await client.get_bulk_operation(dry_run.id)).id == dry_run.id
        audited = {(entry.entity_type, entry.action) async for entry in client.iter_audit_logs()}
        assert {("pack", "create"), ("workflow", "update"), ("agent", "delete")} <= audited


async def _collect(messages: AsyncIterator[StreamMessage]) -> list[StreamEvent]:
    return [message async for message in messages if isinstance(message, StreamEvent)]


async def test_every_other_command_answers_in_tables_and_json(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (main() in a thread, real HTTP) so that many commands cost no interpreter start-up each.
    cli = Cli(stack, tenant, api_headers, tmp_path)
    environ = cli.env

    async def run(*argv: str) -> str:
        code = await asyncio.to_thread(main, list(argv), environ)
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return captured.out

    async def document(*argv: str) -> Any:
        return json.loads(await run(*argv, "--output", "json"))

    await run("packs", "install", str(_pack_folder(tmp_path)))
    workflow_file = tmp_path / "approve.yaml"
    workflow_file.write_text(json.dumps({"ref": "demo.approve", "definition": WAIT_DEFINITION}))
    assert await run("workflows", "apply", "-f", str(workflow_file)) == "Workflow demo.approve applied. Version: 1\n"
    assert (await run("workflows", "list")).splitlines()[0].split() == ["REF", "VERSION", "ENABLED", "LABEL", "UPDATED"]
    assert sorted(item["ref"] for item in (await document("workflows", "list", "--pack", "demo"))["items"]) == [
        "demo.approve",
        "demo.broken",
        "demo.hello",
    ]
    assert "greet  action  -" in await run("workflows", "get", "demo.hello")
    assert (await document("workflows", "versions", "demo.hello"))["items"][0]["version"] == 1
    assert await run("workflows", "disable", "demo.hello") == "Workflow demo.hello disabled.\n"
    assert await run("workflows", "enable", "demo.hello") == "Workflow demo.hello enabled.\n"
    assert (await document("packs", "get", "demo"))["version"] == "1.0.0"
    assert "demo" in await run("packs", "list")

    started = await document("workflows", "execute", "demo.approve")
    execution_id = started["executionId"]
    async with cli.client() as client:
        await eventually(lambda: step_is(client, execution_id, "approval", "running"))
    assert await run("executions", "pause", execution_id) == f"Execution {execution_id} paused. Status: PAUSED\n"
    assert await run("executions", "resume", execution_id) == f"Execution {execution_id} resumed. Status: RUNNING\n"
    resolved = await run("promises", "resolve", execution_id, "manager-approval", "--value", '{"by": "Grace"}')
    assert resolved == f"Promise manager-approval of execution {execution_id} resolved.\n"
    async with cli.client() as client:
        await eventually(lambda: execution_is(client, execution_id, "completed"))
    shown = await run("executions", "get", execution_id)
    assert "Status:        COMPLETED" in shown
    started_by = (await document("executions", "get", execution_id))["startedBy"]
    assert started_by.startswith("api-key:")
    assert f"Started by:    {started_by}" in shown
    assert 'Output:        {"by":"Grace"}' in shown
    assert (await run("executions", "events", execution_id)).splitlines()[0].split() == [
        "SEQ",
        "EVENT",
        "STEP",
        "OCCURRED",
    ]
    assert (await run("executions", "children", execution_id)).split() == ["CHILD", "ID", "KIND", "STATUS", "CREATED"]
    preview = await run("executions", "rerun", execution_id, "--from-step", "after", "--dry-run")
    assert (
        preview
        == f"A rerun from step after of {execution_id} would run again: after; kept: approval. Nothing was changed.\n"
    )
    rerun = await run("executions", "rerun", execution_id, "--from-step", "after")
    assert rerun.endswith(f"reruns {execution_id} from step after. Status: PENDING\n")
    listed = await run("executions", "list", "--workflow", "demo.approve", "--status", "completed,pending,running")
    assert execution_id in listed
    assert execution_id in await run("executions", "list", "--started-by", started_by)
    assert execution_id not in await run("executions", "list", "--started-by", "kafka")

    waiting = (await document("workflows", "execute", "demo.approve"))["executionId"]
    async with cli.client() as client:
        await eventually(lambda: step_is(client, waiting, "approval", "running"))
    rejected = await run("promises", "reject", waiting, "manager-approval", "--reason", "no budget")
    assert rejected == f"Promise manager-approval of execution {waiting} rejected.\n"

    waiting = (await document("workflows", "execute", "demo.approve"))["executionId"]
    cancelled = await run("executions", "cancel", waiting, "--reason", "not needed")
    assert cancelled == f"Execution {waiting} cancelled. Status: CANCELLED\n"
    assert await run("workflows", "delete", "demo.approve") == "Workflow demo.approve deleted.\n"
    assert await run("packs", "delete", "demo", "--cascade") == "Pack demo deleted with its workflows.\n"
