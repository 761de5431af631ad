"""Ownership through children: a child execution the caller may not see stays hidden behind its public parent.

An execution is visible to the principal that owns it and to anyone when its workflow is public (admins see
all). ``/children`` and the consolidated stream apply that rule to each descendant: a hidden child is left out,
and so is everything below it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import msgspec
import pytest
from flowline.domain.credentials import key_subject, parse_key
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import ExecutionRows
from tests.support import api_key, bearer

BASE = "http://testserver.local/api/v1/tenants/dev"


def _subject(key: str) -> str:
    key_id, _ = parse_key(key) or (None, None)
    assert key_id is not None
    return key_subject(key_id)


@dataclass
class Tree:
    root: uuid.UUID
    hidden: uuid.UUID  # another principal's child, of a private workflow
    below_hidden: uuid.UUID  # a public workflow's child of the hidden one
    mine: uuid.UUID  # the viewer's own child, of the same private workflow
    public: uuid.UUID  # another principal's child, of a public workflow


async def _tree(pool: asyncpg.Pool, viewer: str, stranger: str) -> Tree:
    rows = ExecutionRows(pool)

    async def execution(workflow: str, owner: str, parent: uuid.UUID | None = None) -> uuid.UUID:
        execution_id = await rows.execution(workflow=workflow, parent=parent, parent_step="child" if parent else None)
        await pool.execute("UPDATE executions SET owned_by = $2 WHERE id = $1", execution_id, owner)
        return execution_id

    root = await execution("demo.shown", stranger)
    hidden = await execution("demo.secret", stranger, root)
    below_hidden = await execution("demo.shown", stranger, hidden)
    mine = await execution("demo.secret", viewer, root)
    public = await execution("demo.shown", stranger, root)
    await pool.execute("UPDATE workflows SET public = (ref = 'demo.shown')")
    for parent, children in ((root, [hidden, mine, public]), (hidden, [below_hidden])):
        await rows.events(
            parent,
            ("WORKFLOW_STARTED", None, {"status": "running"}),
            *(("CHILD_WORKFLOW_INITIATED", "child", {"childExecutionId": str(child)}) for child in children),
            ("WORKFLOW_COMPLETED", None, {"status": "completed"}),
        )
    for leaf in (below_hidden, mine, public):
        await rows.events(
            leaf, ("WORKFLOW_STARTED", None, {"status": "running"}), ("WORKFLOW_COMPLETED", None, {"status": "done"})
        )
    return Tree(root, hidden, below_hidden, mine, public)


@pytest.fixture
async def callers(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        "viewer": bearer(await api_key(settings.database_url, role="viewer")),
        "admin": bearer(await api_key(settings.database_url, role="admin")),
        "stranger": bearer(await api_key(settings.database_url, role="operator")),
    }


def _stream_executions(body: str) -> list[str]:
    executions = []
    for line in body.splitlines():
        if line.startswith("data:"):
            executions.append(msgspec.json.decode(line[len("data:") :].strip())["executionId"])
    return executions


async def test_children_and_the_consolidated_stream_leave_out_what_the_caller_may_not_see(
    settings: Settings, pool: asyncpg.Pool, callers: dict[str, dict[str, str]]
) -> None:
    viewer = callers["viewer"]["Authorization"].removeprefix("Bearer ")
    stranger = callers["stranger"]["Authorization"].removeprefix("Bearer ")
    tree = await _tree(pool, _subject(viewer), _subject(stranger))
    async with AsyncTestClient(create_app(settings), base_url=BASE) as client:
        seen: dict[str, set[str]] = {}
        streamed: dict[str, set[str]] = {}
        for caller, headers in callers.items():
            children = await client.get(f"{BASE}/executions/{tree.root}/children", headers=headers)
            assert children.status_code == 200, children.text
            seen[caller] = {child["childWorkflowExecutionId"] for child in children.json()["children"]}
            stream = await client.get(f"{BASE}/executions/{tree.root}/stream/consolidated", headers=headers)
            assert stream.status_code == 200, stream.text
            streamed[caller] = set(_stream_executions(stream.text))
        hidden_children = await client.get(f"{BASE}/executions/{tree.hidden}/children", headers=callers["viewer"])

    everyone = {str(tree.hidden), str(tree.mine), str(tree.public)}
    assert seen["admin"] == everyone
    assert seen["viewer"] == {str(tree.mine), str(tree.public)}
    assert seen["stranger"] == {str(tree.hidden), str(tree.public)}
    assert streamed["admin"] == {str(tree.root), str(tree.below_hidden), *everyone}
    # The hidden child's events are left out, and so are those of everything below it.
    assert streamed["viewer"] == {str(tree.root), str(tree.mine), str(tree.public)}
    assert streamed["stranger"] == {str(tree.root), str(tree.hidden), str(tree.below_hidden), str(tree.public)}
    assert hidden_children.status_code == 404  # the hidden child itself is not there for the viewer


async def test_a_resumed_consolidated_stream_does_not_follow_a_hidden_child_named_in_last_event_id(
    settings: Settings, pool: asyncpg.Pool, callers: dict[str, dict[str, str]]
) -> None:
    viewer = callers["viewer"]["Authorization"].removeprefix("Bearer ")
    stranger = callers["stranger"]["Authorization"].removeprefix("Bearer ")
    tree = await _tree(pool, _subject(viewer), _subject(stranger))
    async with AsyncTestClient(create_app(settings), base_url=BASE) as client:
        stream = await client.get(
            f"{BASE}/executions/{tree.root}/stream/consolidated",
            headers={**callers["viewer"], "Last-Event-ID": f"{tree.root}:1,{tree.hidden}:1"},
        )
    assert stream.status_code == 200, stream.text
    assert set(_stream_executions(stream.text)) == {str(tree.root), str(tree.mine), str(tree.public)}
    # Its position is neither followed nor echoed back (the parent's own CHILD_WORKFLOW_INITIATED event still
    # names it: the parent's event log is the viewer's to read).
    ids = [line for line in stream.text.splitlines() if line.startswith("id:")]
    assert ids and not any(str(tree.hidden) in line for line in ids)
