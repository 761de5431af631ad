"""The execution page at scale, in this process over real PostgreSQL: a fan-out of 500 branches drawn as one group
node with its counts, expanded on demand into the summary that replaces a graph too big to draw, whose two tables
page through the database without ever reading every step."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from flowline.settings import Settings
from flowline_api.app import create_app
from flowline_api.console.views import SUMMARY_PAGE
from flowline_api.domain.executions import service
from flowline_api.domain.workflows import service as workflows_service
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import ExecutionRows
from tests.integration.api.test_console_pages import sign_in
from tests.support import api_key

Client = AsyncTestClient  # type: ignore[type-arg]
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
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        await sign_in(client, await api_key(settings.database_url, "dev", "admin"))
        yield client


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


@pytest.fixture
def step_rows_read(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each read of step rows by the executions service and how many it returned (a spy: every read still runs)."""
    counted: list[tuple[str, int]] = []

    def spied(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        async def counting(*args: Any, **kwargs: Any) -> Any:
            records = await read(*args, **kwargs)
            counted.append((name, len(records)))
            return records

        return counting

    for name in ("list_step_executions", "list_named_step_executions", "list_step_executions_in"):
        monkeypatch.setattr(service, name, spied(name, getattr(service, name)))
    return counted


def _most_read(reads: list[tuple[str, int]]) -> int:
    """The most step rows one read returned; none may have read them all."""
    assert "list_step_executions" not in {name for name, _ in reads}
    return max(count for _, count in reads)


def _nodes(page: str) -> list[str]:
    return re.findall(r'<a href="[^"]*" class="node[^"]*" data-(?:step|group)="([^"]+)"', page)


async def test_a_fan_out_is_one_group_node_with_its_counts(
    console: Client, wide: uuid.UUID, step_rows_read: list[tuple[str, int]]
) -> None:
    page = await console.get(f"/ui/executions/{wide}")
    assert page.status_code == 200, page.text
    assert _nodes(page.text) == ["start", "fetch", "join"]
    group = page.text.split('data-group="fetch"')[1].split("</a>")[0]
    assert "<title>500 \N{MULTIPLICATION SIGN} fetch: 438 completed, 60 failed, 2 running</title>" in group
    assert 'data-status="failed"' in group  # coloured by what needs a look first
    assert 'href="?expand=fetch"' in page.text
    assert 'data-fan-out="fetch"' in page.text and "fetch-0 … fetch-499" in page.text
    assert _most_read(step_rows_read) <= 2  # start and join, drawn one by one; the branches are counted in the database

    branch = await console.get(f"/ui/executions/{wide}?step=fetch-7")  # a folded branch still opens its pane
    assert branch.status_code == 200 and "fetch 7 timed out" in branch.text
    assert _most_read(step_rows_read) <= 2


async def test_an_expanded_fan_out_too_big_to_draw_turns_into_a_paged_summary(
    console: Client, wide: uuid.UUID, step_rows_read: list[tuple[str, int]]
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
    assert _most_read(step_rows_read) <= SUMMARY_PAGE + 1  # a page, and one more to know whether another follows

    following = await console.get(f"/ui/executions/{wide}?expand=fetch&stepsAfter=50")
    assert re.findall(r'<tr data-step="([^"]+)">', following.text) == [f"fetch-{n}" for n in range(50, 62)]
    last = await console.get(f"/ui/executions/{wide}?expand=fetch&summaryOffset=500")
    assert re.findall(r'<tr data-row="([^"]+)">', last.text) == ["fetch-499", "join"]
    join = last.text.split('data-row="join"')[1].split("</tr>")[0]
    assert "1 not started" in join
    assert _most_read(step_rows_read) <= SUMMARY_PAGE + 1

    refused = await console.get(f"/ui/executions/{wide}?expand=fetch&stepsAfter=last")
    assert refused.status_code == 400 and "stepsAfter: &#39;last&#39; is not a whole number" in refused.text


@pytest.fixture
def definitions_read(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The workflow versions whose definitions the workflow service read (a spy: every read still runs)."""
    read: list[uuid.UUID] = []
    real = workflows_service.read_version_document

    async def counting(connection: Any, *, version_id: uuid.UUID) -> Any:
        read.append(version_id)
        return await real(connection, version_id=version_id)

    monkeypatch.setattr(workflows_service, "read_version_document", counting)
    return read


async def test_a_versions_steps_are_read_once_and_kept_by_version(
    console: Client, wide: uuid.UUID, pool: asyncpg.Pool, definitions_read: list[uuid.UUID]
) -> None:
    for query in ("", "?step=fetch-7", "?expand=fetch", ""):
        page = await console.get(f"/ui/executions/{wide}{query}")
        assert page.status_code == 200, page.text
        assert 'data-fan-out="fetch"' in page.text
    assert len(definitions_read) == 1  # the first page read the 502 steps; the others were shown from the cache

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
    assert definitions_read == [first_version, second_version]
    again = await console.get(f"/ui/executions/{wide}")
    assert _nodes(again.text) == ["start", "fetch", "join"] and len(definitions_read) == 2

    # A workflow deleted since is seen at once, kept steps or not: the page draws the steps that ran (not join).
    await pool.execute("UPDATE workflows SET deleted_at = now() WHERE id = $1", workflow_id)
    deleted = await console.get(f"/ui/executions/{wide}")
    assert deleted.status_code == 200, deleted.text
    assert _nodes(deleted.text) == ["start", "fetch"] and len(definitions_read) == 2
