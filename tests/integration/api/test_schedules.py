"""The /schedules routes over real servers: validation, reads, changes, trigger, backfill and their audit rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.bulk import BulkOperationLoop
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer, define

Client = AsyncTestClient  # type: ignore[type-arg]
WORKFLOW = {"ref": "demo.tick", "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def _create(api: Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "tick", "workflowRef": "demo.tick", "interval": "1h", **fields}
    response = await api.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def workflow(api: Client) -> None:
    assert (await define(api, WORKFLOW)).status_code == 201


async def _count(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


@pytest.mark.usefixtures("workflow")
async def test_a_new_schedule_shows_its_next_five_runs(api: Client) -> None:
    created = await _create(
        api, name="nightly", cron="30 2 * * *", interval=None, timezone="Europe/Berlin", input={"region": "eu"}
    )

    assert created["workflowRef"] == "demo.tick" and created["cron"] == "30 2 * * *"
    assert created["overlap"] == "skip" and created["catchupWindow"] == "1m" and created["paused"] is False
    assert created["lastRun"] is None
    runs = [datetime.fromisoformat(value) for value in created["nextRunAt"]]
    assert len(runs) == 5 and runs == sorted(runs) and runs[0] > datetime.now(UTC)
    for run in runs:
        wall = run.astimezone(ZoneInfo("Europe/Berlin"))
        assert (wall.hour, wall.minute) == (2, 30)
    assert (await api.get(f"/schedules/{created['id']}")).json()["nextRunAt"] == created["nextRunAt"]


@pytest.mark.usefixtures("workflow")
@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"cron": "61 * * * *", "interval": None}, "/cron"),
        ({"cron": "@sometimes", "interval": None}, "/cron"),
        ({"cron": "* * *", "interval": None}, "/cron"),
        ({"cron": "*/5 * * * *"}, "/cron"),  # both
        ({"interval": None}, "/cron"),  # neither
        ({"interval": "0s"}, "/interval"),
        ({"interval": "-5m"}, "/interval"),
        ({"interval": "soon"}, "/interval"),
        ({"timezone": "Mars/Olympus_Mons"}, "/timezone"),
        ({"overlap": "queue"}, "/overlap"),
        ({"catchupWindow": "later"}, "/catchupWindow"),
        ({"startAt": "2026-05-02T00:00:00Z", "endAt": "2026-05-01T00:00:00Z"}, "/endAt"),
        ({"name": ""}, "/name"),
        ({"colour": "red"}, ""),
    ],
)
async def test_a_bad_body_is_422_naming_the_field_and_creates_nothing(
    api: Client, pool: asyncpg.Pool, fields: dict[str, Any], pointer: str
) -> None:
    body = {"name": "tick", "workflowRef": "demo.tick", "interval": "1h", **fields}

    problem = _problem(await api.post("/schedules", json=body), 422)

    assert problem["pointer"] == pointer
    assert await _count(pool, "schedules") == 0


@pytest.mark.usefixtures("workflow")
async def test_an_unknown_workflow_is_404_and_a_taken_name_409(api: Client, pool: asyncpg.Pool) -> None:
    problem = _problem(
        await api.post("/schedules", json={"name": "x", "workflowRef": "demo.nope", "interval": "1m"}), 404
    )
    assert "demo.nope" in problem["detail"]
    problem = _problem(
        await api.post("/schedules", json={"name": "x", "workflowRef": "demo.tick", "version": 7, "interval": "1m"}),
        404,
    )
    await _create(api)
    problem = _problem(
        await api.post("/schedules", json={"name": "tick", "workflowRef": "demo.tick", "cron": "@daily"}), 409
    )
    assert problem["detail"] == "schedule 'tick' already exists"
    assert await _count(pool, "schedules") == 1


@pytest.mark.usefixtures("workflow")
async def test_list_filters_and_pages(api: Client) -> None:
    for name in ("a", "b", "c"):
        await _create(api, name=name)
    await _create(api, name="d", paused=True)

    first = (await api.get("/schedules", params={"limit": 2, "paused": "false"})).json()
    assert [item["name"] for item in first["items"]] == ["a", "b"] and first["total"] == 3
    second = (await api.get("/schedules", params={"limit": 2, "paused": "false", "cursor": first["nextCursor"]})).json()
    assert [item["name"] for item in second["items"]] == ["c"] and second["nextCursor"] is None
    paused = (await api.get("/schedules", params={"paused": "true"})).json()
    assert [item["name"] for item in paused["items"]] == ["d"] and paused["items"][0]["nextRunAt"] == []
    assert (await api.get("/schedules", params={"workflow": "demo.other"})).json()["total"] == 0


@pytest.mark.usefixtures("workflow")
async def test_patch_pause_resume_and_delete_are_audited(api: Client, pool: asyncpg.Pool) -> None:
    created = await _create(api)
    path = f"/schedules/{created['id']}"

    patched = await api.patch(path, json={"cron": "*/5 * * * *", "overlap": "allow"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["cron"] == "*/5 * * * *" and patched.json()["interval"] is None
    assert patched.json()["overlap"] == "allow"
    _problem(await api.patch(path, json={"timezone": "Nowhere/Land"}), 422)
    _problem(await api.patch(path, json={}), 422)

    assert (await api.post(f"{path}/pause")).json()["paused"] is True
    assert await pool.fetchval("SELECT paused FROM schedules WHERE id = $1::uuid", created["id"]) is True
    resumed = (await api.post(f"{path}/resume")).json()
    assert resumed["paused"] is False and len(resumed["nextRunAt"]) == 5

    assert (await api.delete(path)).status_code == 204
    _problem(await api.get(path), 404)
    _problem(await api.delete(path), 404)
    actions = await pool.fetch(
        "SELECT action FROM audit_logs WHERE entity_type = 'schedule' AND entity_id = $1 ORDER BY occurred_at, id",
        created["id"],
    )
    assert [row["action"] for row in actions] == ["create", "update", "pause", "resume", "delete"]


@pytest.mark.usefixtures("workflow")
async def test_a_viewer_reads_but_may_not_change_schedules(api: Client, settings: Settings) -> None:
    created = await _create(api)
    viewer = bearer(await api_key(settings.database_url, role="viewer"))

    assert (await api.get(f"/schedules/{created['id']}", headers=viewer)).status_code == 200
    assert (await api.post(f"/schedules/{created['id']}/pause", headers=viewer)).status_code == 403
    assert (
        await api.post("/schedules", json={"name": "v", "workflowRef": "demo.tick", "interval": "1m"}, headers=viewer)
    ).status_code == 403


@pytest.mark.usefixtures("workflow")
async def test_trigger_starts_a_run_now_that_the_execution_list_finds(api: Client, pool: asyncpg.Pool) -> None:
    created = await _create(api, paused=True, input={"n": 1}, tags=["nightly"])
    before = datetime.now(UTC)

    response = await api.post(f"/schedules/{created['id']}/trigger")

    assert response.status_code == 201, response.text
    run = response.json()
    execution = (await api.get(f"/executions/{run['executionId']}")).json()
    assert execution["triggeredBy"] == "schedule" and execution["startedBy"] == f"schedule:{created['id']}"
    assert execution["scheduleId"] == created["id"] and execution["input"] == {"n": 1}
    assert execution["tags"] == ["nightly"]
    assert datetime.fromisoformat(execution["scheduledFor"]) >= before - timedelta(seconds=5)
    listed = (await api.get("/executions", params={"scheduleId": created["id"]})).json()
    assert [item["id"] for item in listed["items"]] == [run["executionId"]]
    last = (await api.get(f"/schedules/{created['id']}")).json()["lastRun"]
    assert last["executionId"] == run["executionId"] and last["status"] == "pending"
    _problem(await api.post("/schedules/0193a5a2-1d00-7000-8000-0a1b2c3d4e5f/trigger"), 404)


@pytest.mark.usefixtures("workflow")
async def test_a_backfill_starts_one_run_per_fire_time_once(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, interval="15m", startAt="2026-01-01T00:00:00Z", paused=True)
    window = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T02:00:00Z"}
    worker = BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05, backfill_runs_per_second=1000)

    response = await api.post(f"/schedules/{created['id']}/backfill", json=window)
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["kind"] == "backfill" and operation["total"] == 8
    await worker.run_once()

    done = (await api.get(f"/bulk-operations/{operation['id']}")).json()
    assert (done["status"], done["succeeded"], done["skipped"], done["failed"]) == ("completed", 8, 0, 0)
    times = await pool.fetch(
        "SELECT scheduled_for FROM executions WHERE schedule_id = $1::uuid ORDER BY scheduled_for", created["id"]
    )
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert [row["scheduled_for"] for row in times] == [start + timedelta(minutes=15 * n) for n in range(8)]

    again = (await api.post(f"/schedules/{created['id']}/backfill", json=window)).json()
    await worker.run_once()
    repeated = (await api.get(f"/bulk-operations/{again['id']}")).json()
    assert (repeated["succeeded"], repeated["skipped"]) == (0, 8)
    assert await _count(pool, "executions") == 8


@pytest.mark.usefixtures("workflow")
async def test_a_dry_run_backfill_answers_the_times_and_how_many_are_new_and_starts_nothing(
    api: Client, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _create(api, interval="15m", startAt="2026-01-01T00:00:00Z", paused=True)
    path = f"/schedules/{created['id']}/backfill"
    window = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T01:00:00Z"}
    # One of the four times has its run already (started by a backfill of the first quarter hour).
    assert (await api.post(path, json={**window, "end": "2026-03-01T00:15:00Z"})).status_code == 202
    await BulkOperationLoop(
        runtime.pool, runtime.outbox, settings.topics, 0.05, backfill_runs_per_second=1000
    ).run_once()
    operations, executions, audits = (
        await _count(pool, "bulk_operations"),
        await _count(pool, "executions"),
        await _count(pool, "audit_logs"),
    )

    response = await api.post(path, json={**window, "dryRun": True})

    assert response.status_code == 200, response.text
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert response.json() == {
        "times": [(start + timedelta(minutes=15 * n)).isoformat().replace("+00:00", "Z") for n in range(4)],
        "total": 4,
        "new": 3,
    }
    assert (await _count(pool, "bulk_operations"), await _count(pool, "executions")) == (operations, executions)
    assert await _count(pool, "audit_logs") == audits
    bad = await api.post(path, json={**window, "dryRun": "yes"})
    assert bad.status_code == 422 and "dryRun" in bad.text, bad.text
    assert await _count(pool, "bulk_operations") == operations


@pytest.mark.usefixtures("workflow")
async def test_a_long_backfill_holds_up_no_later_bulk_operation(
    api: Client, runtime: Runtime, settings: Settings
) -> None:
    slow = await _create(api, interval="15m", startAt="2026-01-01T00:00:00Z", paused=True)
    other = await _create(api, name="other", paused=True)
    assert (await api.post(f"/schedules/{other['id']}/trigger")).status_code == 201
    window = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}  # 96 runs, 2 a second
    backfill = (await api.post(f"/schedules/{slow['id']}/backfill", json=window)).json()
    cancel = (await api.post("/executions/bulk/cancel", json={"filter": {"scheduleId": other["id"]}})).json()
    worker = BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05, backfill_runs_per_second=2)

    first = await worker.run_batch()  # the backfill's first batch: it rests for a second now
    second = await worker.run_batch(first)  # the cancel's turn in the same round, not the backfill's again

    assert first is not None and str(first.id) == backfill["id"]
    assert second is not None and str(second.id) == cancel["id"]
    done = (await api.get(f"/bulk-operations/{cancel['id']}")).json()
    assert (done["status"], done["succeeded"]) == ("completed", 1)
    running = (await api.get(f"/bulk-operations/{backfill['id']}")).json()
    assert (running["status"], running["succeeded"]) == ("running", 2)
    assert await worker.run_batch(second) is None  # the round is over; the backfill rests


@pytest.mark.usefixtures("workflow")
async def test_a_backfill_needs_a_window(api: Client, pool: asyncpg.Pool) -> None:
    created = await _create(api, interval="1s")
    path = f"/schedules/{created['id']}/backfill"

    assert (
        _problem(await api.post(path, json={"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}), 422)[
            "pointer"
        ]
        == "/end"
    )
    assert (
        _problem(await api.post(path, json={"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}), 422)[
            "pointer"
        ]
        == "/end"
    )  # 86,400 fire times: too many
    assert await _count(pool, "bulk_operations") == 0


@pytest.mark.usefixtures("workflow")
async def test_a_bulk_operation_selects_a_schedules_runs(api: Client) -> None:
    created = await _create(api, paused=True)
    other = await _create(api, name="other", paused=True)
    for schedule in (created, created, other):
        assert (await api.post(f"/schedules/{schedule['id']}/trigger")).status_code == 201

    response = await api.post("/executions/bulk/cancel", json={"filter": {"scheduleId": created["id"]}, "dryRun": True})

    assert response.status_code == 200, response.text
    assert response.json()["total"] == 2
