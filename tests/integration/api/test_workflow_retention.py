"""A workflow's retention: set on create, PUT and PATCH, shown in every workflow response, checked like any field.

And the tenant's default (``/retention``), which its workflows without their own use: admins set it, all read it.
"""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import pytest
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]
STEPS = [{"id": "only", "type": "action", "action": "core.noop"}]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def demo(api: Client) -> Client:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    return api


def _workflow(**fields: Any) -> dict[str, Any]:
    return {"ref": "demo.kept", "definition": {"steps": copy.deepcopy(STEPS)}, **fields}


async def test_a_retention_is_set_changed_cleared_and_shown(demo: Client, pool: asyncpg.Pool) -> None:
    created = await demo.post("workflows", json=_workflow(retention="12h"))
    assert created.status_code == 201, created.text
    assert created.json()["retention"] == "12h"
    assert await pool.fetchval("SELECT retention_seconds FROM workflows WHERE ref = 'demo.kept'") == 12 * 3600

    put = await demo.put("workflows/demo.kept", json={"retention": "90s"})
    assert (put.status_code, put.json()["retention"], put.json()["version"]) == (200, "90s", 1)
    same = await demo.patch("workflows/demo.kept", json={"retention": "1440m"}, headers=MERGE_PATCH)
    assert same.json()["retention"] == "1d"  # shown in the largest unit that divides it
    assert (await demo.get("workflows/demo.kept")).json()["retention"] == "1d"
    assert [item["retention"] for item in (await demo.get("workflows")).json()["items"]] == ["1d"]

    cleared = await demo.patch("workflows/demo.kept", json={"retention": None}, headers=MERGE_PATCH)
    assert cleared.json()["retention"] is None
    assert await pool.fetchval("SELECT retention_seconds FROM workflows WHERE ref = 'demo.kept'") is None
    changes = await pool.fetch(
        "SELECT changes->'retention' AS retention FROM audit_logs WHERE entity_id = 'demo.kept' ORDER BY occurred_at"
    )
    assert [row["retention"] for row in changes] == [
        {"before": None, "after": "12h"},
        {"before": "12h", "after": "90s"},
        {"before": "90s", "after": "1d"},
        {"before": "1d", "after": None},
    ]


async def test_a_workflow_without_retention_uses_the_default(demo: Client) -> None:
    created = await demo.post("workflows", json=_workflow())

    assert created.json()["retention"] is None


@pytest.mark.parametrize("value", ["forever", "-1d", "0s", "0d", "30", "1.5h", "30 d", "1w", "", 30])
async def test_a_bad_retention_is_422_naming_the_field_and_changes_nothing(
    demo: Client, pool: asyncpg.Pool, value: Any
) -> None:
    assert (await demo.post("workflows", json=_workflow(retention="30d"))).status_code == 201

    for response in (
        await demo.post("workflows", json=_workflow(ref="demo.other", retention=value)),
        await demo.put("workflows/demo.kept", json={"retention": value}),
        await demo.patch("workflows/demo.kept", json={"retention": value}, headers=MERGE_PATCH),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["pointer"] == "/retention"
    assert await pool.fetchval("SELECT count(*) FROM workflows") == 1
    assert await pool.fetchval("SELECT retention_seconds FROM workflows") == 30 * 86400


async def test_an_admin_sets_the_tenants_default_retention_and_clears_it_audited(
    api: Client, pool: asyncpg.Pool
) -> None:
    before = await api.get("retention")
    assert (before.status_code, before.json()) == (200, {"retention": None, "effective": "30d"})

    changed = await api.put("retention", json={"retention": "2160h"})
    assert (changed.status_code, changed.json()) == (200, {"retention": "90d", "effective": "90d"})
    assert (await api.get("retention")).json() == {"retention": "90d", "effective": "90d"}
    assert await pool.fetchval("SELECT retention_seconds FROM tenants WHERE slug = 'dev'") == 90 * 86400
    cleared = await api.put("retention", json={"retention": None})
    assert cleared.json() == {"retention": None, "effective": "30d"}

    audit = await pool.fetch(
        "SELECT principal, changes FROM audit_logs WHERE entity_type = 'tenant' AND entity_id = 'dev' "
        "ORDER BY occurred_at"
    )
    assert [row["changes"]["retention_seconds"] for row in audit] == [
        {"before": None, "after": 90 * 86400},
        {"before": 90 * 86400, "after": None},
    ]
    assert {row["principal"] for row in audit} == {audit[0]["principal"]} != {None}


@pytest.mark.parametrize("body", [{"retention": "forever"}, {"retention": "0s"}, {"retention": 30}, {}])
async def test_a_bad_tenant_retention_is_422_naming_the_field_and_changes_nothing(
    api: Client, pool: asyncpg.Pool, body: dict[str, Any]
) -> None:
    response = await api.put("retention", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    # A bad value is pointed at; a missing one is named (the body as a whole lacks it).
    assert problem["pointer"] == "/retention" if body else "`retention`" in problem["detail"]
    assert await pool.fetchval("SELECT retention_seconds FROM tenants WHERE slug = 'dev'") is None
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE entity_type = 'tenant'") == 0


async def test_only_admins_set_the_tenants_retention_and_every_role_reads_it(api: Client, settings: Settings) -> None:
    operator = bearer(await api_key(settings.database_url, role="operator"))
    viewer = bearer(await api_key(settings.database_url, role="viewer"))

    refused = await api.put("retention", json={"retention": "1d"}, headers=operator)
    read = await api.get("retention", headers=viewer)

    assert refused.status_code == 403
    assert (read.status_code, read.json()["retention"]) == (200, None)
