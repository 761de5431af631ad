"""GET /executions: filters, sorts, offset and cursor pages, totals, bad filter values, tenant isolation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from flowline.db.execution_reads import ExecutionFilters, count_executions
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import T0, ExecutionRows
from tests.support import api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
async def executions(pool: asyncpg.Pool) -> dict[str, uuid.UUID]:
    """Eight executions of tenant dev, one minute apart (``a`` oldest), and one of tenant acme (started by kafka)."""
    rows = ExecutionRows(pool)
    spec: list[tuple[str, dict[str, Any]]] = [
        ("a", {"workflow": "demo.hello", "status": "completed", "tags": ["nightly", "eu"], "run_seconds": 50}),
        ("b", {"workflow": "demo.hello", "status": "failed", "metadata": {"customer": "c-1", "region": "eu"}}),
        ("c", {"workflow": "billing.charge", "status": "running", "triggered_by": "kafka", "run_seconds": None}),
        ("d", {"workflow": "billing.charge", "status": "completed", "metadata": {"customer": "c-1"}, "tags": ["eu"]}),
        ("e", {"workflow": "demo.hello", "status": "paused", "run_seconds": None, "tags": ["nightly"]}),
        ("f", {"workflow": "demo.hello", "status": "cancelled", "metadata": {"customer": "c-2", "region": "eu"}}),
        ("g", {"workflow": "demo.hello", "status": "pending", "triggered_by": "kafka"}),
        ("h", {"workflow": "shipping.dispatch", "status": "completed", "triggered_by": "workflow", "run_seconds": 1}),
    ]
    ids: dict[str, uuid.UUID] = {}
    started_by = {"a": "api-key:k1", "b": "jwt:ada", "c": "kafka", "d": "api-key:k1", "e": "jwt:ada", "g": "kafka"}
    for index, (name, fields) in enumerate(spec):
        fields = {**fields, "started_by": started_by.get(name)}
        if name == "h":
            fields = {**fields, "parent": ids["c"], "parent_step": "ship", "started_by": f"parent:{ids['c']}"}
        ids[name] = await rows.execution(created_at=T0 + timedelta(minutes=index), **fields)
    ids["foreign"] = await rows.execution(tenant="acme", workflow="demo.hello", status="failed", started_by="kafka")
    return ids


def _names(body: dict[str, Any], ids: dict[str, uuid.UUID]) -> str:
    by_id = {str(value): key for key, value in ids.items()}
    return "".join(by_id[item["id"]] for item in body["items"])


async def _list(api: Client, ids: dict[str, uuid.UUID], params: Any) -> str:
    response = await api.get("/executions", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"]) and body["totalExact"] is True
    return _names(body, ids)


async def test_filters_keep_what_they_say(api: Client, executions: dict[str, uuid.UUID]) -> None:
    ids = executions
    parent = str(ids["c"])
    expectations: list[tuple[Any, str]] = [
        ({}, "hgfedcba"),
        ({"workflow": "billing.charge"}, "dc"),
        ({"status": "failed"}, "b"),
        ({"status": ["failed", "cancelled"]}, "fb"),
        ({"status": "failed,paused,pending"}, "geb"),
        ({"triggeredBy": "kafka"}, "gc"),
        ({"startedBy": "kafka"}, "gc"),
        ({"startedBy": "api-key:k1"}, "da"),
        ({"startedBy": "jwt:ada"}, "eb"),
        ({"startedBy": "ada"}, ""),
        ({"startedBy": f"parent:{parent}"}, "h"),
        ({"startedBy": "jwt:ada", "status": "failed"}, "b"),
        ({"parentId": parent}, "h"),
        ({"createdAfter": (T0 + timedelta(minutes=2)).isoformat(), "createdBefore": "2026-11-01T00:05:00"}, "edc"),
        ({"tag": "nightly"}, "ea"),
        ({"tag": ["nightly", "eu"]}, "a"),
        ({"metadata.customer": "c-1"}, "db"),
        ({"metadata.customer": "c-1", "metadata.region": "eu"}, "b"),
        ({"metadata.region": "eu"}, "fb"),
        ({"metadata.customer": "nobody"}, ""),
        ({"search": "billing"}, "dc"),
        ({"search": "HELLO"}, "gfeba"),
        ({"search": str(ids["d"])}, "d"),
        ({"search": str(ids["d"])[:35]}, "d"),
        ({"search": str(ids["d"]).replace("-", "")[:31]}, "d"),
        ({"search": str(ids["foreign"])}, ""),
        ({"workflow": "demo.hello", "status": ["completed", "failed"], "tag": "eu"}, "a"),
    ]
    results = {str(params): await _list(api, ids, params) for params, _ in expectations}
    assert results == {str(params): expected for params, expected in expectations}


async def test_sorts_by_creation_or_completion(api: Client, executions: dict[str, uuid.UUID]) -> None:
    ids = executions
    # Completion: a finished 50 s after it started, h at once; c, e and g have not finished (they come last).
    assert await _list(api, ids, {"order": "asc"}) == "abcdefgh"
    finished = await _list(api, ids, {"sort": "completedAt", "order": "asc"})
    assert finished[:5] == "abdfh"
    assert sorted(finished[5:]) == ["c", "e", "g"]
    newest_finished = await _list(api, ids, {"sort": "completedAt"})
    assert newest_finished[3:] == "hfdba" and sorted(newest_finished[:3]) == ["c", "e", "g"]


@pytest.mark.parametrize(
    ("sort", "order"), [("createdAt", "desc"), ("createdAt", "asc"), ("completedAt", "desc"), ("completedAt", "asc")]
)
async def test_cursor_and_offset_pages_cover_the_list_once(
    api: Client, executions: dict[str, uuid.UUID], sort: str, order: str
) -> None:
    ids = executions
    whole = await _list(api, ids, {"sort": sort, "order": order})
    pages, cursor = [], None
    while True:
        params = {"sort": sort, "order": order, "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/executions", params=params)).json()
        assert body["total"] == 8 and body["limit"] == 3
        pages.append(_names(body, ids))
        cursor = body["nextCursor"]
        if cursor is None:
            break
    by_offset = [
        _names(
            (await api.get("/executions", params={"sort": sort, "order": order, "limit": 3, "offset": o})).json(), ids
        )
        for o in (0, 3, 6)
    ]

    assert "".join(pages) == whole
    assert [len(page) for page in pages] == [3, 3, 2]
    assert by_offset == pages


async def test_bad_filter_values_are_400_naming_the_parameter(api: Client, executions: dict[str, uuid.UUID]) -> None:
    cursor = (await api.get("/executions", params={"limit": 2})).json()["nextCursor"]
    cases: list[tuple[Any, str]] = [
        ({"status": "done"}, "status"),
        ({"status": "failed,nope"}, "status"),
        ({"parentId": "nope"}, "parentId"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
        ({"createdBefore": "2026-13-45"}, "createdBefore"),
        ({"sort": "name"}, "sort"),
        ({"order": "up"}, "order"),
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": cursor, "order": "asc"}, "cursor"),
        ({"metadata.": "x"}, "metadata."),
        ({"search": "x" * 201}, "search"),
        ({"startedBy": "x" * 301}, "startedBy"),
    ]
    details = {}
    for params, _ in cases:
        response = await api.get("/executions", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        details[str(params)] = response.json()["detail"]
    missing = {str(params): details[str(params)] for params, name in cases if name not in details[str(params)]}
    assert missing == {}


async def test_lists_are_per_tenant(api: Client, executions: dict[str, uuid.UUID], settings: Settings) -> None:
    acme_url = "http://testserver.local/api/v1/tenants/acme/executions"
    acme = (await api.get(acme_url, headers=bearer(await api_key(settings.database_url, "acme")))).json()
    with_dev_key = await api.get(acme_url)
    unknown = await api.get("http://testserver.local/api/v1/tenants/nobody/executions")

    assert [item["id"] for item in acme["items"]] == [str(executions["foreign"])]
    assert acme["total"] == 1
    assert unknown.status_code == 404
    assert with_dev_key.status_code == 404  # another tenant's answers exactly like one that does not exist
    assert with_dev_key.json()["detail"] == "tenant 'acme' does not exist"


async def test_past_the_count_cap_the_total_is_an_estimate(api: Client, pool: asyncpg.Pool) -> None:
    rows = ExecutionRows(pool)
    for index in range(12):
        await rows.execution(created_at=T0 + timedelta(seconds=index))
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")

    estimated = await count_executions(pool, tenant_id, ExecutionFilters(), cap=10)
    none = await count_executions(pool, tenant_id, ExecutionFilters(search="nothing-matches", search_refs=[]), cap=10)
    page = (await api.get("/executions", params={"limit": 5})).json()

    assert estimated[1] is False
    assert estimated[0] >= 11
    assert none == (0, True)
    assert (page["total"], page["totalExact"], len(page["items"])) == (12, True, 5)
