"""DELETE /executions/{id} and POST /executions/bulk/delete: what may be deleted, by whom, and that it goes whole."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from flowline.domain.archive import read_archive
from flowline.domain.credentials import key_subject, parse_key
from flowline.domain.removal import Remover
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.bulk import BulkOperationLoop
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client, served_client
from tests.integration.api.execution_rows import ExecutionRows
from tests.integration.execution_trees import execution_tree, rows_kept, rows_left
from tests.support import api_key, bearer, define_and_start

Client = AsyncTestClient  # type: ignore[type-arg]
ROOT = "http://testserver.local"
TENANT_ROUTES = "/api/v1/tenants/{tenant}"
# Bodies that pass validation, so that the route itself answers.
BODIES: dict[str, Any] = {"/rerun": {"fromStep": "work"}, "/resolve": {"value": 1}, "/reject": {"reason": "no"}}
AGAIN = {"steps": [{"id": "work", "type": "action", "action": "core.echo", "input": {}}]}


@pytest.fixture
def rows(pool: asyncpg.Pool) -> ExecutionRows:
    return ExecutionRows(pool)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def _every_route_of(api: Client, execution_id: uuid.UUID, task_id: uuid.UUID) -> dict[str, int]:
    """The status every route of the served OpenAPI document naming an execution or a task answers for these."""
    document = (await api.get(f"{ROOT}/docs/openapi.json")).json()
    values = {"tenant": "dev", "execution_id": str(execution_id), "task_id": str(task_id), "name": "approval"}
    answers = {}
    for template, methods in document["paths"].items():
        if "{execution_id}" not in template and "{task_id}" not in template:
            continue
        path = re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], template)
        for method in set(methods) & {"get", "post", "delete"}:
            body = next((body for suffix, body in BODIES.items() if template.endswith(suffix)), None)
            response = await api.request(method.upper(), f"{ROOT}{path}", json=body)
            answers[f"{method.upper()} {template.removeprefix(TENANT_ROUTES)}"] = response.status_code
    return answers


async def test_a_finished_root_is_deleted_whole_and_every_route_then_answers_404(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    kept = await execution_tree(rows, pool, finished_seconds_ago=60)
    kept_rows = await rows_kept(pool, kept.members)

    response = await api.delete(f"/executions/{tree.root}")

    assert response.status_code == 204, response.text
    assert set((await rows_left(pool, tree.members)).values()) == {0}
    assert await rows_kept(pool, kept.members) == kept_rows
    answers = await _every_route_of(api, tree.root, tree.tasks[0])
    assert len(answers) >= 15
    assert {route: status for route, status in answers.items() if status != 404} == {}
    audit = await pool.fetch("SELECT action, principal FROM audit_logs WHERE entity_id = $1", str(tree.root))
    assert [row["action"] for row in audit] == ["delete"]


@pytest.mark.parametrize("status", ["pending", "running", "paused"])
async def test_an_unfinished_execution_is_409_naming_its_status(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool, status: str
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=60, root_status=status)
    before = await rows_kept(pool, tree.members)

    problem = _problem(await api.delete(f"/executions/{tree.root}"), 409)

    assert problem["detail"] == f"execution {tree.root} is {status}; only a finished execution is deleted"
    assert await rows_kept(pool, tree.members) == before


async def test_a_child_is_409_naming_its_root_and_a_root_with_a_running_child_is_409(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    busy = await execution_tree(rows, pool, finished_seconds_ago=60, child_status="running")
    before = {
        root: await rows_kept(pool, members) for root, members in ((tree.root, tree.members), (busy.root, busy.members))
    }
    child, grandchild = tree.members[1], tree.members[2]

    child_problem = _problem(await api.delete(f"/executions/{grandchild}"), 409)
    busy_problem = _problem(await api.delete(f"/executions/{busy.root}"), 409)

    assert child_problem["detail"] == (
        f"execution {grandchild} is a child of execution {child}; delete its root execution {tree.root}"
    )
    assert busy_problem["detail"] == (
        f"execution {busy.root} cannot be deleted yet: its descendant execution {busy.members[1]} is running"
    )
    assert await rows_kept(pool, tree.members) == before[tree.root]
    assert await rows_kept(pool, busy.members) == before[busy.root]


async def test_owner_rules_are_those_of_cancel(
    settings: Settings, rows: ExecutionRows, pool: asyncpg.Pool, api: Client
) -> None:
    await rows.tenant("acme")
    owner = await api_key(settings.database_url, role="operator")
    owner_id, _ = parse_key(owner) or (None, None)
    assert owner_id is not None
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    await pool.execute("UPDATE executions SET owned_by = $2 WHERE id = $1", tree.root, key_subject(owner_id))
    other_operator = bearer(await api_key(settings.database_url, role="operator"))
    viewer = bearer(await api_key(settings.database_url, role="viewer"))
    foreign_admin = bearer(await api_key(settings.database_url, tenant="acme", role="admin"))
    path = f"/executions/{tree.root}"

    assert _problem(await api.delete(path, headers=viewer), 403)
    assert _problem(await api.delete(path, headers=other_operator), 404)["detail"] == (
        f"execution {tree.root} does not exist"
    )
    assert _problem(await api.delete(f"{ROOT}/api/v1/tenants/acme{path}", headers=foreign_admin), 404)
    assert (await rows_left(pool, tree.members))["executions"] == 3
    assert (await api.delete(path, headers=bearer(owner))).status_code == 204
    assert (await rows_left(pool, tree.members))["executions"] == 0
    assert _problem(await api.delete(path), 404)["detail"] == f"execution {tree.root} does not exist"


async def test_nothing_is_deleted_when_its_archive_cannot_be_written(
    settings: Settings, rows: ExecutionRows, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the archive folder should be")
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    before = await rows_kept(pool, tree.members)

    async with admin_client(msgspec.structs.replace(settings, archive_dir=str(blocked))) as api:
        problem = _problem(await api.delete(f"/executions/{tree.root}"), 503)

    assert problem["detail"].startswith(f"execution {tree.root} was not deleted: its archive cannot be written")
    assert await rows_kept(pool, tree.members) == before


async def test_a_bulk_delete_removes_finished_roots_and_skips_the_rest(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool, runtime: Runtime, settings: Settings
) -> None:
    finished = [await execution_tree(rows, pool, finished_seconds_ago=60) for _ in range(3)]
    running = await execution_tree(rows, pool, finished_seconds_ago=60, root_status="running")
    busy = await execution_tree(rows, pool, finished_seconds_ago=60, child_status="running")
    selection = {"filter": {"workflow": "demo.hello"}, "reason": "tidy up"}

    dry = await api.post("/executions/bulk/delete", json={**selection, "dryRun": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["kind"], dry.json()["total"]) == ("delete", 5)
    assert (await rows_left(pool, [member for tree in finished for member in tree.members]))["executions"] == 9

    created = await api.post("/executions/bulk/delete", json=selection)
    assert created.status_code == 202, created.text
    await BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05, batch_size=2).run_once()

    operation = (await api.get(f"/bulk-operations/{created.json()['id']}")).json()
    assert {key: operation[key] for key in ("status", "total", "succeeded", "skipped", "failed")} == {
        "status": "completed",
        "total": 5,
        "succeeded": 3,
        "skipped": 2,
        "failed": 0,
    }
    for tree in finished:
        assert set((await rows_left(pool, tree.members)).values()) == {0}
    assert (await rows_left(pool, running.members))["executions"] == 3
    assert (await rows_left(pool, busy.members))["executions"] == 3


async def test_a_deleted_execution_is_archived_first_when_an_archive_folder_is_set(
    settings: Settings, rows: ExecutionRows, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    completed_at = await pool.fetchval("SELECT completed_at FROM executions WHERE id = $1", tree.root)

    async with admin_client(msgspec.structs.replace(settings, archive_dir=str(tmp_path))) as api:
        assert (await api.delete(f"/executions/{tree.root}")).status_code == 204

    document = read_archive(tmp_path / "dev" / f"{completed_at:%Y/%m/%d}" / f"{tree.root}.json.gz")
    assert document["execution"]["id"] == str(tree.root)
    assert [child["execution"]["id"] for child in document["children"]] == [str(tree.members[1])]
    assert set((await rows_left(pool, tree.members)).values()) == {0}


async def test_a_bulk_delete_skips_children_and_those_already_gone_with_their_root(
    api: Client, rows: ExecutionRows, pool: asyncpg.Pool, runtime: Runtime, settings: Settings
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=60)
    created = await api.post("/executions/bulk/delete", json={"ids": [str(member) for member in tree.members]})
    assert created.status_code == 202, created.text

    await BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05).run_once()

    operation = (await api.get(f"/bulk-operations/{created.json()['id']}")).json()
    assert (operation["total"], operation["succeeded"], operation["skipped"], operation["failed"]) == (3, 1, 2, 0)
    assert set((await rows_left(pool, tree.members)).values()) == {0}


async def test_a_rerun_asked_while_its_original_is_being_deleted_waits_then_is_404(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """No key holds a rerun to its original (0013): the rerun locks it, so it never points at one that is gone."""
    original = await define_and_start(pool, settings, "demo.again", AGAIN, {})
    tenant_id = await pool.fetchval(
        "UPDATE executions SET status = 'completed', completed_at = now() WHERE id = $1 RETURNING tenant_id",
        original.id,
    )

    async with served_client(settings) as api, pool.acquire() as removing:
        async with removing.transaction():
            await Remover(archive_dir=None).delete_execution(removing, tenant_id, original.id)
            rerun = asyncio.create_task(api.post(f"executions/{original.id}/rerun", json={"fromStep": "work"}))
            while not rerun.done() and not await pool.fetchval(  # until the rerun waits for the removal's lock
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ):
                await asyncio.sleep(0.02)
        response = await rerun

    assert _problem(response, 404)["detail"] == f"execution {original.id} does not exist"
    assert await pool.fetchval("SELECT count(*) FROM executions WHERE triggered_by = 'rerun'") == 0
