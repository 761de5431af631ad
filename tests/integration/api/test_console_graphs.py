"""The execution page at scale, in this process over real PostgreSQL: a fan-out of 500 branches drawn as one group
node with its counts, expanded on demand into the summary that replaces a graph too big to draw, whose two tables
page through the database without ever reading every step: the statements the app's own connections send are
logged by asyncpg, and the step rows they read are counted by running them again."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
from asyncpg.connection import LoggedQuery
from flowline.db.execution_reads import STEP_COLUMNS
from flowline.settings import Settings
from flowline_api.app import create_app
from flowline_api.console.views import SUMMARY_PAGE
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import ExecutionRows
from tests.integration.api.test_console_pages import sign_in
from tests.support import api_key

Client = AsyncTestClient  # type: ignore[type-arg]
POOL_SIZE = 4  # the app's connections, all opened at start and all logged
WIDTH = 500
FAILED = range(60)  # fetch-0 … fetch-59 failed, fetch-60 and fetch-61 run, the rest completed
RUNNING = range(60, 62)
DEFINITION = {
    "steps": [
        {"id": "start", "type": "action", "action": "core.noop"},
        *({"id": f"fetch-{n}", "type": "action", "action": "core.noop", "needs": ["start"]} for n in range(WIDTH)),
        {"id": "join", "type": "action", "action": "core.noop", "needs": [f"fetch-{n}" for n in range(WIDTH)]},
    ]
}


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[Client]:
    sized = msgspec.structs.replace(settings, db_pool_min_size=POOL_SIZE, db_pool_max_size=POOL_SIZE)
    async with AsyncTestClient(create_app(sized), base_url="http://testserver.local") as client:
        await sign_in(client, await api_key(settings.database_url, "dev", "admin"))
        yield client


@pytest.fixture
async def sent(console: Client) -> list[LoggedQuery]:
    """Every statement the app sends to PostgreSQL from now on, logged by asyncpg on each of its connections.

    The pool's size is fixed, so holding all its connections at once reaches every one it will lend.
    """
    statements: list[LoggedQuery] = []
    app_pool: asyncpg.Pool = console.app.state.pool
    held = [await app_pool.acquire() for _ in range(app_pool.get_max_size())]
    for connection in held:
        connection.add_query_logger(statements.append)
    for connection in held:
        await app_pool.release(connection)
    return statements


@pytest.fixture
async def wide(pool: asyncpg.Pool) -> uuid.UUID:
    """A running execution of ``start``, 500 ``fetch-<n>`` branches and ``join``, which it has not reached."""
    rows = ExecutionRows(pool)
    execution_id = await rows.execution(workflow="demo.wide", status="running")
    await pool.execute(
        "UPDATE workflow_versions SET definition = $1 "
        "WHERE id = (SELECT workflow_version_id FROM executions WHERE id = $2)",
        DEFINITION,
        execution_id,
    )
    await rows.step(execution_id, "start", position=0)
    for n in range(WIDTH):
        status = "failed" if n in FAILED else "running" if n in RUNNING else "completed"
        error = {"message": f"fetch {n} timed out"} if status == "failed" else None
        await rows.step(execution_id, f"fetch-{n}", position=n + 1, status=status, error=error)
    return execution_id


async def _most_step_rows_read(sent: list[LoggedQuery], pool: asyncpg.Pool) -> int:
    """The most step rows one statement sent since the last call read, run again as sent (the rows are unchanged).

    None may have read every step: the caller's bound is below the fan-out's width.
    """
    await asyncio.sleep(0)  # asyncpg hands each logged statement over on the next turn of the event loop
    reads = [statement for statement in sent if STEP_COLUMNS in statement.query]
    sent.clear()
    return max([len(await pool.fetch(read.query, *read.args)) for read in reads])


async def _definitions_read(sent: list[LoggedQuery]) -> list[uuid.UUID]:
    """The workflow versions whose definitions the statements sent so far read."""
    await asyncio.sleep(0)
    return [statement.args[0] for statement in sent if re.search(r"SELECT definition\b", statement.query)]


def _nodes(page: str) -> list[str]:
    return re.findall(r'<a href="[^"]*" class="node[^"]*" data-(?:step|group)="([^"]+)"', page)


async def test_a_fan_out_is_one_group_node_with_its_counts(
    console: Client, wide: uuid.UUID, sent: list[LoggedQuery], pool: asyncpg.Pool
) -> None:
    page = await console.get(f"/ui/executions/{wide}")
    assert page.status_code == 200, page.text
    assert _nodes(page.text) == ["start", "fetch", "join"]
    group = page.text.split('data-group="fetch"')[1].split("</a>")[0]
    assert "<title>500 \N{MULTIPLICATION SIGN} fetch: 438 completed, 60 failed, 2 running</title>" in group
    assert 'data-status="failed"' in group  # coloured by what needs a look first
    assert 'href="?expand=fetch"' in page.text
    assert 'data-fan-out="fetch"' in page.text and "fetch-0 … fetch-499" in page.text
    assert (
        await _most_step_rows_read(sent, pool) <= 2
    )  # start and join, drawn one by one; the branches are counted in the database

    branch = await console.get(f"/ui/executions/{wide}?step=fetch-7")  # a folded branch still opens its pane
    assert branch.status_code == 200 and "fetch 7 timed out" in branch.text
    assert await _most_step_rows_read(sent, pool) <= 2


async def test_a_fan_out_split_by_another_step_counts_its_branches_only(console: Client, pool: asyncpg.Pool) -> None:
    branches = [{"id": f"fetch-{n}", "type": "action", "action": "core.noop", "needs": ["start"]} for n in range(12)]
    audit = {"id": "audit", "type": "action", "action": "core.noop", "needs": ["start"]}
    steps = [{"id": "start", "type": "action", "action": "core.noop"}, *branches[:8], audit, *branches[8:]]
    rows = ExecutionRows(pool)
    execution_id = await rows.execution(workflow="demo.split", status="running")
    await pool.execute(
        "UPDATE workflow_versions SET definition = $1 "
        "WHERE id = (SELECT workflow_version_id FROM executions WHERE id = $2)",
        {"steps": steps},
        execution_id,
    )
    for position, step in enumerate(steps):
        status = "failed" if step["id"] in ("audit", "fetch-9") else "completed"
        await rows.step(execution_id, str(step["id"]), position=position, status=status)
    page = await console.get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200, page.text
    assert _nodes(page.text) == ["start", "fetch", "audit"]
    assert "<title>12 \N{MULTIPLICATION SIGN} fetch: 11 completed, 1 failed</title>" in page.text  # not audit's


async def test_an_expanded_fan_out_too_big_to_draw_turns_into_a_paged_summary(
    console: Client, wide: uuid.UUID, sent: list[LoggedQuery], pool: asyncpg.Pool
) -> None:
    page = await console.get(f"/ui/executions/{wide}?expand=fetch")
    assert page.status_code == 200, page.text
    assert 'data-summary-steps="502"' in page.text and "<svg" not in page.text
    unsettled = re.findall(r'<tr data-step="([^"]+)">', page.text)
    assert unsettled == [f"fetch-{n}" for n in range(SUMMARY_PAGE)]  # failed and running, in definition order
    rows = re.findall(r'<tr data-row="([^"]+)">', page.text)
    assert rows == ["start", *(f"fetch-{n}" for n in range(SUMMARY_PAGE - 1))]
    assert 'href="?expand=fetch&amp;stepsAfter=50"' in page.text  # the position of the page's last step
    assert 'href="?expand=fetch&amp;summaryOffset=50"' in page.text
    assert 'data-fan-out="fetch"' in page.text and 'href="?"' in page.text  # fold it again
    assert (
        await _most_step_rows_read(sent, pool) <= SUMMARY_PAGE + 1
    )  # a page, and one more to know whether another follows

    following = await console.get(f"/ui/executions/{wide}?expand=fetch&stepsAfter=50")
    assert re.findall(r'<tr data-step="([^"]+)">', following.text) == [f"fetch-{n}" for n in range(50, 62)]
    last = await console.get(f"/ui/executions/{wide}?expand=fetch&summaryOffset=500")
    assert re.findall(r'<tr data-row="([^"]+)">', last.text) == ["fetch-499", "join"]
    join = last.text.split('data-row="join"')[1].split("</tr>")[0]
    assert "1 not started" in join
    assert await _most_step_rows_read(sent, pool) <= SUMMARY_PAGE + 1

    refused = await console.get(f"/ui/executions/{wide}?expand=fetch&stepsAfter=last")
    assert refused.status_code == 400 and "stepsAfter: &#39;last&#39; is not a whole number" in refused.text


async def test_a_versions_steps_are_read_once_and_kept_by_version(
    console: Client, wide: uuid.UUID, pool: asyncpg.Pool, sent: list[LoggedQuery]
) -> None:
    for query in ("", "?step=fetch-7", "?expand=fetch", ""):
        page = await console.get(f"/ui/executions/{wide}{query}")
        assert page.status_code == 200, page.text
        assert 'data-fan-out="fetch"' in page.text
    assert (
        len(await _definitions_read(sent)) == 1
    )  # the first page read the 502 steps; the others were shown from the cache

    # Version 2 of the same workflow, with other steps: its executions are not shown version 1's.
    workflow_id, first_version = await pool.fetchrow(
        "SELECT workflow_id, workflow_version_id FROM executions WHERE id = $1", wide
    )
    second_version = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
        "SELECT $1, tenant_id, workflow_id, 2, $2 FROM workflow_versions WHERE id = $3",
        second_version,
        {"steps": [{"id": "alpha", "type": "action"}, {"id": "beta", "type": "action", "needs": ["alpha"]}]},
        first_version,
    )
    later = await ExecutionRows(pool).execution(workflow="demo.other", status="running")
    await pool.execute(
        "UPDATE executions SET workflow_id = $1, workflow_ref = 'demo.wide', workflow_version = 2, "
        "workflow_version_id = $2 WHERE id = $3",
        workflow_id,
        second_version,
        later,
    )
    page = await console.get(f"/ui/executions/{later}")
    assert page.status_code == 200, page.text
    assert _nodes(page.text) == ["alpha", "beta"] and 'data-fan-out="fetch"' not in page.text
    assert await _definitions_read(sent) == [first_version, second_version]
    again = await console.get(f"/ui/executions/{wide}")
    assert _nodes(again.text) == ["start", "fetch", "join"] and len(await _definitions_read(sent)) == 2

    # A workflow deleted since is seen at once, kept steps or not: the page draws the steps that ran (not join).
    await pool.execute("UPDATE workflows SET deleted_at = now() WHERE id = $1", workflow_id)
    deleted = await console.get(f"/ui/executions/{wide}")
    assert deleted.status_code == 200, deleted.text
    assert _nodes(deleted.text) == ["start", "fetch"] and len(await _definitions_read(sent)) == 2
