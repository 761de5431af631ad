"""The ``flowline`` command as a newcomer uses it, against the real services: apply, execute, logs, exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from flowline.client import AsyncFlowlineClient, FlowlineClient
from flowline.devstack.processes import ServiceGroup

FLOWLINE = str(Path(sys.executable).with_name("flowline"))  # the console script `uv sync` installs

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


class Cli:
    """Runs ``flowline`` as a subprocess configured by the environment, as after `source .flowline/dev.env`."""

    def __init__(self, stack: ServiceGroup, tenant: str, api_headers: dict[str, str], config_dir: Path) -> None:
        self.env = {
            "PATH": str(Path(sys.executable).parent),
            "FLOWLINE_API_URL": stack["api"].url,
            "FLOWLINE_TENANT": tenant,
            "FLOWLINE_API_KEY": api_headers["Authorization"].removeprefix("Bearer "),
            "FLOWLINE_CONFIG": str(config_dir / "absent.toml"),
        }

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            FLOWLINE, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def json(self, *args: str) -> Any:
        code, stdout, stderr = await self(*args, "--output", "json")
        assert code == 0, stderr
        return json.loads(stdout)


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

    code, applied, stderr = await cli("workflows", "apply", "-f", str(_pack_folder(tmp_path)))
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
    async with AsyncFlowlineClient(stack["api"].url, tenant, cli.env["FLOWLINE_API_KEY"]) as client:
        for _ in range(200):
            if (await client.get_execution_logs(execution["id"], step_id="greet", level="INFO")).total:
                break
            await asyncio.sleep(0.05)
    code, logs, stderr = await cli("executions", "logs", execution["id"], "--step", "greet")
    assert code == 0, stderr
    assert any(line.endswith("INFO  [greet#1] hello Ada") for line in logs.splitlines()), logs

    downloaded = tmp_path / "logs.json"
    code, said, stderr = await cli(
        "executions", "download-logs", execution["id"], "--format", "json", "-o", str(downloaded)
    )
    assert code == 0, stderr
    assert said.startswith(f"Wrote {downloaded.stat().st_size} bytes of logs to {downloaded}")
    assert "hello Ada" in [record["message"] for record in json.loads(downloaded.read_text())]

    def read_with_the_blocking_client() -> tuple[list[str], int]:
        with FlowlineClient(stack["api"].url, tenant, cli.env["FLOWLINE_API_KEY"]) as client:
            return [item.id for item in client.iter_executions()], client.get_workflow("demo.hello").version

    assert await asyncio.to_thread(read_with_the_blocking_client) == ([execution["id"]], 1)

    code, steps, stderr = await cli("executions", "steps", execution["id"])
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

    code, finished, stderr = await cli("workflows", "execute", "demo.broken", "--wait")
    assert code == 3, stderr
    assert "Status: FAILED" in finished
    assert "card declined" in finished
    [failed] = (await cli.json("executions", "list", "--workflow", "demo.broken", "--status", "failed"))["items"]

    [step] = (await cli.json("executions", "steps", failed["id"]))["steps"]
    code, attempts, stderr = await cli("executions", "task-attempts", failed["id"], step["taskId"])
    assert code == 0, stderr
    header, attempt = attempts.splitlines()
    assert header.split() == ["ATTEMPT", "STATUS", "DURATION", "WORKER", "ERROR"]
    assert attempt.startswith("1        FAILED")
    assert attempt.endswith("card declined")

    code, retried, stderr = await cli("executions", "retry", failed["id"], "--note", "new card")
    assert (code, retried) == (0, f"Execution {failed['id']} reset for retry. Status: PENDING\n"), stderr

    code, disabled, stderr = await cli("workflows", "disable", "demo.hello")
    assert (code, disabled) == (0, "Workflow demo.hello disabled.\n"), stderr
    code, _, stderr = await cli("workflows", "execute", "demo.hello", "--input", '{"name": "Ada"}')
    assert code == 1
    assert stderr.startswith("flowline: 409 Conflict: ") and "disabled" in stderr

    missing = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
    code, _, stderr = await cli("executions", "cancel", missing)
    assert code == 1
    assert stderr == f"flowline: 404 Not found: execution {missing} does not exist\n"

    code, _, stderr = await cli("executions", "task-attempts", failed["id"])
    assert code == 2
    assert "required: task_id" in stderr
