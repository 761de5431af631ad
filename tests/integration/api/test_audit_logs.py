"""``GET /audit-logs`` over a real database: filters, newest first, offset and cursor pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from flowline.db.audit import Actor, record_audit
from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def add_rows(pool: asyncpg.Pool, rows: list[tuple[str, str, str, str | None, int]]) -> None:
    """(entity type, entity id, action, principal, minutes after T0) per row, written as services write them."""
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        for entity_type, entity_id, action, principal, minutes in rows:
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type=entity_type,
                entity_id=entity_id,
                action=action,
                actor=Actor(principal=principal, request_id=f"req-{entity_id}-{action}"),
                changes={"label": {"before": None, "after": entity_id}},
            )
            await connection.execute(
                "UPDATE audit_logs SET occurred_at = $1 WHERE request_id = $2",
                T0 + timedelta(minutes=minutes),
                f"req-{entity_id}-{action}",
            )


@pytest.fixture
async def history(pool: asyncpg.Pool) -> None:
    await add_rows(
        pool,
        [
            ("workflow", "w1", "create", "alice", 0),
            ("agent", "a1", "create", "bob", 1),
            ("workflow", "w1", "update", "bob", 2),
            ("pack", "p1", "create", None, 3),
            ("agent", "a1", "delete", "alice", 4),
        ],
    )


def keys(page: dict[str, Any]) -> list[str]:
    return [f"{item['entityId']}:{item['action']}" for item in page["items"]]


async def test_newest_first_with_every_field(api: Client, history: None) -> None:
    response = await api.get("audit-logs")

    assert response.status_code == 200
    page = response.json()
    assert keys(page) == ["a1:delete", "p1:create", "w1:update", "a1:create", "w1:create"]
    assert (page["total"], page["limit"], page["offset"], page["nextCursor"]) == (5, 20, 0, None)
    newest = page["items"][0]
    assert uuid.UUID(newest.pop("id")).version == 7
    assert newest == {
        "entityType": "agent",
        "entityId": "a1",
        "action": "delete",
        "principal": "alice",
        "changes": {"label": {"before": None, "after": "a1"}},
        "requestId": "req-a1-delete",
        "occurredAt": "2026-01-01T00:04:00Z",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"entityType": "workflow"}, ["w1:update", "w1:create"]),
        ({"entityType": "agent", "entityId": "a1"}, ["a1:delete", "a1:create"]),
        ({"entityId": "p1"}, ["p1:create"]),
        ({"principal": "bob"}, ["w1:update", "a1:create"]),
        ({"from": "2026-01-01T00:02:00Z"}, ["a1:delete", "p1:create", "w1:update"]),
        ({"to": "2026-01-01T00:02:00Z"}, ["a1:create", "w1:create"]),
        ({"from": "2026-01-01T00:01:00", "to": "2026-01-01T00:03:00+00:00"}, ["w1:update", "a1:create"]),
        ({"from": "2026-01-01T01:01:00+01:00", "to": "2026-01-01T01:02:00+01:00"}, ["a1:create"]),
        ({"principal": "alice", "entityType": "agent"}, ["a1:delete"]),
        ({"entityType": "nothing"}, []),
    ],
)
async def test_filters(api: Client, history: None, params: dict[str, str], expected: list[str]) -> None:
    page = (await api.get("audit-logs", params=params)).json()

    assert keys(page) == expected
    assert page["total"] == len(expected)


async def test_offset_and_cursor_pages(api: Client, pool: asyncpg.Pool) -> None:
    # Five rows share one timestamp: the cursor must still page through them without loss or repetition.
    await add_rows(pool, [("agent", f"a{index}", "create", None, 0) for index in range(5)])
    await add_rows(pool, [("agent", f"b{index}", "create", None, index + 1) for index in range(3)])

    everything = keys((await api.get("audit-logs", params={"limit": 100})).json())
    second = (await api.get("audit-logs", params={"limit": 3, "offset": 3})).json()
    assert keys(second) == everything[3:6]
    assert second["total"] == 8

    seen: list[str] = []
    cursor = None
    while True:
        page = (await api.get("audit-logs", params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        assert page["total"] == 8
        seen += keys(page)
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == everything
    assert len(set(seen)) == 8


async def test_agent_changes_appear_in_the_audit_log(api: Client) -> None:
    created = (await api.post("agents", json={"name": "x", "url": "http://agent.example.com"})).json()
    await api.put(f"agents/{created['id']}", json={"status": "inactive"})

    page = (await api.get("audit-logs", params={"entityType": "agent", "entityId": created["id"]})).json()

    assert [item["action"] for item in page["items"]] == ["update", "create"]
    assert page["items"][0]["changes"] == {"status": {"before": "active", "after": "inactive"}}


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday"},
        {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"limit": 0},
        {"cursor": "bm9wZQ"},
        {"cursor": "WyJub3QgYSB0aW1lIiwieCJd"},  # ["not a time","x"]
    ],
)
async def test_bad_parameters_are_400(api: Client, params: dict[str, Any]) -> None:
    response = await api.get("audit-logs", params=params)

    assert response.status_code == 400, response.text
