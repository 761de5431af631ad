"""Bulk cancel and retry: validation, dry runs, reading an operation, and the scheduler's worker over real servers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from flowline.messages import EventMessage, OperationEvent, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.bulk import BulkOperationLoop
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import ExecutionRows
from tests.support import api_key, bearer, eventually, read_topic

Client = AsyncTestClient  # type: ignore[type-arg]
WHO = (("creator", "operator"), ("another operator", "operator"), ("viewer", "viewer"), ("admin", "admin"))


@pytest.fixture
def rows(pool: asyncpg.Pool) -> ExecutionRows:
    return ExecutionRows(pool)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def _worker(runtime: Runtime, settings: Settings, batch_size: int = 100) -> BulkOperationLoop:
    return BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05, batch_size=batch_size)


async def _operations(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM bulk_operations")
    return count


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"ids": [str(uuid.UUID(int=1))], "filter": {"workflow": "demo.hello"}}, ""),
        ({}, ""),
        ({"reason": "no selection"}, ""),
        ({"ids": []}, "/ids"),
        ({"filter": {}}, "/filter"),
        ({"filter": {"workflow": "", "tag": []}}, "/filter"),
        ({"filter": {"status": ["done"]}}, "/filter/status/0"),
        ({"filter": {"statuses": ["failed"]}}, "/filter"),
        ({"ids": [str(uuid.UUID(int=n)) for n in range(1001)]}, "/ids"),
    ],
)
async def test_a_selection_needs_either_ids_or_a_filter_with_a_condition(
    api: Client, pool: asyncpg.Pool, body: dict[str, Any], pointer: str
) -> None:
    problem = _problem(await api.post("/executions/bulk/cancel", json=body), 422)

    assert problem["pointer"] == pointer
    assert await _operations(pool) == 0


async def test_an_unknown_or_foreign_id_is_404_and_creates_nothing(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool
) -> None:
    mine = await rows.execution(status="running")
    foreign = await rows.execution(tenant="acme", status="running")

    problem = _problem(await api.post("/executions/bulk/cancel", json={"ids": [str(mine), str(foreign)]}), 404)

    assert problem["detail"] == f"execution {foreign} does not exist"
    assert await _operations(pool) == 0


async def test_unknown_foreign_and_malformed_operation_ids(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool
) -> None:
    acme = await rows.tenant("acme")
    foreign = await pool.fetchval(
        "INSERT INTO bulk_operations (id, tenant_id, kind, selection) VALUES ($1, $2, 'cancel', '{\"ids\": []}') "
        "RETURNING id",
        uuid.uuid4(),
        acme,
    )
    missing = uuid.UUID(int=7)

    assert _problem(await api.get(f"/bulk-operations/{foreign}"), 404)["detail"] == (
        f"bulk operation {foreign} does not exist"
    )
    assert _problem(await api.get(f"/bulk-operations/{missing}"), 404)["detail"] == (
        f"bulk operation {missing} does not exist"
    )
    assert "operation_id" in _problem(await api.get("/bulk-operations/not-a-uuid"), 400)["detail"]


async def test_a_dry_run_counts_and_changes_nothing(api: Client, rows: ExecutionRows, pool: asyncpg.Pool) -> None:
    for _ in range(3):
        await rows.execution(status="failed", tags=["nightly"])
    await rows.execution(status="completed", tags=["nightly"])
    await rows.execution(status="failed", tags=["hourly"])

    response = await api.post(
        "/executions/bulk/retry",
        json={"filter": {"status": ["failed"], "tag": ["nightly"]}, "note": "upstream fixed", "dryRun": True},
    )

    assert response.status_code == 200, response.text
    operation = response.json()
    assert {key: operation[key] for key in ("kind", "status", "dryRun", "note", "total", "succeeded")} == {
        "kind": "retry",
        "status": "completed",
        "dryRun": True,
        "note": "upstream fixed",
        "total": 3,
        "succeeded": 0,
    }
    assert (await api.get(f"/bulk-operations/{operation['id']}")).json() == operation
    assert await pool.fetchval("SELECT count(*) FROM executions WHERE status = 'failed'") == 4
    assert await pool.fetchval("SELECT count(*) FROM execution_events") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_filter_selects_by_who_started_the_executions(api: Client, rows: ExecutionRows) -> None:
    for started_by in ("kafka", "kafka", "jwt:ada", None):
        await rows.execution(status="failed", started_by=started_by)

    async def selected(started_by: str) -> int:
        response = await api.post("/executions/bulk/retry", json={"filter": {"startedBy": started_by}, "dryRun": True})
        assert response.status_code == 200, response.text
        total: int = response.json()["total"]
        return total

    assert [await selected(started_by) for started_by in ("kafka", "jwt:ada", "ada")] == [2, 1, 0]


async def test_creating_an_operation_answers_202_and_is_audited(api: Client, rows: ExecutionRows) -> None:
    ids = [str(await rows.execution(status="running")) for _ in range(2)]

    response = await api.post(
        "/executions/bulk/cancel",
        json={"ids": [*ids, ids[0]], "reason": "wrong input"},
        headers={"X-Request-ID": "r-1"},
    )

    assert response.status_code == 202, response.text
    operation = response.json()
    assert {key: operation[key] for key in ("kind", "status", "dryRun", "total", "errors", "completedAt")} == {
        "kind": "cancel",
        "status": "pending",
        "dryRun": False,
        "total": 2,
        "errors": [],
        "completedAt": None,
    }
    audit = (await api.get("/audit-logs", params={"entityType": "bulk_operation"})).json()["items"]
    assert [(entry["entityId"], entry["action"], entry["requestId"]) for entry in audit] == [
        (operation["id"], "create", "r-1")
    ]
    assert audit[0]["changes"]["reason"] == {"before": None, "after": "wrong input"}


async def test_an_operation_is_read_only_by_its_creator_or_an_admin(
    api: Client, rows: ExecutionRows, settings: Settings, pool: asyncpg.Pool
) -> None:
    """As executions: another viewer or operator gets a 404, exactly like an operation that does not exist."""
    await rows.execution(status="failed", tags=["nightly"])
    keys = {name: bearer(await api_key(settings.database_url, role=role)) for name, role in WHO}
    body = {"filter": {"tag": ["nightly"]}, "dryRun": True}
    created = await api.post("/executions/bulk/retry", json=body, headers=keys["creator"])
    assert created.status_code == 200, created.text
    operation_id = created.json()["id"]

    async def read(who: str) -> int:
        response = await api.get(f"/bulk-operations/{operation_id}", headers=keys[who])
        if response.status_code == 404:
            assert response.json()["detail"] == f"bulk operation {operation_id} does not exist"
        return response.status_code

    assert {who: await read(who) for who in keys} == {
        "creator": 200,
        "another operator": 404,
        "viewer": 404,
        "admin": 200,
    }
    creator = await pool.fetchval("SELECT created_by FROM bulk_operations WHERE id = $1", uuid.UUID(operation_id))
    assert creator is not None and creator.startswith("api-key:")


# --- the worker -------------------------------------------------------------------------------------------------


async def test_a_bulk_cancel_by_filter_cancels_what_matches_and_skips_finished_ones(
    api: Client, rows: ExecutionRows, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    running = [await rows.execution(status=status, tags=["batch-7"]) for status in ("running", "pending", "paused")]
    for status in ("completed", "cancelled"):
        await rows.execution(status=status, tags=["batch-7"])
    await rows.execution(status="running", tags=["batch-8"])
    created = await api.post("/executions/bulk/cancel", json={"filter": {"tag": ["batch-7"]}, "reason": "mistake"})
    operation_id = created.json()["id"]
    await rows.execution(status="running", tags=["batch-7"], created_at=datetime.now(UTC))  # after it: not selected

    await _worker(runtime, settings, batch_size=2).start(loops=1)

    operation = (await api.get(f"/bulk-operations/{operation_id}")).json()
    assert {key: operation[key] for key in ("status", "total", "succeeded", "failed", "skipped", "errors")} == {
        "status": "completed",
        "total": 5,
        "succeeded": 3,
        "failed": 0,
        "skipped": 2,
        "errors": [],
    }
    cancelled_by = await pool.fetch(
        "SELECT id FROM executions WHERE cancelled_by = $1 ORDER BY id", f"bulk-operation:{operation_id}"
    )
    assert [record["id"] for record in cancelled_by] == sorted(running)
    [record] = await read_topic(settings, settings.topics.events, 1)
    event = decoder(EventMessage).decode(record.value)
    assert isinstance(event, OperationEvent)
    assert record.key == operation_id.encode()
    assert (event.event, event.operation_id) == ("OPERATION_COMPLETED", uuid.UUID(operation_id))
    assert event.data == {
        "id": operation_id,
        "kind": "cancel",
        "status": "completed",
        "total": 5,
        "succeeded": 3,
        "failed": 0,
        "skipped": 2,
    }


async def test_an_execution_gone_before_its_batch_is_a_failure_with_its_error(
    api: Client, rows: ExecutionRows, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    kept, gone = sorted([await rows.execution(status="failed"), await rows.execution(status="failed")])
    operation_id = (await api.post("/executions/bulk/retry", json={"ids": [str(kept), str(gone)]})).json()["id"]
    await pool.execute("DELETE FROM executions WHERE id = $1", gone)

    await _worker(runtime, settings).start(loops=1)

    operation = (await api.get(f"/bulk-operations/{operation_id}")).json()
    assert (operation["succeeded"], operation["failed"], operation["skipped"]) == (1, 1, 0)
    assert operation["errors"] == [{"executionId": str(gone), "message": f"execution {gone} does not exist"}]


async def test_a_worker_that_dies_mid_batch_is_resumed_without_repeating_or_losing_an_execution(
    api: Client, rows: ExecutionRows, runtime: Runtime, settings: Settings, pool: asyncpg.Pool
) -> None:
    failed = sorted([await rows.execution(status="failed", error={"message": "boom"}) for _ in range(5)])
    await rows.execution(status="completed")
    await rows.execution(status="failed", workflow="demo.other")
    created = await api.post("/executions/bulk/retry", json={"filter": {"workflow": "demo.hello"}, "note": "again"})
    operation_id = uuid.UUID(created.json()["id"])

    # The first batch (two executions) commits; the second waits on a lock this test holds on its first execution.
    blocker = await pool.acquire()
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT 1 FROM executions WHERE id = $1 FOR UPDATE", failed[2])
    crashing = _worker(runtime, settings, batch_size=2)
    task = asyncio.create_task(crashing.start())

    async def waiting_on_the_lock() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )

    await eventually(waiting_on_the_lock)
    task.cancel()  # the worker dies mid-batch: its transaction never commits
    with pytest.raises(asyncio.CancelledError):
        await task
    await transaction.rollback()
    await pool.release(blocker)

    progress = await pool.fetchrow("SELECT * FROM bulk_operations WHERE id = $1", operation_id)
    assert (progress["status"], progress["succeeded"], progress["last_execution_id"]) == ("running", 2, failed[1])
    assert await pool.fetchval("SELECT count(*) FROM executions WHERE status = 'failed'") == 4

    await _worker(runtime, settings, batch_size=2).start(loops=1)

    operation = (await api.get(f"/bulk-operations/{operation_id}")).json()
    assert (operation["status"], operation["total"], operation["succeeded"], operation["skipped"]) == (
        "completed",
        6,
        5,
        1,
    )
    retried = await pool.fetch(
        "SELECT execution_id, count(*) AS n FROM execution_events WHERE event_type = 'RETRY_REQUESTED' "
        "GROUP BY execution_id ORDER BY execution_id"
    )
    assert [(record["execution_id"], record["n"]) for record in retried] == [(execution, 1) for execution in failed]
    assert await pool.fetchval("SELECT count(*) FROM executions WHERE status = 'pending'") == 5
