"""The retention loop removes finished execution trees whole once past their retention, and nothing else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import msgspec
import pytest
from flowline.db.audit import Actor
from flowline.db.tenants import read_tenant_id, update_tenant_retention
from flowline.domain.archive import read_archive
from flowline.runtime.ids import uuid7
from flowline_client.cli import main as cli
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.retention import RetentionLoop, RetentionPeriods
from prometheus_client import CollectorRegistry

from tests.integration.api.execution_rows import ExecutionRows
from tests.integration.execution_trees import Tree, execution_tree, finished_ago, full_execution, rows_left

DAY = 86_400
TABLES = ("executions", "step_executions", "task_attempts", "timers", "promises", "execution_events", "task_logs")


@pytest.fixture
def rows(pool: asyncpg.Pool) -> ExecutionRows:
    return ExecutionRows(pool)


def _loop(
    pool: asyncpg.Pool,
    registry: CollectorRegistry | None = None,
    *,
    executions: int = 30 * DAY,
    audit: int = 365 * DAY,
    batch_size: int = 50,
    archive_dir: Path | None = None,
) -> RetentionLoop:
    return RetentionLoop(
        pool,
        SchedulerMetrics(registry or CollectorRegistry()),
        RetentionPeriods(executions=executions, audit=audit),
        interval_seconds=60,
        batch_size=batch_size,
        archive_dir=archive_dir,
    )


def _removed(registry: CollectorRegistry, table: str) -> float:
    return registry.get_sample_value("flowline_retention_removed_rows_total", {"table": table}) or 0.0


async def test_a_finished_tree_past_its_retention_goes_whole_and_nothing_else_does(
    pool: asyncpg.Pool, rows: ExecutionRows
) -> None:
    expired = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY)
    recent = await execution_tree(rows, pool, finished_seconds_ago=29 * DAY)
    running = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY, root_status="running")
    waiting_on_child = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY, child_status="running")
    await pool.execute(
        "INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action) "
        "SELECT $1, tenant_id, 'execution', id::text, 'cancel' FROM executions WHERE id = $2",
        uuid7(),
        expired.root,
    )
    kept_before = {tree.root: await rows_left(pool, tree.members) for tree in (recent, running, waiting_on_child)}
    registry = CollectorRegistry()

    await _loop(pool, registry).run_once()

    assert set((await rows_left(pool, expired.members)).values()) == {0}
    for tree in (recent, running, waiting_on_child):
        assert await rows_left(pool, tree.members) == kept_before[tree.root]
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE entity_id = $1", str(expired.root)) == 1
    assert {table: _removed(registry, table) for table in (*TABLES, "outbox")} == {
        "executions": 3,
        "step_executions": 3,
        "task_attempts": 3,
        "timers": 3,
        "promises": 3,
        "execution_events": 6,
        "task_logs": 9,
        "outbox": 3,
    }
    assert registry.get_sample_value("flowline_retention_behind_seconds") == 0


async def test_task_log_records_go_with_their_tree_when_stamped_within_a_day_of_its_lifetime(
    pool: asyncpg.Pool, rows: ExecutionRows
) -> None:
    """The delete looks for a tree's records from its first start to its last finish, a day either side (clocks)."""
    tree = await execution_tree(rows, pool, finished_seconds_ago=40 * DAY)
    for offset in ("-23 hours", "+23 hours", "+25 hours"):  # from the grandchild's start (it lives for 3 s)
        await pool.execute(
            "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
            "SELECT $1, tenant_id, id, $2, 'work', 1, 'INFO', $3::text, created_at + $3::interval FROM executions "
            "WHERE id = $4",
            uuid7(),
            tree.tasks[-1],
            offset,
            tree.members[-1],
        )

    await _loop(pool).run_once()

    left = await pool.fetch("SELECT message FROM task_logs WHERE execution_id = ANY($1::uuid[])", tree.members)
    assert [record["message"] for record in left] == ["+25 hours"]  # left to its day partition's own retention
    assert (await rows_left(pool, tree.members))["executions"] == 0


async def test_a_workflows_retention_overrides_the_default(pool: asyncpg.Pool, rows: ExecutionRows) -> None:
    short = await execution_tree(rows, pool, finished_seconds_ago=2 * 3600, workflow="demo.short")
    default = await execution_tree(rows, pool, finished_seconds_ago=2 * 3600, workflow="demo.default")
    long = await execution_tree(rows, pool, finished_seconds_ago=40 * DAY, workflow="demo.long")
    old_default = await execution_tree(rows, pool, finished_seconds_ago=40 * DAY, workflow="demo.default")
    await pool.execute("UPDATE workflows SET retention_seconds = 3600 WHERE ref = 'demo.short'")
    await pool.execute("UPDATE workflows SET retention_seconds = $1 WHERE ref = 'demo.long'", 365 * DAY)

    await _loop(pool).run_once()

    gone = {tree.root: set((await rows_left(pool, tree.members)).values()) == {0} for tree in (short, old_default)}
    assert gone == {short.root: True, old_default.root: True}
    for tree in (default, long):
        assert (await rows_left(pool, tree.members))["executions"] == 3


