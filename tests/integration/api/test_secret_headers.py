"""Secret http step headers: sealed at rest, masked when shown, opened only by the executor when it sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from flowline.domain.agents import auth_cipher, open_secret
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.support import CountingServer, run_until_finished

Client = AsyncTestClient  # type: ignore[type-arg]
SECRET = "Bearer sk-5e1f0c9d3a7b-never-shown"
NEW_SECRET = "Bearer sk-b8a2d4f6e0c1-never-shown"
MASKED = {"secret": "***"}
UPDATABLE = ("label", "description", "definition", "inputSchema", "outputSchema", "tags", "enabled")


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


def definition(url: str, authorization: Any) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "call",
                "type": "http",
                "request": {
                    "method": "POST",
                    "url": f"{url}/ok",
                    "headers": {"Authorization": authorization, "X-Plain": "{{ input.plain }}"},
                    "body": {"n": 1},
                },
            }
        ]
    }


async def stored_tokens(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT definition->'steps'->0->'request'->'headers'->'Authorization'->>'secret' AS token "
        "FROM workflow_versions ORDER BY version"
    )
    return [row["token"] for row in rows]


async def tables_holding(pool: asyncpg.Pool, text: str) -> list[str]:
    """Every table of the database with a row whose text form contains ``text``."""
    tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    found = []
    for table in tables:
        name = table["tablename"]
        if await pool.fetchval(f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1', f"%{text}%"):
            found.append(name)
    return found


async def execute(api: Client, runtime: Runtime, settings: Settings) -> str:
    response = await api.post("workflows/demo.call/execute", json={"input": {"plain": "visible"}})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["executionId"]
    assert await run_until_finished(runtime, settings, execution_id) == "completed"
    return execution_id


async def test_a_secret_header_is_sealed_masked_and_sent_only_by_the_executor(
    api: Client, runtime: Runtime, settings: Settings, target: CountingServer
) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    created = await api.post(
        "workflows", json={"ref": "demo.call", "definition": definition(target.url, {"secret": SECRET})}
    )
    assert created.status_code == 201, created.text
    assert created.json()["definition"]["steps"][0]["request"]["headers"] == {
        "Authorization": MASKED,
        "X-Plain": "{{ input.plain }}",
    }

    # At rest: a token only the configured key opens.
    (token,) = await stored_tokens(runtime.pool)
    assert SECRET not in token
    assert open_secret(auth_cipher(settings.secret_key), token, "test") == SECRET

    execution_id = await execute(api, runtime, settings)

    method, path, headers, _ = target.requests[-1]
    assert (method, path) == ("POST", "/ok")
    assert headers["authorization"] == SECRET
    assert headers["x-plain"] == "visible"
    steps = (await api.get(f"executions/{execution_id}/steps")).json()["steps"]
    assert steps[0]["input"]["headers"] == {"Authorization": MASKED, "X-Plain": "visible"}

    # Everything the api shows, and every row of the database, is free of the plaintext.
    responses = [
        await api.get(route)
        for route in (
            "workflows/demo.call",
            "workflows/demo.call/versions/1",
            f"executions/{execution_id}",
            f"executions/{execution_id}/steps",
            f"executions/{execution_id}/events",
            f"executions/{execution_id}/logs",
            f"tasks/{steps[0]['taskId']}",
            "audit-logs",
        )
    ]
    assert all(response.status_code == 200 for response in responses)
    assert [response.url.path for response in responses if SECRET in response.text] == []
    assert await tables_holding(runtime.pool, SECRET) == []


async def test_putting_back_the_masked_value_keeps_the_secret_and_a_new_value_replaces_it(
    api: Client, runtime: Runtime, settings: Settings, target: CountingServer
) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    body = {"ref": "demo.call", "definition": definition(target.url, {"secret": SECRET})}
    assert (await api.post("workflows", json=body)).status_code == 201
    (token,) = await stored_tokens(runtime.pool)

    read = (await api.get("workflows/demo.call")).json()
    unchanged = await api.put("workflows/demo.call", json={field: read[field] for field in UPDATABLE})
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json()["version"] == 1
    # The same plaintext again is no change either: the stored token is kept.
    again = await api.put("workflows/demo.call", json={"definition": definition(target.url, {"secret": SECRET})})
    assert again.json()["version"] == 1
    assert await stored_tokens(runtime.pool) == [token]
    await execute(api, runtime, settings)
    assert target.requests[-1][2]["authorization"] == SECRET

    changed = await api.put("workflows/demo.call", json={"definition": definition(target.url, {"secret": NEW_SECRET})})
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    await execute(api, runtime, settings)
    assert target.requests[-1][2]["authorization"] == NEW_SECRET

    audit = (await api.get("audit-logs", params={"entityType": "workflow"})).text
    assert SECRET not in audit
    assert NEW_SECRET not in audit
    assert await tables_holding(runtime.pool, NEW_SECRET) == []


async def test_a_masked_value_without_a_stored_secret_and_a_bad_value_are_422_without_the_value(
    api: Client, target: CountingServer
) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201

    masked = await api.post("workflows", json={"ref": "demo.call", "definition": definition(target.url, MASKED)})
    assert masked.status_code == 422
    assert masked.json()["pointer"] == "/definition/steps/0/request/headers/Authorization"
    assert "*** keeps the stored secret" in masked.json()["detail"]

    bad = "Bearer line\r\nX-Injected: 1"
    broken = await api.post(
        "workflows", json={"ref": "demo.call", "definition": definition(target.url, {"secret": bad})}
    )
    assert broken.status_code == 422
    assert broken.json()["pointer"] == "/definition/steps/0/request/headers/Authorization"
    assert "line" not in broken.text
    assert (await api.get("workflows/demo.call")).status_code == 404


async def test_a_kept_secret_does_not_follow_its_step_to_another_url(
    api: Client, runtime: Runtime, target: CountingServer
) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    body = {"ref": "demo.call", "definition": definition(target.url, {"secret": SECRET})}
    assert (await api.post("workflows", json=body)).status_code == 201
    before = await runtime.pool.fetch("SELECT version, definition FROM workflow_versions ORDER BY version")

    elsewhere = definition("https://attacker.example.net", MASKED)
    put = await api.put("workflows/demo.call", json={"definition": elsewhere})
    patched = await api.patch("workflows/demo.call", json={"definition": elsewhere})
    for response in (put, patched):
        assert response.status_code == 422, response.text
        assert response.json()["pointer"] == "/definition/steps/0/request/headers/Authorization"
        assert "url" in response.json()["detail"]
    assert await runtime.pool.fetch("SELECT version, definition FROM workflow_versions ORDER BY version") == before

    # Sent again, the secret may go to the new URL.
    moved = await api.put(
        "workflows/demo.call", json={"definition": definition("https://new.example.net", {"secret": NEW_SECRET})}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    # And kept while the URL stays.
    kept = await api.put("workflows/demo.call", json={"definition": definition("https://new.example.net", MASKED)})
    assert kept.status_code == 200, kept.text
    assert kept.json()["version"] == 2


async def test_an_answer_echoing_a_secret_header_is_stored_without_it(
    api: Client, runtime: Runtime, settings: Settings, target: CountingServer
) -> None:
    assert (await api.post("packs", json={"ref": "demo"})).status_code == 201
    echo = definition(target.url, {"secret": SECRET})
    echo["steps"][0]["request"]["url"] = f"{target.url}/headers"
    assert (await api.post("workflows", json={"ref": "demo.call", "definition": echo})).status_code == 201

    execution_id = await execute(api, runtime, settings)

    assert target.requests[-1][2]["authorization"] == SECRET  # it was sent
    output = (await api.get(f"executions/{execution_id}/steps")).json()["steps"][0]["output"]
    assert output["body"]["headers"]["authorization"] == "***"
    assert output["body"]["seen"] == "auth was ***"
    token = SECRET.removeprefix("Bearer ")
    assert await tables_holding(runtime.pool, token) == []
