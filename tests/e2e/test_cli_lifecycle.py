"""`flowline executions delete` and `flowline bulk delete` against the real services: what goes, what stays."""

from __future__ import annotations

from pathlib import Path

from flowline_client import FlowlineApiError
from flowline_devstack.processes import ServiceGroup

from tests.e2e.cli import Cli, execution_is
from tests.support import eventually

QUICK = {"ref": "demo.quick", "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}}
WAITING = {
    "ref": "demo.waiting",
    "definition": {"steps": [{"id": "approval", "type": "wait", "promise": "approval"}]},
}


async def test_executions_are_deleted_one_by_one_or_in_bulk_and_unfinished_ones_stay(
    stack: ServiceGroup, tenant: str, api_headers: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack, tenant, api_headers, tmp_path)
    async with cli.client() as client:
        await client.create_pack("demo")
        for workflow in (QUICK, WAITING):
            await client.create_workflow(workflow)
        quick = [(await client.execute_workflow("demo.quick", {})).execution_id for _ in range(3)]
        waiting = (await client.execute_workflow("demo.waiting", {})).execution_id
        for execution_id, status in [*((execution_id, "completed") for execution_id in quick), (waiting, "running")]:
            await eventually(lambda e=execution_id, s=status: execution_is(client, e, s), 60)

        code, _, stderr = await cli("executions", "delete", waiting)
        assert code == 1
        assert "only a finished execution is deleted" in stderr
        assert (
            await cli.ok("executions", "delete", quick[0])
            == f"Execution {quick[0]} deleted with everything under it.\n"
        )

        dry = await cli.json("bulk", "delete", "--workflow", "demo.quick", "--dry-run")
        assert (dry["kind"], dry["total"]) == ("delete", 2)
        done = await cli.json("bulk", "delete", "--status", "completed,running", "--reason", "tidy")
        assert (done["status"], done["succeeded"], done["skipped"]) == ("completed", 2, 1)

        for execution_id in quick:
            try:
                await client.get_execution(execution_id)
            except FlowlineApiError as err:
                assert err.status == 404
            else:
                raise AssertionError(f"execution {execution_id} is still there")
        assert (await client.get_execution(waiting)).status == "running"