async def test_a_tenants_default_overrides_the_servers_and_a_workflows_own_overrides_the_tenants(
    pool: asyncpg.Pool, rows: ExecutionRows
) -> None:
    past_tenant_default = await execution_tree(rows, pool, finished_seconds_ago=2 * 3600, workflow="demo.default")
    within_tenant_default = await execution_tree(rows, pool, finished_seconds_ago=600, workflow="demo.default")
    own_retention = await execution_tree(rows, pool, finished_seconds_ago=40 * DAY, workflow="demo.long")
    await pool.execute("UPDATE workflows SET retention_seconds = $1 WHERE ref = 'demo.long'", 365 * DAY)
    async with pool.acquire() as connection, connection.transaction():
        tenant_id = await read_tenant_id(connection, "dev")
        await update_tenant_retention(
            connection, tenant_id=tenant_id, retention_seconds=3600, actor=Actor("test", None)
        )

    await _loop(pool).run_once()

    assert set((await rows_left(pool, past_tenant_default.members)).values()) == {0}
    for tree in (within_tenant_default, own_retention):
        assert (await rows_left(pool, tree.members))["executions"] == 3


async def test_a_rerun_outlives_its_original_unless_it_has_not_started(pool: asyncpg.Pool, rows: ExecutionRows) -> None:
    original = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY)
    awaited = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY)
    rerun = await rows.execution(status="completed")
    pending_rerun = await rows.execution(status="pending")
    await pool.execute("UPDATE executions SET rerun_of = $1 WHERE id = $2", original.root, rerun)
    await pool.execute("UPDATE executions SET rerun_of = $1 WHERE id = $2", awaited.root, pending_rerun)
    await pool.execute(  # the reruns are recent
        "UPDATE executions SET completed_at = now() WHERE id = $1", rerun
    )

    await _loop(pool).run_once()

    assert (await rows_left(pool, original.members))["executions"] == 0
    assert await pool.fetchval("SELECT rerun_of FROM executions WHERE id = $1", rerun) is None
    assert (await rows_left(pool, awaited.members))["executions"] == 3
    assert await pool.fetchval("SELECT rerun_of FROM executions WHERE id = $1", pending_rerun) == awaited.root


async def test_old_audit_rows_go_after_their_own_retention(pool: asyncpg.Pool, rows: ExecutionRows) -> None:
    tenant_id = await rows.tenant()
    for days in (400, 366, 10):
        await pool.execute(
            "INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action, occurred_at) "
            "VALUES ($1, $2, 'workflow', 'demo.hello', 'update', now() - make_interval(days => $3))",
            uuid7(),
            tenant_id,
            days,
        )
    registry = CollectorRegistry()

    await _loop(pool, registry).run_once()

    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE entity_type = 'workflow'") == 1
    assert _removed(registry, "audit_logs") == 2


async def test_each_root_is_archived_before_it_goes_and_archive_show_prints_it(
    pool: asyncpg.Pool, rows: ExecutionRows, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY)
    completed_at = await pool.fetchval("SELECT completed_at FROM executions WHERE id = $1", tree.root)

    await _loop(pool, archive_dir=tmp_path).run_once()

    assert set((await rows_left(pool, tree.members)).values()) == {0}
    path = tmp_path / "dev" / f"{completed_at:%Y/%m/%d}" / f"{tree.root}.json.gz"
    document = read_archive(path)
    assert document["tenant"] == "dev"
    assert document["execution"]["id"] == str(tree.root)
    assert [len(document[section]) for section in ("steps", "attempts", "timers", "promises", "events", "logs")] == [
        1,
        1,
        1,
        1,
        2,
        3,
    ]
    [child] = document["children"]
    [grandchild] = child["children"]
    assert [child["execution"]["id"], grandchild["execution"]["id"]] == [str(tree.members[1]), str(tree.members[2])]
    assert [line["message"] for line in grandchild["logs"]] == ["line 0", "line 1", "line 2"]
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary file left behind

    assert cli(["executions", "archive-show", str(path), "--logs"], environ={}) == 0
    shown = capsys.readouterr().out
    assert f"Execution:  {tree.root}" in shown
    assert "1 steps, 1 attempts, 1 timers, 1 promises, 2 events, 3 logs" in shown
    assert f"  {tree.members[1]}  demo.child  COMPLETED  (step work)" in shown
    assert f"    {tree.members[2]}  demo.child  FAILED  (step work)" in shown
    assert shown.count("INFO [work] line") == 3
    assert cli(["executions", "archive-show", str(path), "-O", "json"], environ={}) == 0
    assert msgspec.json.decode(capsys.readouterr().out) == document


async def test_nothing_goes_when_its_archive_cannot_be_written(
    pool: asyncpg.Pool, rows: ExecutionRows, tmp_path: Path
) -> None:
    tree = await execution_tree(rows, pool, finished_seconds_ago=31 * DAY)
    before = await rows_left(pool, tree.members)
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the archive folder should be")  # refused even to root, unlike permissions
    registry = CollectorRegistry()

    await _loop(pool, registry, archive_dir=blocked).run_once()

    assert await rows_left(pool, tree.members) == before
    assert registry.get_sample_value("flowline_retention_not_archived_total") == 1
    assert _removed(registry, "executions") == 0


async def test_two_loops_side_by_side_remove_each_root_once(pool: asyncpg.Pool, rows: ExecutionRows) -> None:
    roots = []
    for _ in range(40):
        tree = Tree(await rows.execution(status="completed", created_at=finished_ago(31 * DAY)))
        await full_execution(rows, pool, tree.root, tree)
        roots.append(tree.root)
    first, second = CollectorRegistry(), CollectorRegistry()

    await asyncio.gather(_loop(pool, first, batch_size=3).run_once(), _loop(pool, second, batch_size=3).run_once())

    assert set((await rows_left(pool, roots)).values()) == {0}
    assert _removed(first, "executions") + _removed(second, "executions") == 40
    assert _removed(first, "task_logs") + _removed(second, "task_logs") == 120
