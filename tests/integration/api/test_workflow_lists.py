"""Workflow lists: filters, sorts, offset and cursor pages, and the list of a pack."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]

DEFINITION = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}


async def define(api: Client, ref: str, **fields: Any) -> None:
    response = await api.post("workflows", json={"ref": ref, "definition": DEFINITION, **fields})
    assert response.status_code == 201, response.text


@pytest.fixture
async def catalog(api: Client) -> Client:
    """Two packs and five workflows, created in this order."""
    for pack in ("ops", "sales"):
        assert (await api.post("packs", json={"ref": pack})).status_code == 201
    await define(api, "ops.restart", label="Restart a service", tags=["infra", "daily"])
    await define(api, "ops.backup", description="Nightly BACKUP of the database", tags=["infra"])
    await define(api, "sales.invoice", label="Send an invoice", tags=["billing"], enabled=False)
    await define(api, "sales.refund", tags=["billing", "daily"])
    await define(api, "ops.audit_all", label="Audit_all", description="checks 100% of hosts")
    return api


async def refs(api: Client, path: str = "workflows", **params: Any) -> list[str]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return [item["ref"] for item in response.json()["items"]]


async def test_the_default_list_is_newest_first(catalog: Client) -> None:
    page = (await catalog.get("workflows")).json()

    assert [item["ref"] for item in page["items"]] == [
        "ops.audit_all",
        "sales.refund",
        "sales.invoice",
        "ops.backup",
        "ops.restart",
    ]
    assert (page["total"], page["limit"], page["offset"], page["nextCursor"]) == (5, 20, 0, None)
    first = page["items"][-1]
    assert first["createdBy"].startswith("api-key:")  # the principal that created it
    assert first == {
        "ref": "ops.restart",
        "pack": "ops",
        "name": "restart",
        "label": "Restart a service",
        "description": None,
        "version": 1,
        "tags": ["infra", "daily"],
        "enabled": True,
        "public": False,
        "retention": None,
        "createdBy": first["createdBy"],
        "createdAt": first["createdAt"],
        "updatedAt": first["updatedAt"],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tags": "daily"}, ["sales.refund", "ops.restart"]),
        ({"tags": ["billing", "daily"]}, ["sales.refund", "sales.invoice", "ops.restart"]),
        ({"tags": "billing,infra"}, ["sales.refund", "sales.invoice", "ops.backup", "ops.restart"]),
        ({"enabled": "false"}, ["sales.invoice"]),
        ({"enabled": "true", "tags": "billing"}, ["sales.refund"]),
        ({"search": "backup"}, ["ops.backup"]),
        ({"search": "INVOICE"}, ["sales.invoice"]),
        ({"search": "a serv"}, ["ops.restart"]),
        ({"search": "100%"}, ["ops.audit_all"]),
        ({"search": "t_a"}, ["ops.audit_all"]),
        ({"pack": "sales"}, ["sales.refund", "sales.invoice"]),
        ({"pack": "nowhere"}, []),
    ],
)
async def test_filters(catalog: Client, params: dict[str, Any], expected: list[str]) -> None:
    response = await catalog.get("workflows", params=params)

    assert [item["ref"] for item in response.json()["items"]] == expected
    assert response.json()["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sort": "name"}, ["ops.audit_all", "ops.backup", "sales.invoice", "sales.refund", "ops.restart"]),
        (
            {"sort": "name", "order": "desc"},
            ["ops.restart", "sales.refund", "sales.invoice", "ops.backup", "ops.audit_all"],
        ),
        (
            {"sort": "createdAt", "order": "asc"},
            ["ops.restart", "ops.backup", "sales.invoice", "sales.refund", "ops.audit_all"],
        ),
    ],
)
async def test_sorts(catalog: Client, params: dict[str, Any], expected: list[str]) -> None:
    assert await refs(catalog, **params) == expected


async def test_updated_at_sorts_by_the_last_change(catalog: Client) -> None:
    body = {"label": "Restart", "definition": DEFINITION}
    assert (await catalog.put("workflows/ops.restart", json=body)).status_code == 200

    assert (await refs(catalog, sort="updatedAt"))[0] == "ops.restart"
    assert (await refs(catalog, sort="updatedAt", order="asc"))[-1] == "ops.restart"


async def test_offset_pages(catalog: Client) -> None:
    page = (await catalog.get("workflows", params={"limit": 2, "offset": 2, "sort": "name"})).json()

    assert [item["ref"] for item in page["items"]] == ["sales.invoice", "sales.refund"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert page["nextCursor"] is not None


@pytest.mark.parametrize("sort", ["name", "createdAt", "updatedAt"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_cursor_pages_walk_the_whole_list_once(catalog: Client, sort: str, order: str) -> None:
    everything = await refs(catalog, sort=sort, order=order)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"sort": sort, "order": order, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await catalog.get("workflows", params=params)).json()
        seen.extend(item["ref"] for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == everything


async def test_a_cursor_page_is_stable_when_workflows_are_added(catalog: Client) -> None:
    first = (await catalog.get("workflows", params={"sort": "name", "limit": 2})).json()
    await define(catalog, "ops.aardvark")  # sorts before the cursor: must not shift the next page

    second = (await catalog.get("workflows", params={"sort": "name", "limit": 2, "cursor": first["nextCursor"]})).json()

    assert [item["ref"] for item in first["items"]] == ["ops.audit_all", "ops.backup"]
    assert [item["ref"] for item in second["items"]] == ["sales.invoice", "sales.refund"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"sort": "ref"},
        {"order": "up"},
        {"enabled": "maybe"},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_bad_list_parameters_are_400(catalog: Client, params: dict[str, Any]) -> None:
    response = await catalog.get("workflows", params=params)

    assert response.status_code == 400, response.text


async def test_a_cursor_of_another_sort_is_400(catalog: Client) -> None:
    cursor = (await catalog.get("workflows", params={"sort": "name", "limit": 1})).json()["nextCursor"]

    response = await catalog.get("workflows", params={"sort": "createdAt", "cursor": cursor})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("cursor: made for sort=name&order=asc")


async def test_the_workflows_of_a_pack(catalog: Client) -> None:
    assert await refs(catalog, "packs/ops/workflows", sort="name") == ["ops.audit_all", "ops.backup", "ops.restart"]
    assert await refs(catalog, "packs/ops/workflows", tags="daily") == ["ops.restart"]
    page = (await catalog.get("packs/ops/workflows", params={"limit": 1})).json()
    assert (page["total"], len(page["items"])) == (3, 1)
    missing = await catalog.get("packs/nowhere/workflows")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "pack 'nowhere' does not exist"
