"""Workflow definitions through the api: create, read, list, update, versions, delete, execute."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import asyncpg
import httpx
import pytest
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import served_client

Client = AsyncTestClient  # type: ignore[type-arg]

STEPS = [
    {"id": "greet", "type": "action", "action": "core.echo", "input": {"text": "hello {{ input.name }}"}},
    {"id": "done", "type": "action", "action": "core.noop", "needs": ["greet"]},
]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def workflow(ref: str = "demo.hello", **fields: Any) -> dict[str, Any]:
    return {"ref": ref, "definition": {"steps": copy.deepcopy(STEPS)}, **fields}


def update_of(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**{key: value for key, value in body.items() if key != "ref"}, **fields}


@pytest.fixture
async def demo(api: Client) -> Client:
    """The api with the pack ``demo``."""
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    return api


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("workflows", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def audit_rows(pool: asyncpg.Pool, entity_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT entity_type, action, changes, request_id FROM audit_logs WHERE entity_id = $1 "
            "ORDER BY occurred_at, id",
            entity_id,
        )
    )


# Create and read -------------------------------------------------------------------------------------


async def test_a_created_workflow_is_version_1_and_reads_back(demo: Client) -> None:
    created = await create(
        demo, workflow(label="Hello", description="Greets", tags=["a", "b"], inputSchema=NAME_SCHEMA)
    )

    assert (created["ref"], created["pack"], created["name"], created["version"]) == ("demo.hello", "demo", "hello", 1)
    assert (created["label"], created["description"], created["tags"]) == ("Hello", "Greets", ["a", "b"])
    assert created["enabled"] is True
    assert created["inputSchema"] == NAME_SCHEMA
    read = await demo.get("workflows/demo.hello")
    assert read.status_code == 200
    assert read.json() == created


async def test_an_unknown_workflow_is_404(demo: Client) -> None:
    for path in ("workflows/demo.nope", "workflows/demo.nope/versions", "workflows/demo.nope/versions/1"):
        response = await demo.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "workflow 'demo.nope' does not exist"
    assert (await demo.put("workflows/demo.nope", json=update_of(workflow()))).status_code == 404
    assert (await demo.delete("workflows/demo.nope")).status_code == 404
    assert (await demo.post("workflows/demo.nope/execute", json={})).status_code == 404


async def test_a_workflow_in_an_unknown_pack_is_404_and_creates_no_pack(api: Client) -> None:
    response = await api.post("workflows", json=workflow("ghost.hello"))

    assert response.status_code == 404
    assert response.json()["detail"] == "pack 'ghost' does not exist"
    assert (await api.get("packs/ghost")).status_code == 404


async def test_a_duplicate_ref_is_409(demo: Client) -> None:
    await create(demo, workflow())

    response = await demo.post("workflows", json=workflow())

    assert response.status_code == 409
    assert response.json()["detail"] == "workflow 'demo.hello' already exists"


def _with_step(index: int, **fields: Any) -> dict[str, Any]:
    body = workflow()
    body["definition"]["steps"][index].update(fields)
    return body


@pytest.mark.parametrize(
    ("body", "status", "pointer", "detail"),
    [
        (
            _with_step(1, id="greet"),
            422,
            "/definition/steps/1/id",
            "step id 'greet' is used twice",
        ),
        (
            _with_step(1, needs=["nope"]),
            422,
            "/definition/steps/1/needs/0",
            "step 'done' needs unknown step 'nope'",
        ),
        (
            _with_step(0, needs=["done"]),
            422,
            "/definition/steps",
            "steps form a cycle: greet → done → greet",
        ),
        (_with_step(1, type="teleport"), 422, "/definition/steps/1/type", None),
        (
            _with_step(1, action="core.nope"),
            422,
            "/definition/steps/1/action",
            "step 'done': unknown action 'core.nope'",
        ),
        (
            _with_step(1, type="agent", action=None, agent="ghost"),
            422,
            "/definition/steps/1/agent",
            "step 'done': unknown agent 'ghost'",
        ),
        (_with_step(0, input="{{ input.name "), 422, "/definition/steps/0/input", None),
        (
            workflow(inputSchema={"type": "object", "properties": {"name": {"type": "strin"}}}),
            422,
            "/inputSchema/properties/name/type",
            None,
        ),
        (workflow(outputSchema={"minLength": -1}), 422, "/outputSchema/minLength", None),
        (workflow(ref="Demo.hello"), 422, "/ref", None),
        (workflow(definition={"steps": []}), 422, "/definition/steps", "a workflow needs at least one step"),
    ],
    ids=[
        "duplicate-id",
        "unknown-need",
        "cycle",
        "unknown-type",
        "unknown-action",
        "unknown-agent",
        "bad-template",
        "bad-input-schema",
        "bad-output-schema",
        "bad-ref",
        "no-steps",
    ],
)
async def test_invalid_definitions_are_refused_with_a_pointer(
    demo: Client, body: dict[str, Any], status: int, pointer: str, detail: str | None
) -> None:
    response = await demo.post("workflows", json=body)

    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["pointer"] == pointer
    if detail is not None:
        assert problem["detail"] == detail
    if body["ref"] == "demo.hello":  # the same rules on update
        await create(demo, workflow())
        updated = await demo.put("workflows/demo.hello", json=update_of(body))
        assert (updated.status_code, updated.json()["pointer"]) == (status, pointer)


async def test_an_agent_step_naming_a_registered_agent_is_stored(demo: Client, pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO agents (id, tenant_id, name, url) SELECT gen_random_uuid(), id, 'bot', 'http://bot' "
        "FROM tenants WHERE slug = 'dev'"
    )

    response = await demo.post("workflows", json=_with_step(1, type="agent", action=None, agent="bot"))

    assert response.status_code == 201, response.text
    assert response.json()["definition"]["steps"][1]["agent"] == "bot"


async def test_size_limits_are_413(demo: Client) -> None:
    steps = [{"id": f"s{index}", "type": "action", "action": "core.noop"} for index in range(501)]

    response = await demo.post("workflows", json=workflow(definition={"steps": steps}))

    assert response.status_code == 413
    assert response.json()["detail"] == "a workflow may have at most 500 steps, this one has 501"
    big = workflow()
    big["definition"]["steps"][0]["input"] = {"text": "x" * 1_000_001}
    assert (await demo.post("workflows", json=big)).status_code == 413


# Update and versions ----------------------------------------------------------------------------------


async def test_a_changed_definition_is_a_new_version_and_old_versions_stay(demo: Client) -> None:
    body = workflow(label="Hello")
    await create(demo, body)
    changed = update_of(body)
    changed["definition"]["steps"][1]["action"] = "core.echo"

    updated = await demo.put("workflows/demo.hello", json=changed)

    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["definition"]["steps"][1]["action"] == "core.echo"
    first = (await demo.get("workflows/demo.hello/versions/1")).json()
    assert first["version"] == 1
    assert first["definition"]["steps"][1]["action"] == "core.noop"
    assert (await demo.get("workflows/demo.hello")).json()["version"] == 2
    missing = await demo.get("workflows/demo.hello/versions/3")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "workflow 'demo.hello' has no version 3"


async def test_a_changed_schema_is_a_new_version(demo: Client) -> None:
    body = workflow()
    await create(demo, body)

    updated = await demo.put("workflows/demo.hello", json=update_of(body, inputSchema=NAME_SCHEMA))

    assert updated.json()["version"] == 2
    assert updated.json()["inputSchema"] == NAME_SCHEMA


async def test_metadata_changes_keep_the_version(demo: Client) -> None:
    body = workflow(label="Hello")
    created = await create(demo, body)

    updated = await demo.put(
        "workflows/demo.hello", json=update_of(body, label="Hi", description="d", tags=["x"], enabled=False)
    )

    assert updated.status_code == 200
    after = updated.json()
    assert after["version"] == 1
    assert (after["label"], after["description"], after["tags"], after["enabled"]) == ("Hi", "d", ["x"], False)
    assert after["updatedAt"] > created["updatedAt"]
    versions = (await demo.get("workflows/demo.hello/versions")).json()
    assert [item["version"] for item in versions["items"]] == [1]


async def test_an_identical_put_changes_nothing(demo: Client, pool: asyncpg.Pool) -> None:
    body = workflow(label="Hello")
    created = await create(demo, body)

    again = await demo.put("workflows/demo.hello", json=update_of(body))

    assert again.json() == created
    assert [row["action"] for row in await audit_rows(pool, "demo.hello")] == ["create"]


async def test_an_invalid_update_changes_nothing(demo: Client) -> None:
    body = workflow()
    created = await create(demo, body)
    bad = update_of(body)
    bad["definition"]["steps"][0]["needs"] = ["done"]

    response = await demo.put("workflows/demo.hello", json=bad)

    assert response.status_code == 422
    assert response.json()["detail"] == "steps form a cycle: greet → done → greet"
    assert (await demo.get("workflows/demo.hello")).json() == created


async def test_versions_page_newest_first_with_a_cursor(demo: Client) -> None:
    body = workflow()
    await create(demo, body)
    for text in ("two", "three", "four"):
        changed = update_of(body)
        changed["definition"]["steps"][0]["input"] = {"text": text}
        assert (await demo.put("workflows/demo.hello", json=changed)).json()["label"] is None

    first = (await demo.get("workflows/demo.hello/versions", params={"limit": 3})).json()
    params = {"limit": 3, "cursor": first["nextCursor"]}
    second = (await demo.get("workflows/demo.hello/versions", params=params)).json()

    assert [item["version"] for item in first["items"]] == [4, 3, 2]
    assert (first["total"], first["limit"], first["offset"]) == (4, 3, 0)
    assert [item["version"] for item in second["items"]] == [1]
    assert second["nextCursor"] is None


# Partial updates (PUT and PATCH) ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_an_update_of_some_fields_keeps_the_others(demo: Client, method: str) -> None:
    created = await create(
        demo, workflow(label="Incident Response", description="d", tags=["a"], inputSchema=NAME_SCHEMA)
    )

    renamed = await demo.request(
        method, "workflows/demo.hello", json={"label": "Updated Incident Response", "enabled": False}
    )
    tagged = await demo.request(method, "workflows/demo.hello", json={"tags": ["x"]})

    assert (renamed.status_code, tagged.status_code) == (200, 200), renamed.text
    after = tagged.json()
    assert (after["label"], after["enabled"], after["tags"]) == ("Updated Incident Response", False, ["x"])
    unchanged = ("description", "definition", "inputSchema", "outputSchema", "public", "version", "createdAt")
    assert {field: after[field] for field in unchanged} == {field: created[field] for field in unchanged}
    assert (await demo.get("workflows/demo.hello")).json() == after


async def test_null_clears_an_optional_field_and_a_cleared_schema_is_a_new_version(demo: Client) -> None:
    await create(demo, workflow(label="Hello", description="d", inputSchema=NAME_SCHEMA))

    cleared = await demo.patch("workflows/demo.hello", json={"description": None, "inputSchema": None})

    assert cleared.status_code == 200, cleared.text
    after = cleared.json()
    assert (after["label"], after["description"], after["inputSchema"], after["version"]) == ("Hello", None, None, 2)
    assert (await demo.get("workflows/demo.hello/versions/1")).json()["inputSchema"] == NAME_SCHEMA


async def test_a_patched_definition_replaces_the_whole_definition(demo: Client) -> None:
    await create(demo, workflow(label="Hello", tags=["a"]))
    definition = {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}

    patched = await demo.patch(
        "workflows/demo.hello", content=json.dumps({"definition": definition}), headers=MERGE_PATCH
    )

    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert [step["id"] for step in after["definition"]["steps"]] == ["only"]
    assert (after["version"], after["label"], after["tags"]) == (2, "Hello", ["a"])


async def test_a_patch_of_the_stored_values_changes_nothing(demo: Client, pool: asyncpg.Pool) -> None:
    body = workflow(label="Hello", tags=["a"])
    created = await create(demo, body)

    again = await demo.patch(
        "workflows/demo.hello",
        json={"label": "Hello", "tags": ["a"], "enabled": True, "definition": body["definition"]},
    )

    assert again.json() == created
    assert [row["action"] for row in await audit_rows(pool, "demo.hello")] == ["create"]
    assert [item["version"] for item in (await demo.get("workflows/demo.hello/versions")).json()["items"]] == [1]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "pointer", "detail"),
    [
        ({}, "", "body: give at least one of the fields label, description, definition, inputSchema, "),
        ({"enabled": None}, "/enabled", "/enabled: Expected `bool`, got `null`"),
        ({"tags": "x"}, "/tags", "/tags: Expected `array`, got `str`"),
        ({"definition": None}, "/definition", "/definition: Expected `object`, got `null`"),
        ({"label": "x", "nmae": "y"}, "", "body: Object contains unknown field `nmae`"),
        ({"definition": {"steps": []}}, "/definition/steps", "a workflow needs at least one step"),
        ({"outputSchema": {"minLength": -1}}, "/outputSchema/minLength", None),
    ],
    ids=["empty", "null-enabled", "string-tags", "null-definition", "unknown-field", "no-steps", "bad-schema"],
)
async def test_a_bad_update_is_422_naming_the_field_and_changes_nothing(
    demo: Client, pool: asyncpg.Pool, method: str, body: dict[str, Any], pointer: str, detail: str | None
) -> None:
    created = await create(demo, workflow(label="Hello"))

    response = await demo.request(method, "workflows/demo.hello", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["pointer"] == pointer
    if detail is not None:
        assert response.json()["detail"].startswith(detail)
    assert (await demo.get("workflows/demo.hello")).json() == created
    assert [row["action"] for row in await audit_rows(pool, "demo.hello")] == ["create"]


async def test_concurrent_partial_updates_lose_nothing_and_number_versions_without_gaps(settings: Settings) -> None:
    rounds = 15
    async with served_client(settings) as api:
        assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
        await create(api, workflow())
        for round in range(rounds):
            definition = {"steps": [{**STEPS[0], "input": {"text": f"round {round}"}}]}
            schema = {"type": "object", "title": f"round {round}"}
            # Five requests at once, each changing another field; two of them make a version each.
            answers = await asyncio.gather(
                api.patch("workflows/demo.hello", json={"label": f"label {round}"}),
                api.put("workflows/demo.hello", json={"tags": [f"tag-{round}"]}),
                api.patch("workflows/demo.hello", json={"definition": definition}),
                api.put("workflows/demo.hello", json={"enabled": round % 2 == 1}),
                api.patch("workflows/demo.hello", json={"inputSchema": schema}),
            )
            assert [answer.status_code for answer in answers] == [200] * 5, [answer.text for answer in answers]

            after = (await api.get("workflows/demo.hello")).json()
            assert (after["label"], after["tags"], after["enabled"]) == (
                f"label {round}",
                [f"tag-{round}"],
                round % 2 == 1,
            )
            assert (after["definition"]["steps"][0]["input"], after["inputSchema"]) == (
                {"text": f"round {round}"},
                schema,
            )
            assert after["version"] == 1 + 2 * (round + 1)
        versions = (await api.get("workflows/demo.hello/versions", params={"limit": 100})).json()
    assert [item["version"] for item in versions["items"]] == list(range(1 + 2 * rounds, 0, -1))


# Delete ------------------------------------------------------------------------------------------------


async def test_a_deleted_workflow_is_gone_its_executions_stay_and_the_ref_can_be_reused(demo: Client) -> None:
    body = workflow()
    await create(demo, body)
    changed = update_of(body, label="v2")
    changed["definition"]["steps"][0]["input"] = {"text": "again"}
    await demo.put("workflows/demo.hello", json=changed)
    execution_id = (await demo.post("workflows/demo.hello/execute", json={})).json()["executionId"]

    deleted = await demo.delete("workflows/demo.hello")

    assert deleted.status_code == 204
    assert (await demo.get("workflows/demo.hello")).status_code == 404
    assert (await demo.get("workflows")).json()["total"] == 0
    assert (await demo.delete("workflows/demo.hello")).status_code == 404
    assert (await demo.post("workflows/demo.hello/execute", json={})).status_code == 404
    execution = await demo.get(f"executions/{execution_id}")
    assert execution.status_code == 200
    assert (execution.json()["workflowRef"], execution.json()["workflowVersion"]) == ("demo.hello", 2)
    again = await create(demo, body)
    assert again["version"] == 1
    assert [item["version"] for item in (await demo.get("workflows/demo.hello/versions")).json()["items"]] == [1]


# Execute -------------------------------------------------------------------------------------------------


async def test_execute_takes_a_version(demo: Client, pool: asyncpg.Pool) -> None:
    body = workflow()
    await create(demo, body)
    changed = update_of(body)
    changed["definition"]["steps"][0]["input"] = {"text": "v2"}
    await demo.put("workflows/demo.hello", json=changed)

    latest = await demo.post("workflows/demo.hello/execute", json={})
    pinned = await demo.post("workflows/demo.hello/execute", json={"version": 1})
    missing = await demo.post("workflows/demo.hello/execute", json={"version": 9})

    assert (latest.status_code, pinned.status_code, missing.status_code) == (202, 202, 404)
    versions = {
        row["id"].hex: row["workflow_version"]
        for row in await pool.fetch("SELECT id, workflow_version FROM executions")
    }
    assert versions[latest.json()["executionId"].replace("-", "")] == 2
    assert versions[pinned.json()["executionId"].replace("-", "")] == 1


async def test_a_disabled_workflow_does_not_execute(demo: Client) -> None:
    await create(demo, workflow(enabled=False))

    response = await demo.post("workflows/demo.hello/execute", json={})

    assert response.status_code == 409
    assert response.json()["detail"] == "workflow 'demo.hello' is disabled"


@pytest.mark.parametrize(
    ("execution_input", "pointer"),
    [({}, "/input"), ({"name": 7}, "/input/name"), ({"name": "ok", "tags": ["a", 1]}, "/input/tags/1")],
)
async def test_input_breaking_the_input_schema_is_422_with_the_pointer(
    demo: Client, execution_input: dict[str, Any], pointer: str
) -> None:
    schema = {**NAME_SCHEMA, "properties": {**NAME_SCHEMA["properties"], "tags": {"items": {"type": "string"}}}}
    await create(demo, workflow(inputSchema=schema))

    response = await demo.post("workflows/demo.hello/execute", json={"input": execution_input})

    assert response.status_code == 422, response.text
    assert response.json()["pointer"] == pointer
    assert response.json()["detail"].startswith(f"{pointer}: ")
    ok = await demo.post("workflows/demo.hello/execute", json={"input": {"name": "Ada"}})
    assert ok.status_code == 202


async def test_an_input_schema_whose_references_loop_is_refused_when_defined(demo: Client) -> None:
    looping = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}

    response = await demo.post("workflows", json=workflow(inputSchema=looping))

    assert response.status_code == 422, response.text
    assert response.json()["pointer"] == "/inputSchema/$defs/a/$ref"
    assert response.json()["detail"] == "/inputSchema/$defs/a/$ref: references that loop without end"
    assert (await demo.get("workflows/demo.hello")).status_code == 404


@pytest.mark.parametrize(
    ("reference", "pointer"),
    [
        ("http://127.0.0.1:9/schema.json", "/inputSchema/properties/name/$ref"),
        ("file:///etc/passwd", "/inputSchema/properties/name/$ref"),
        ("other.json#/name", "/inputSchema/properties/name/$ref"),
    ],
)
async def test_a_schema_that_refers_outside_itself_is_refused_and_nothing_is_fetched(
    demo: Client, reference: str, pointer: str
) -> None:
    schema = {"type": "object", "properties": {"name": {"$ref": reference}}}

    response = await demo.post("workflows", json=workflow(inputSchema=schema))

    assert response.status_code == 422, response.text
    assert response.json()["pointer"] == pointer
    assert reference in response.json()["detail"]
    assert (await demo.get("workflows/demo.hello")).status_code == 404
    # References inside the schema, data that looks like one, and anchors stay allowed.
    inside = {
        "$defs": {"name": {"type": "string"}},
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/name"}, "note": {"const": {"$ref": reference}}},
    }
    await create(demo, workflow(inputSchema=inside))
    started = await demo.post("workflows/demo.hello/execute", json={"input": {"name": 1}})
    assert started.status_code == 422 and started.json()["pointer"] == "/input/name", started.text


async def test_a_catastrophic_pattern_is_checked_in_linear_time(demo: Client) -> None:
    # With a backtracking engine forty `a`s and a `!` would hold the api's event loop for ages.
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    await create(demo, workflow(inputSchema=schema))

    refused = await demo.post("workflows/demo.hello/execute", json={"input": {"name": "a" * 40 + "!"}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["pointer"] == "/input/name"
    assert (await demo.post("workflows/demo.hello/execute", json={"input": {"name": "aaaa"}})).status_code == 202


async def test_a_pattern_the_linear_engine_cannot_run_is_refused_when_defined(demo: Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a)\\1$"}}}

    response = await demo.post("workflows", json=workflow(inputSchema=schema))

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("/inputSchema: not a schema Flowline can check inputs against")


# Audit ---------------------------------------------------------------------------------------------------


async def test_create_update_and_delete_write_audit_rows(demo: Client, pool: asyncpg.Pool) -> None:
    body = workflow(label="Hello")
    await create(demo, body)
    await demo.put("workflows/demo.hello", json=update_of(body, label="Hi"), headers={"X-Request-ID": "req-7"})
    await demo.delete("workflows/demo.hello")

    rows = await audit_rows(pool, "demo.hello")

    assert [(row["entity_type"], row["action"]) for row in rows] == [
        ("workflow", "create"),
        ("workflow", "update"),
        ("workflow", "delete"),
    ]
    assert rows[0]["changes"]["label"] == {"before": None, "after": "Hello"}
    assert rows[0]["changes"]["version"] == {"before": None, "after": 1}
    assert rows[1]["changes"] == {"label": {"before": "Hello", "after": "Hi"}}
    assert rows[1]["request_id"] == "req-7"
    assert rows[2]["changes"]["label"] == {"before": "Hi", "after": None}


async def test_a_refused_change_writes_no_audit_row(demo: Client, pool: asyncpg.Pool) -> None:
    await demo.post("workflows", json=_with_step(1, needs=["nope"]))
    await demo.post("workflows", json=workflow("ghost.hello"))

    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE entity_type = 'workflow'") == 0
