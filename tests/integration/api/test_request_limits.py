"""Request hardening: body size (413), JSON depth and string length (400), page caps, malformed ids (400/404)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client

Client = AsyncTestClient  # type: ignore[type-arg]
OPENAPI = "http://testserver.local/docs/openapi.json"
# Path parameters that name a resource by a name or a ref the client chose: any string is well-formed there.
FREE_FORM_PARAMETERS = {"tenant", "pack", "ref", "name", "version", "step"}


def workflow(name: str, **definition: Any) -> dict[str, Any]:
    return {
        "ref": f"demo.{name}",
        "definition": {"steps": [{"id": "a", "type": "action", "action": "core.echo"}], **definition},
    }


@pytest.fixture
async def small_api(settings: Settings) -> Any:
    """The api with small limits, so that tests send small bodies."""
    limited = msgspec.structs.replace(
        settings, max_request_body_bytes=20_000, max_pack_install_bytes=60_000, max_json_string_length=1000
    )
    async with admin_client(limited) as client:
        assert (await client.post("packs", json={"ref": "demo"})).status_code == 201
        yield client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_a_body_over_the_limit_is_413_and_changes_nothing(small_api: Client) -> None:
    body = workflow("big", output={"pad": ["x" * 900] * 30})

    problem = assert_problem(await small_api.post("workflows", json=body), 413)

    assert problem["detail"] == "the request body is larger than 20000 bytes"
    assert (await small_api.get("workflows/demo.big")).status_code == 404


async def test_a_pack_install_has_its_own_larger_limit(small_api: Client) -> None:
    workflow_file = "definition:\n  steps:\n    - {id: a, type: action, action: core.echo}\n" + "# pad\n" * 5000
    files = {"pack.yaml": "ref: demo\n", "workflows/hello.yaml": workflow_file[:900]}
    files.update({f"workflows/w{index}.yaml": workflow_file[:900] for index in range(30)})

    response = await small_api.post("packs/install", json={"files": files})
    assert response.status_code == 200, response.text
    files.update({f"workflows/x{index}.yaml": workflow_file[:900] for index in range(60)})
    assert_problem(await small_api.post("packs/install", json={"files": files}), 413)


async def test_json_nested_too_deep_is_400_naming_the_limit_and_the_pointer(api: Client) -> None:
    deep: Any = "bottom"
    for _ in range(70):
        deep = {"next": deep}
    body = workflow("deep", output={"wrap": [deep]})

    problem = assert_problem(await api.post("workflows", json=body), 400)

    # The body is level 1, so the 65th level is the object 60 `next`s down from `wrap/0` (level 4).
    pointer = "/definition/output/wrap/0" + "/next" * 60
    assert problem["pointer"] == pointer
    assert problem["detail"] == f"{pointer}: nested deeper than 64 levels"


async def test_json_too_deep_to_decode_is_400_too(api: Client) -> None:
    payload = b'{"ref": "demo.x", "definition": {"output": ' + b"[" * 5000 + b"]" * 5000 + b"}}"

    response = await api.post("workflows", content=payload, headers={"content-type": "application/json"})

    problem = assert_problem(response, 400)
    assert problem["pointer"] == "/definition/output" + "/0" * 62
    assert "nested deeper than 64 levels" in problem["detail"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", None, "application/x-www-form-urlencoded"]
)
async def test_the_limits_hold_whatever_the_content_type_says(small_api: Client, content_type: str | None) -> None:
    """The route decodes a body as JSON whatever its content type: the limits are checked on it just the same."""
    deep: Any = "bottom"
    for _ in range(70):
        deep = {"next": deep}
    headers = {} if content_type is None else {"content-type": content_type}
    long = msgspec.json.encode(workflow("long", output={"text": "y" * 1001}))

    too_deep = await small_api.post(
        "workflows", content=msgspec.json.encode(workflow("deep", output=deep)), headers=headers
    )
    too_long = await small_api.post("workflows", content=long, headers=headers)

    assert assert_problem(too_deep, 400)["detail"].endswith("nested deeper than 64 levels")
    assert assert_problem(too_long, 400)["pointer"] == "/definition/output/text"
    assert (await small_api.get("workflows/demo.deep")).status_code == 404
    assert (await small_api.get("workflows/demo.long")).status_code == 404


async def test_a_string_over_the_limit_is_400_naming_the_pointer(small_api: Client) -> None:
    body = workflow("long", output={"text": "y" * 1001})

    problem = assert_problem(await small_api.post("workflows", json=body), 400)

    assert problem["pointer"] == "/definition/output/text"
    assert problem["detail"] == "/definition/output/text: a string is longer than 1000 characters"
    assert (await small_api.get("workflows/demo.long")).status_code == 404


async def test_bodies_within_the_limits_pass(small_api: Client) -> None:
    nested: Any = "ok"
    for _ in range(60):
        nested = [nested]
    body = workflow("fine", output={"text": "y" * 1000, "nested": nested})

    assert (await small_api.post("workflows", json=body)).status_code == 201


async def test_every_list_route_caps_its_page_size(api: Client) -> None:
    document = (await api.get(OPENAPI)).json()
    limits = {
        f"GET {path}": parameter["schema"]
        for path, methods in document["paths"].items()
        if "get" in methods
        for parameter in methods["get"].get("parameters", [])
        if parameter["name"] == "limit" and parameter["in"] == "query"
    }

    assert len(limits) >= 8
    uncapped = {route for route, schema in limits.items() if not isinstance(schema.get("maximum"), int | float)}
    assert uncapped == set()
    too_large = {route for route, schema in limits.items() if schema["maximum"] > 10_000}
    assert too_large == set()


def _routes_with_ids(document: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    routes = []
    for path, methods in document["paths"].items():
        identifiers = [name for name in re.findall(r"{(\w+)}", path) if name not in FREE_FORM_PARAMETERS]
        if identifiers:
            routes.extend((method.upper(), path, identifiers) for method in methods if method != "parameters")
    return routes


async def test_a_malformed_id_in_any_path_is_400_or_404_never_500(api: Client) -> None:
    document = (await api.get(OPENAPI)).json()
    routes = _routes_with_ids(document)
    assert len(routes) >= 20, routes

    failures = []
    for method, path, identifiers in routes:
        url = path.replace("{tenant}", "dev")
        for name in identifiers:
            url = url.replace(f"{{{name}}}", "not-a-uuid")
        url = re.sub(r"{\w+}", "x", url)
        response = await api.request(method, f"http://testserver.local{url}", json={} if method != "GET" else None)
        if response.status_code not in (400, 404) or not response.headers.get("content-type", "").startswith(
            "application/problem+json"
        ):
            failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert failures == []


ID = "0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a"
NAMED_400 = [
    ("GET", "executions/not-a-uuid", "execution_id"),
    ("GET", "executions/not-a-uuid/steps", "execution_id"),
    ("GET", "executions/not-a-uuid/events", "execution_id"),
    ("GET", "executions/not-a-uuid/children", "execution_id"),
    ("GET", f"executions/not-a-uuid/tasks/{ID}/attempts", "execution_id"),
    ("GET", f"executions/{ID}/tasks/not-a-uuid/attempts", "task_id"),
    ("POST", "executions/not-a-uuid/promises/p/resolve", "execution_id"),
    ("POST", "executions/not-a-uuid/promises/p/reject", "execution_id"),
    ("GET", "tasks/not-a-uuid", "task_id"),
    ("GET", "bulk-operations/not-a-uuid", "operation_id"),
]
NOT_FOUND_404 = [
    ("GET", "agents/not-a-uuid"),
    ("PUT", "agents/not-a-uuid"),
    ("PATCH", "agents/not-a-uuid"),
    ("DELETE", "agents/not-a-uuid"),
    ("GET", "agents/not-a-uuid/health"),
    ("DELETE", "api-keys/not-a-uuid"),
    ("POST", "executions/not-a-uuid/cancel"),
    ("POST", "executions/not-a-uuid/pause"),
    ("POST", "executions/not-a-uuid/resume"),
    ("POST", "executions/not-a-uuid/rerun"),
    ("POST", "executions/not-a-uuid/retry"),
    ("GET", "executions/not-a-uuid/logs"),
    ("GET", "executions/not-a-uuid/logs/download"),
    ("GET", "executions/not-a-uuid/stream"),
    ("GET", "executions/not-a-uuid/stream/consolidated"),
    ("GET", "tasks/not-a-uuid/logs"),
    ("GET", "tasks/not-a-uuid/stream"),
]


async def test_a_malformed_id_is_a_400_naming_it_or_a_404_where_it_always_was(api: Client) -> None:
    for method, path, parameter in NAMED_400:
        response = await api.request(method, path, json={} if method != "GET" else None)
        problem = assert_problem(response, 400)
        assert (problem["title"], problem["detail"]) == ("Bad request", f"{parameter}: Invalid UUID"), path
    for method, path in NOT_FOUND_404:
        response = await api.request(method, path, json={} if method != "GET" else None)
        problem = assert_problem(response, 404)
        assert (problem["title"], problem["detail"]) == ("Not found", "Not Found"), path
        assert problem["instance"] == f"/api/v1/tenants/dev/{path}"
