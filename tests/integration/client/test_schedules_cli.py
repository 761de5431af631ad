"""The Python client's schedule methods and ``flowline schedules`` against a served api."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

from flowline.settings import Settings
from flowline_client import AsyncFlowlineClient
from flowline_client.cli import main
from flowline_client.cli.output import when

from tests.integration.api.clients import served_api

DEFINITION = {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}


async def test_the_client_and_the_cli_manage_a_schedule(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text("name: nightly\nworkflowRef: demo.tick\ncron: '30 2 * * *'\ntimezone: Europe/Berlin\n")
    async with served_api(settings) as (url, key), AsyncFlowlineClient(url, "dev", key) as client:
        await client.create_pack("demo")
        await client.create_workflow({"ref": "demo.tick", "definition": DEFINITION})
        env = {
            "FLOWLINE_API_URL": url,
            "FLOWLINE_TENANT": "dev",
            "FLOWLINE_API_KEY": key,
            "FLOWLINE_CONFIG": str(tmp_path / "absent.toml"),
        }

        def flowline(*argv: str) -> tuple[int, str]:
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = main(list(argv), env)
            return code, stdout.getvalue()

        code, created = await asyncio.to_thread(
            flowline, "schedules", "create", "-f", str(path), "--paused", "-O", "json"
        )
        assert code == 0, created
        schedule = json.loads(created)
        assert (schedule["cron"], schedule["timezone"], schedule["paused"]) == ("30 2 * * *", "Europe/Berlin", True)

        code, triggered = await asyncio.to_thread(flowline, "schedules", "trigger", "nightly", "-O", "json")
        assert code == 0, triggered
        run = json.loads(triggered)
        resumed = await asyncio.to_thread(flowline, "schedules", "resume", "nightly")
        got = await client.get_schedule(schedule["id"])
        listed = [item.name async for item in client.iter_schedules(paused=False)]
        code, backfilled = await asyncio.to_thread(
            flowline, "schedules", "backfill", "nightly", "--start", "2026-03-27T00:00:00Z",
            "--end", "2026-03-31T00:00:00Z", "--no-wait", "-O", "json",
        )  # fmt: skip
        assert code == 0, backfilled
        previewed = await asyncio.to_thread(
            flowline, "schedules", "backfill", "nightly", "--start", "2026-03-27T00:00:00Z",
            "--end", "2026-03-31T00:00:00Z", "--dry-run",
        )  # fmt: skip
        changed = await client.update_schedule(schedule["id"], {"cron": None, "interval": "15m"})
        updated = await asyncio.to_thread(
            flowline, "schedules", "update", "nightly", "--overlap", "allow", "--description", "at night", "-O", "json"
        )
        refused = await asyncio.to_thread(flowline, "schedules", "update", "nightly", "--interval", "0s")
        code, table = await asyncio.to_thread(flowline, "schedules", "list")
        deleted = await asyncio.to_thread(flowline, "schedules", "delete", "nightly")
        missing = await asyncio.to_thread(flowline, "schedules", "get", "nightly")

    assert resumed == (0, f"Schedule nightly resumed; next run {when(got.next_run_at[0])}.\n")
    assert got.last_run is not None and got.last_run.execution_id == run["executionId"]
    assert listed == ["nightly"]
    assert json.loads(backfilled)["total"] == 3  # 27, 28 and 30 March at 02:30 Berlin; the 29th has no 02:30
    assert previewed[0] == 0 and previewed[1].endswith("3 fire times, 3 without a run: a backfill would start 3.\n")
    assert (changed.cron, changed.interval) == (None, "15m")
    assert updated[0] == 0 and json.loads(updated[1])["overlap"] == "allow"
    assert json.loads(updated[1])["description"] == "at night" and json.loads(updated[1])["interval"] == "15m"
    assert refused[0] != 0  # the api's 422: an interval of at least a second
    assert "nightly" in table and "every 15m" in table
    assert deleted[0] == 0
    assert missing[0] == 2  # a name no schedule has is a usage error
