"""Packs through the api: create, read, list, delete (with cascade), install a folder, audit rows."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import yaml
from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]

DEFINITION = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}


def folder(**workflows: dict[str, Any]) -> dict[str, Any]:
    files = {"pack.yaml": "ref: demo\nlabel: Demo\nversion: 1.0\n"}
    files.update({f"workflows/{name}.yaml": yaml.safe_dump(body) for name, body in workflows.items()})
    return {"files": files}


async def test_a_pack_is_created_read_and_listed(api: Client) -> None:
    created = await api.post("packs", json={"ref": "demo", "label": "Demo", "description": "d", "version": "1.2.0"})

    assert created.status_code == 201, created.text
    pack = created.json()
    assert {key: pack[key] for key in ("ref", "label", "description", "version")} == {
        "ref": "demo",
        "label": "Demo",
        "description": "d",
        "version": "1.2.0",
    }
    assert pack["createdAt"] and pack["updatedAt"]
    assert (await api.get("packs/demo")).json() == pack
    page = (await api.get("packs")).json()
    assert (page["items"], page["total"], page["nextCursor"]) == ([pack], 1, None)


async def test_pack_errors(api: Client) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201

    duplicate = await api.post("packs", json={"ref": "demo"})
    bad_ref = await api.post("packs", json={"ref": "Not A Ref"})
    missing = await api.get("packs/nowhere")

    assert (duplicate.status_code, duplicate.json()["detail"]) == (409, "pack 'demo' already exists")
    assert (bad_ref.status_code, bad_ref.json()["pointer"]) == (422, "/ref")
    assert (missing.status_code, missing.json()["detail"]) == (404, "pack 'nowhere' does not exist")
    assert (await api.delete("packs/nowhere")).status_code == 404


async def test_packs_page_by_ref_with_a_cursor(api: Client) -> None:
    for ref in ("c", "a", "d", "b", "e"):
        assert (await api.post("packs", json={"ref": ref})).status_code == 201

    first = (await api.get("packs", params={"limit": 2})).json()
    second = (await api.get("packs", params={"limit": 2, "cursor": first["nextCursor"]})).json()
    by_offset = (await api.get("packs", params={"limit": 2, "offset": 4})).json()

    assert [pack["ref"] for pack in first["items"]] == ["a", "b"]
    assert first["total"] == 5
    assert [pack["ref"] for pack in second["items"]] == ["c", "d"]
    assert ([pack["ref"] for pack in by_offset["items"]], by_offset["nextCursor"]) == (["e"], None)


async def test_a_pack_holding_workflows_is_deleted_only_with_cascade(api: Client) -> None:
    await api.post("packs", json={"ref": "demo"})
    for name in ("one", "two"):
        await api.post("workflows", json={"ref": f"demo.{name}", "definition": DEFINITION})

    refused = await api.delete("packs/demo")

    assert refused.status_code == 409
    assert refused.json()["detail"] == "pack 'demo' holds 2 workflow(s); delete them first or pass cascade=true"
    assert (await api.get("workflows/demo.one")).status_code == 200
    assert (await api.delete("packs/demo", params={"cascade": "true"})).status_code == 204
    assert (await api.get("packs/demo")).status_code == 404
    assert (await api.get("workflows/demo.one")).status_code == 404
    assert (await api.get("workflows")).json()["total"] == 0
    # The ref is free again, and a new pack starts empty.
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    assert (await api.get("packs/demo/workflows")).json()["total"] == 0


async def test_an_empty_pack_is_deleted(api: Client) -> None:
    await api.post("packs", json={"ref": "demo"})
    await api.post("workflows", json={"ref": "demo.one", "definition": DEFINITION})
    await api.delete("workflows/demo.one")

    assert (await api.delete("packs/demo")).status_code == 204
    assert (await api.get("packs")).json()["total"] == 0


async def test_pack_changes_write_audit_rows(api: Client, pool: asyncpg.Pool) -> None:
    await api.post("packs", json={"ref": "demo", "label": "Demo"}, headers={"X-Request-ID": "req-1"})
    await api.post("workflows", json={"ref": "demo.one", "definition": DEFINITION})
    await api.delete("packs/demo", params={"cascade": "true"})

    rows = await pool.fetch(
        "SELECT entity_type, entity_id, action, changes, request_id FROM audit_logs ORDER BY entity_type, occurred_at"
    )

    assert [(row["entity_type"], row["entity_id"], row["action"]) for row in rows] == [
        ("pack", "demo", "create"),
        ("pack", "demo", "delete"),
        ("workflow", "demo.one", "create"),
        ("workflow", "demo.one", "delete"),
    ]
    assert rows[0]["changes"] == {"label": {"before": None, "after": "Demo"}}
    assert rows[0]["request_id"] == "req-1"
    assert rows[1]["changes"] == {"label": {"before": "Demo", "after": None}}


# Install ---------------------------------------------------------------------------------------------------


async def test_installing_a_folder_creates_then_updates_only_what_changed(api: Client, pool: asyncpg.Pool) -> None:
    body = folder(
        hello={"label": "Hello", "definition": DEFINITION},
        bye={"name": "goodbye", "definition": DEFINITION, "tags": ["x"]},
    )

    first = await api.post("packs/install", json=body)

    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["change"], result["pack"]["ref"], result["pack"]["version"]) == ("created", "demo", "1.0")
    assert result["workflows"] == [
        {"file": "workflows/bye.yaml", "ref": "demo.goodbye", "change": "created", "version": 1},
        {"file": "workflows/hello.yaml", "ref": "demo.hello", "change": "created", "version": 1},
    ]
    assert (await api.get("workflows/demo.hello")).json()["label"] == "Hello"

    changed_definition = {"steps": [{"id": "b", "type": "action", "action": "core.echo"}]}
    body = folder(
        hello={"label": "Hello", "definition": changed_definition},
        bye={"name": "goodbye", "definition": DEFINITION, "tags": ["x"]},
    )
    body["files"]["workflows/new.yml"] = yaml.safe_dump({"definition": DEFINITION})
    second = (await api.post("packs/install", json=body)).json()

    assert second["change"] == "unchanged"
    assert second["workflows"] == [
        {"file": "workflows/bye.yaml", "ref": "demo.goodbye", "change": "unchanged", "version": 1},
        {"file": "workflows/hello.yaml", "ref": "demo.hello", "change": "updated", "version": 2},
        {"file": "workflows/new.yml", "ref": "demo.new", "change": "created", "version": 1},
    ]
    body["files"]["pack.yaml"] = "ref: demo\nlabel: Demo pack\nversion: 1.1.0\n"
    third = (await api.post("packs/install", json=body)).json()
    assert (third["change"], third["pack"]["label"]) == ("updated", "Demo pack")
    assert {workflow["change"] for workflow in third["workflows"]} == {"unchanged"}
    # One transaction per install: its rows share occurred_at.
    rows = await pool.fetch(
        "SELECT occurred_at, entity_type, entity_id, action FROM audit_logs ORDER BY occurred_at, entity_id"
    )
    assert [(row["entity_type"], row["entity_id"], row["action"]) for row in rows] == [
        ("pack", "demo", "create"),
        ("workflow", "demo.goodbye", "create"),
        ("workflow", "demo.hello", "create"),
        ("workflow", "demo.hello", "update"),
        ("workflow", "demo.new", "create"),
        ("pack", "demo", "update"),
    ]
    assert len({row["occurred_at"] for row in rows}) == 3


async def _state(api: Client, pool: asyncpg.Pool) -> tuple[Any, ...]:
    workflows = (await api.get("workflows", params={"sort": "name"})).json()["items"]
    packs = (await api.get("packs")).json()["items"]
    audit = await pool.fetchval("SELECT count(*) FROM audit_logs")
    return workflows, packs, audit


@pytest.mark.parametrize(
    ("bad_file", "content", "pointer", "detail_start"),
    [
        (
            "workflows/bad.yaml",
            {"definition": {"steps": [{"id": "a", "type": "action", "action": "core.noop", "needs": ["zz"]}]}},
            "/definition/steps/0/needs/0",
            "workflows/bad.yaml: step 'a' needs unknown step 'zz'",
        ),
        (
            "workflows/bad.yaml",
            {"definition": {"steps": [{"id": 7, "type": "action"}]}},
            "/definition/steps/0/id",
            "workflows/bad.yaml: /definition/steps/0/id: Expected `str`, got `int`",
        ),
        (
            "workflows/bad.yaml",
            {"definition": DEFINITION, "inputSchema": {"type": 5}},
            "/inputSchema/type",
            "workflows/bad.yaml: /inputSchema/type: not a valid JSON Schema",
        ),
        ("workflows/bad.yaml", "steps: [unclosed", None, "workflows/bad.yaml: not valid YAML"),
        ("workflows/Bad Name.yaml", {"definition": DEFINITION}, "/name", "workflows/Bad Name.yaml: /name:"),
        ("README.md", "# hi", "/files/README.md", "README.md: unexpected file"),
        (
            "workflows/other.yaml",
            {"ref": "elsewhere.other", "definition": DEFINITION},
            "/ref",
            "workflows/other.yaml: /ref: 'elsewhere.other' is not demo.other",
        ),
    ],
)
async def test_a_bad_file_in_the_folder_changes_nothing(
    api: Client, pool: asyncpg.Pool, bad_file: str, content: Any, pointer: str | None, detail_start: str
) -> None:
    assert (await api.post("packs/install", json=folder(hello={"label": "v1", "definition": DEFINITION}))).is_success
    before = await _state(api, pool)
    body = folder(hello={"label": "v2", "definition": DEFINITION}, zzz={"definition": DEFINITION})
    body["files"]["pack.yaml"] = "ref: demo\nlabel: Changed\n"
    body["files"][bad_file] = content if isinstance(content, str) else yaml.safe_dump(content)

    response = await api.post("packs/install", json=body)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(detail_start), problem["detail"]
    assert problem["file"] == bad_file
    assert problem.get("pointer") == pointer
    assert await _state(api, pool) == before


async def test_an_install_into_a_new_pack_with_a_bad_file_creates_no_pack(api: Client) -> None:
    body = folder(good={"definition": DEFINITION}, worse={"definition": {"steps": []}})

    response = await api.post("packs/install", json=body)

    assert response.status_code == 422
    assert response.json()["file"] == "workflows/worse.yaml"
    assert (await api.get("packs/demo")).status_code == 404
    assert (await api.get("workflows")).json()["total"] == 0


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ({"workflows/a.yaml": "definition: {steps: []}"}, "a pack folder holds exactly one pack.yaml (or pack.yml)"),
        ({"pack.yaml": "ref: demo", "pack.yml": "ref: demo"}, "a pack folder holds exactly one pack.yaml"),
        ({"pack.yaml": "label: no ref"}, "pack.yaml: the file: Object missing required field `ref`"),
        ({"pack.yaml": "ref: demo\nsurprise: 1"}, "pack.yaml: the file: Object contains unknown field `surprise`"),
        (
            {
                "pack.yaml": "ref: demo",
                "workflows/a.yaml": "name: b\ndefinition: {steps: [{id: x, type: sleep, duration: 1}]}",
                "workflows/b.yaml": "definition: {steps: [{id: x, type: sleep, duration: 1}]}",
            },
            "workflows/b.yaml: workflow 'b' is also defined in workflows/a.yaml",
        ),
    ],
)
async def test_a_malformed_folder_is_422(api: Client, files: dict[str, str], detail: str) -> None:
    response = await api.post("packs/install", json={"files": files})

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail), response.json()["detail"]
