"""The agents routes over a real database, with health checks against a real local HTTP server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from flowline.domain.agents import Agent as LoadedAgent
from flowline.domain.agents import auth_cipher, load_agent
from flowline.errors import NotFound
from flowline.settings import Settings
from flowline_schemas.agents import RetryConfig
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client, served_client
from tests.ports import free_port
from tests.support import CountingServer, api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]
TOKEN = "tok-3f9a1c77e2b4-never-shown"
PASSWORD = "pw-81d2c4e5f6a7-never-shown"


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


def agent_body(**fields: Any) -> dict[str, Any]:
    return {"name": "summarizer", "url": "https://agents.example.com/summarize", **fields}


async def create(api: Client, **fields: Any) -> dict[str, Any]:
    response = await api.post("agents", json=agent_body(**fields))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_returns_the_agent_without_its_credentials(api: Client) -> None:
    response = await api.post(
        "agents",
        json=agent_body(
            description="Summarizes",
            healthPath="/health",
            authType="bearer",
            authConfig={"token": TOKEN},
            timeoutMs=5000,
            retryConfig={"maxAttempts": 4, "backoff": "fixed", "initialIntervalMs": 200, "maxIntervalMs": 1000},
        ),
    )

    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body.pop("id")).version == 7
    assert body.pop("createdAt") == body.pop("updatedAt")
    assert body == {
        "name": "summarizer",
        "description": "Summarizes",
        "url": "https://agents.example.com/summarize",
        "healthPath": "/health",
        "authType": "bearer",
        "authConfigFields": ["token"],
        "timeoutMs": 5000,
        "retryConfig": {"maxAttempts": 4, "backoff": "fixed", "initialIntervalMs": 200, "maxIntervalMs": 1000},
        "status": "active",
    }
    assert TOKEN not in response.text


async def test_defaults(api: Client) -> None:
    body = await create(api)

    assert body["authType"] == "none"
    assert body["authConfigFields"] == []
    assert body["timeoutMs"] == 30000
    assert body["retryConfig"] is None
    assert body["status"] == "active"
    assert body["description"] is None
    assert body["healthPath"] is None


async def test_credentials_are_encrypted_at_rest(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api, authType="basic", authConfig={"username": "flow", "password": PASSWORD})

    stored = await pool.fetchval("SELECT auth_config_encrypted FROM agents WHERE id = $1", uuid.UUID(created["id"]))

    assert stored
    assert PASSWORD.encode() not in stored
    assert b"flow" not in stored
    assert created["authConfigFields"] == ["password", "username"]


async def test_api_key_and_hmac_defaults_show_as_set_fields(api: Client) -> None:
    api_key = await create(api, name="a", authType="api_key", authConfig={"key": TOKEN})
    signed = await create(api, name="b", authType="hmac", authConfig={"secret": TOKEN})

    assert api_key["authConfigFields"] == ["header", "key"]
    assert signed["authConfigFields"] == ["algorithm", "header", "secret"]


async def test_read_an_agent(api: Client) -> None:
    created = await create(api)

    response = await api.get(f"agents/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


async def test_unknown_or_malformed_ids_are_404(api: Client) -> None:
    for path in (f"agents/{uuid.uuid4()}", "agents/not-a-uuid", f"agents/{uuid.uuid4()}/health"):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_unknown_tenant_is_404(api: Client) -> None:
    response = await api.get("http://testserver.local/api/v1/tenants/nobody/agents")

    assert response.status_code == 404
    assert response.json()["detail"] == "tenant 'nobody' does not exist"


async def test_a_duplicate_name_is_409(api: Client) -> None:
    await create(api)

    response = await api.post("agents", json=agent_body(url="http://other.example.com"))

    assert response.status_code == 409
    assert response.json()["detail"] == "agent 'summarizer' already exists"


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"url": "ftp://files.example.com/x"}, "/url"),
        ({"url": "file:///etc/passwd"}, "/url"),
        ({"url": "agents.example.com/run"}, "/url"),
        ({"url": "https://user:pw@agents.example.com/"}, "/url"),
        ({"url": "https://xn--/"}, "/url"),  # an invalid IDNA label was a 500
        ({"healthPath": "health"}, "/healthPath"),
        ({"healthPath": "//elsewhere.example.com/health"}, "/healthPath"),
        ({"healthPath": "/health\x7f"}, "/healthPath"),  # stored, then its health check was a 500
        ({"name": ""}, "/name"),
        ({"name": "has space"}, "/name"),
        ({"timeoutMs": 99}, "/timeoutMs"),
        ({"timeoutMs": 300001}, "/timeoutMs"),
        ({"authType": "oauth"}, "/authType"),
        ({"authType": "bearer"}, "/authConfig/token"),
        ({"authType": "bearer", "authConfig": {"token": ""}}, "/authConfig/token"),
        ({"authType": "bearer", "authConfig": {"token": 7}}, "/authConfig/token"),
        ({"authType": "bearer", "authConfig": {"token": "a\nb"}}, "/authConfig/token"),
        ({"authType": "bearer", "authConfig": {"token": "x", "extra": "y"}}, "/authConfig/extra"),
        ({"authType": "basic", "authConfig": {"username": "u"}}, "/authConfig/password"),
        ({"authType": "basic", "authConfig": {"username": "u:v", "password": "p"}}, "/authConfig/username"),
        ({"authType": "api_key", "authConfig": {"key": "k", "header": "Bad Header"}}, "/authConfig/header"),
        ({"authType": "api_key", "authConfig": {"key": "k", "header": "Idempotency-Key"}}, "/authConfig/header"),
        ({"authType": "hmac", "authConfig": {"secret": "s", "algorithm": "md5"}}, "/authConfig/algorithm"),
        ({"authType": "none", "authConfig": {"token": "t"}}, "/authConfig/token"),
        ({"status": "paused"}, "/status"),
        ({"retryConfig": {"maxAttempts": 0}}, "/retryConfig/maxAttempts"),
        ({"retryConfig": {"backoff": "linear"}}, "/retryConfig/backoff"),
        ({"retryConfig": {"initialIntervalMs": 0}}, "/retryConfig/initialIntervalMs"),
        ({"retryConfig": {"maxTries": 2}}, "/retryConfig"),
        ({"unknown": 1}, ""),
    ],
)
async def test_invalid_agents_are_422_with_a_pointer(api: Client, fields: dict[str, Any], pointer: str) -> None:
    response = await api.post("agents", json=agent_body(**fields))

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["pointer"] == pointer
    assert problem["status"] == 422


async def test_validation_messages_never_echo_a_secret(api: Client) -> None:
    secret = "not-printable-secret\u00e9"
    response = await api.post("agents", json=agent_body(authType="bearer", authConfig={"token": secret}))

    assert response.status_code == 422
    assert secret not in response.text
    assert "not-printable" not in response.text


async def test_list_filters_and_pages(api: Client) -> None:
    for name, status, description in [
        ("alpha", "active", "Summarizes incidents"),
        ("bravo", "inactive", None),
        ("charlie", "active", "Translates text"),
        ("delta", "active", "summary of 100%"),
        ("echo", "inactive", "pages people"),
    ]:
        await create(api, name=name, status=status, description=description)

    everything = (await api.get("agents")).json()
    assert [item["name"] for item in everything["items"]] == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert (everything["total"], everything["limit"], everything["offset"], everything["nextCursor"]) == (
        5,
        20,
        0,
        None,
    )

    inactive = (await api.get("agents", params={"status": "inactive"})).json()
    assert [item["name"] for item in inactive["items"]] == ["bravo", "echo"]
    assert inactive["total"] == 2

    found = (await api.get("agents", params={"search": "SUMMAR"})).json()
    assert [item["name"] for item in found["items"]] == ["alpha", "delta"]
    by_name = (await api.get("agents", params={"search": "harl"})).json()
    assert [item["name"] for item in by_name["items"]] == ["charlie"]
    literal_percent = (await api.get("agents", params={"search": "100%"})).json()
    assert [item["name"] for item in literal_percent["items"]] == ["delta"]
    both = (await api.get("agents", params={"search": "e", "status": "inactive"})).json()
    assert [item["name"] for item in both["items"]] == ["echo"]

    second = (await api.get("agents", params={"limit": 2, "offset": 2})).json()
    assert [item["name"] for item in second["items"]] == ["charlie", "delta"]
    assert second["total"] == 5

    names, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("agents", params=params)).json()
        names += [item["name"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert names == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert pages == 3


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"status": "gone"},
        {"cursor": "garbage!"},
        {"cursor": "WyJhIiwibm90LWEtdXVpZCJd"},  # ["a","not-a-uuid"]
        {"cursor": "WyJhIiwiMDE5MGY1ZDItN2MxZS03YTNiLTljMWQtMmY0ZTVhNmI3YzhkIl0", "offset": 1},
    ],
)
async def test_bad_list_parameters_are_400(api: Client, params: dict[str, Any]) -> None:
    response = await api.get("agents", params=params)

    assert response.status_code == 400, response.text


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_changes_only_the_given_fields(api: Client, method: str) -> None:
    created = await create(
        api, description="first", authType="bearer", authConfig={"token": TOKEN}, retryConfig={"maxAttempts": 2}
    )

    response = await api.request(
        method, f"agents/{created['id']}", json={"timeoutMs": 1000, "description": None, "status": "inactive"}
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["timeoutMs"] == 1000
    assert updated["description"] is None
    assert updated["status"] == "inactive"
    assert updated["authType"] == "bearer"
    assert updated["authConfigFields"] == ["token"]  # credentials kept
    assert updated["retryConfig"] == created["retryConfig"]
    assert updated["updatedAt"] > created["updatedAt"]
    assert (await api.get(f"agents/{created['id']}")).json() == updated


async def test_a_patch_may_come_as_merge_patch_json(api: Client) -> None:
    created = await create(api)

    response = await api.patch(
        f"agents/{created['id']}",
        content=b'{"status": "inactive"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "inactive"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "pointer"),
    [({}, ""), ({"status": None}, "/status"), ({"timeoutMs": "fast"}, "/timeoutMs"), ({"nmae": "x"}, "")],
    ids=["empty", "null-status", "string-timeout", "unknown-field"],
)
async def test_a_bad_update_is_422_and_changes_nothing(
    api: Client, pool: asyncpg.Pool, method: str, body: dict[str, Any], pointer: str
) -> None:
    created = await create(api)

    response = await api.request(method, f"agents/{created['id']}", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["pointer"] == pointer
    assert (await api.get(f"agents/{created['id']}")).json() == created
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'update'") == 0


async def test_concurrent_partial_updates_lose_nothing(settings: Settings) -> None:
    async with served_client(settings) as api:
        created = await api.post("agents", json=agent_body())
        path = f"agents/{created.json()['id']}"
        for round in range(20):
            # Three requests at once, each changing another field.
            answers = await asyncio.gather(
                api.patch(path, json={"description": f"round {round}"}),
                api.put(path, json={"timeoutMs": 1000 + round}),
                api.patch(path, json={"status": "inactive" if round % 2 else "active"}),
            )
            assert [answer.status_code for answer in answers] == [200] * 3, [answer.text for answer in answers]

            after = (await api.get(path)).json()
            assert (after["description"], after["timeoutMs"], after["status"]) == (
                f"round {round}",
                1000 + round,
                "inactive" if round % 2 else "active",
            )


async def test_update_of_credentials_and_auth_type(api: Client) -> None:
    created = await create(api, authType="bearer", authConfig={"token": TOKEN})
    path = f"agents/{created['id']}"

    missing = await api.put(path, json={"authType": "basic"})
    assert missing.status_code == 422
    assert missing.json()["pointer"] == "/authConfig"

    wrong = await api.put(path, json={"authConfig": {"username": "u", "password": "p"}})
    assert wrong.status_code == 422  # still bearer
    assert wrong.json()["pointer"] == "/authConfig/password"

    changed = await api.put(path, json={"authType": "basic", "authConfig": {"username": "u", "password": PASSWORD}})
    assert changed.status_code == 200
    assert changed.json()["authConfigFields"] == ["password", "username"]

    cleared = await api.put(path, json={"authType": "none"})
    assert cleared.status_code == 200
    assert cleared.json()["authConfigFields"] == []


async def test_update_errors(api: Client) -> None:
    first = await create(api, name="first")
    await create(api, name="second")

    assert (await api.put(f"agents/{uuid.uuid4()}", json={"timeoutMs": 1000})).status_code == 404
    taken = await api.put(f"agents/{first['id']}", json={"name": "second"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == "agent 'second' already exists"
    bad_url = await api.put(f"agents/{first['id']}", json={"url": "gopher://x"})
    assert bad_url.status_code == 422
    assert bad_url.json()["pointer"] == "/url"
    unknown = await api.put(f"agents/{first['id']}", json={"nmae": "x"})
    assert unknown.status_code == 422
    bad_path = await api.put(f"agents/{first['id']}", json={"healthPath": "/health\x7f"})
    assert bad_path.status_code == 422
    assert bad_path.json()["pointer"] == "/healthPath"


async def test_delete_is_soft_and_frees_the_name(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    path = f"agents/{created['id']}"

    response = await api.delete(path)

    assert response.status_code == 204
    assert (await api.get(path)).status_code == 404
    assert (await api.put(path, json={"timeoutMs": 1000})).status_code == 404
    assert (await api.delete(path)).status_code == 404
    assert (await api.get("agents")).json()["total"] == 0
    assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM agents WHERE id = $1", uuid.UUID(created["id"]))
    again = await create(api)
    assert again["id"] != created["id"]


async def test_every_change_is_audited_with_credentials_masked(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api, authType="bearer", authConfig={"token": TOKEN})
    path = f"agents/{created['id']}"
    await api.put(path, json={"authConfig": {"token": TOKEN + "-2"}}, headers={"X-Request-ID": "req-42"})
    await api.put(path, json={"timeoutMs": 30000})  # no change: no audit row
    await api.delete(path)

    rows = await pool.fetch(
        "SELECT entity_type, entity_id, action, changes, request_id FROM audit_logs ORDER BY occurred_at, id"
    )

    assert [(row["entity_type"], row["entity_id"], row["action"]) for row in rows] == [
        ("agent", created["id"], "create"),
        ("agent", created["id"], "update"),
        ("agent", created["id"], "delete"),
    ]
    create_changes, update_changes, delete_changes = (row["changes"] for row in rows)
    assert create_changes["authConfig"] == {"before": None, "after": "***"}
    assert create_changes["name"] == {"before": None, "after": "summarizer"}
    assert update_changes == {"authConfig": {"before": "***", "after": "***"}}
    assert rows[1]["request_id"] == "req-42"
    assert delete_changes["authConfig"] == {"before": "***", "after": None}
    assert all(TOKEN not in str(row) for row in rows)


async def test_a_failed_change_leaves_no_audit_row(api: Client, pool: asyncpg.Pool) -> None:
    await create(api)

    assert (await api.post("agents", json=agent_body())).status_code == 409

    assert await pool.fetchval("SELECT count(*) FROM audit_logs") == 1


async def test_health_of_a_healthy_agent_uses_its_auth(api: Client, target: CountingServer) -> None:
    created = await create(
        api, url=f"{target.url}/run", healthPath="/ok", authType="bearer", authConfig={"token": TOKEN}
    )

    response = await api.get(f"agents/{created['id']}/health")

    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "healthy"
    assert health["httpStatus"] == 200
    assert health["error"] is None
    assert isinstance(health["latencyMs"], int | float)
    assert health["checkedAt"]
    method, path, headers, _ = target.requests[-1]
    assert (method, path) == ("GET", "/ok")
    assert headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_viewer_may_not_run_a_health_check_which_sends_the_agents_credentials(
    api: Client, target: CountingServer, settings: Settings
) -> None:
    created = await create(
        api, url=f"{target.url}/run", healthPath="/ok", authType="bearer", authConfig={"token": TOKEN}
    )
    path = f"agents/{created['id']}/health"

    refused = await api.get(path, headers=bearer(await api_key(settings.database_url, role="viewer")))

    assert refused.status_code == 403, refused.text
    assert "operator" in refused.json()["detail"]
    assert target.requests == []  # nothing was sent, the credentials least of all
    allowed = await api.get(path, headers=bearer(await api_key(settings.database_url, role="operator")))
    assert (allowed.status_code, allowed.json()["status"]) == (200, "healthy")
    assert len(target.requests) == 1


async def test_health_without_a_health_path_gets_the_agent_url(api: Client, target: CountingServer) -> None:
    created = await create(api, url=f"{target.url}/agent")

    health = (await api.get(f"agents/{created['id']}/health")).json()

    assert health["status"] == "healthy"
    assert target.requests[-1][1] == "/agent"


async def test_health_of_a_failing_agent_is_unhealthy(api: Client, target: CountingServer) -> None:
    created = await create(api, url=f"{target.url}/status/500")

    health = (await api.get(f"agents/{created['id']}/health")).json()

    assert health["status"] == "unhealthy"
    assert health["httpStatus"] == 500
    assert "500" in health["error"]


async def test_health_of_a_slow_agent_gives_up_at_its_timeout(api: Client, target: CountingServer) -> None:
    created = await create(api, url=f"{target.url}/slow/2", timeoutMs=100)

    health = (await api.get(f"agents/{created['id']}/health")).json()

    assert health["status"] == "unreachable"
    assert health["httpStatus"] is None
    assert health["error"] == "no answer within 0.1 s"


async def test_health_of_a_closed_port_is_unreachable(api: Client) -> None:
    created = await create(api, url=f"http://127.0.0.1:{free_port()}/")

    health = (await api.get(f"agents/{created['id']}/health")).json()

    assert health["status"] == "unreachable"
    assert health["httpStatus"] is None
    assert health["error"].startswith("ConnectError")


async def test_secrets_never_leave_the_api(
    api: Client, pool: asyncpg.Pool, target: CountingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {TOKEN, PASSWORD, "hmac-key-5e6f7a8b9c0d", "api-key-0a1b2c3d4e5f"}
    bodies: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        response = await api.request(method, path, **kwargs)
        bodies.append(response.text)
        return response

    bearer = (
        await call("POST", "agents", json=agent_body(authType="bearer", url=target.url, authConfig={"token": TOKEN}))
    ).json()
    basic = (
        await call(
            "POST",
            "agents",
            json=agent_body(
                name="basic", url=target.url, authType="basic", authConfig={"username": "flow", "password": PASSWORD}
            ),
        )
    ).json()
    hmac_agent = (
        await call(
            "POST",
            "agents",
            json=agent_body(
                name="signed",
                url=f"http://127.0.0.1:{free_port()}/",
                authType="hmac",
                authConfig={"secret": "hmac-key-5e6f7a8b9c0d"},
            ),
        )
    ).json()
    await call(
        "POST",
        "agents",
        json=agent_body(name="dup", authType="api_key", authConfig={"key": "api-key-0a1b2c3d4e5f"}),
    )
    await call("POST", "agents", json=agent_body(name="dup", authType="api_key", authConfig={"key": TOKEN}))  # 409
    await call("PUT", f"agents/{bearer['id']}", json={"authConfig": {"token": PASSWORD}})
    await call("PUT", f"agents/{bearer['id']}", json={"authType": "basic", "authConfig": {"username": TOKEN}})  # 422
    for agent in (bearer, basic, hmac_agent):
        await call("GET", f"agents/{agent['id']}")
        await call("GET", f"agents/{agent['id']}/health")
    await call("GET", "agents")
    await call("GET", "audit-logs")
    await call("DELETE", f"agents/{basic['id']}")
    audit_rows = await pool.fetch("SELECT * FROM audit_logs")

    assert len(bodies) == 16
    assert len(audit_rows) == 6
    for secret in secrets:
        assert all(secret not in body for body in bodies), secret
        assert all(secret not in str(dict(row)) for row in audit_rows), secret
        assert secret not in caplog.text, secret
        assert all(secret not in record.getMessage() for record in caplog.records), secret


async def test_load_agent_gives_the_executor_a_callable_agent(
    api: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    cipher = auth_cipher(settings.secret_key)
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    created = await create(
        api,
        authType="hmac",
        authConfig={"secret": TOKEN},
        timeoutMs=2500,
        retryConfig={"maxAttempts": 2, "backoff": "fixed", "initialIntervalMs": 10, "maxIntervalMs": 10},
    )

    loaded = await load_agent(pool, cipher, tenant_id, "summarizer")

    assert loaded == LoadedAgent(
        id=uuid.UUID(created["id"]),
        tenant_id=tenant_id,
        name="summarizer",
        url="https://agents.example.com/summarize",
        auth_type="hmac",
        auth_config={"secret": TOKEN, "header": "X-Flowline-Signature", "algorithm": "sha256"},
        timeout_ms=2500,
        retry_config=RetryConfig(max_attempts=2, backoff="fixed", initial_interval_ms=10, max_interval_ms=10),
    )
    async with pool.acquire() as connection:
        assert (await load_agent(connection, cipher, tenant_id, "summarizer")).id == loaded.id

    with pytest.raises(NotFound, match="'missing' does not exist"):
        await load_agent(pool, cipher, tenant_id, "missing")
    await api.put(f"agents/{created['id']}", json={"status": "inactive"})
    with pytest.raises(NotFound, match="'summarizer' is inactive"):
        await load_agent(pool, cipher, tenant_id, "summarizer")
    await api.delete(f"agents/{created['id']}")
    with pytest.raises(NotFound, match="'summarizer' does not exist"):
        await load_agent(pool, cipher, tenant_id, "summarizer")


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://10.0.0.5/run", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("http://[fd00::1]:8080/", "fd00::1 is a private address"),
        ("http://localhost:9000/", "localhost resolves to 127.0.0.1, a loopback address"),
    ],
)
async def test_an_agent_url_to_a_refused_address_is_422_on_create_and_update(
    api: Client, url: str, refused: str
) -> None:
    # The suite allows loopback; this api allows nothing, as a production api would.
    expected = f"url: refused: {refused}; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"
    agent = await create(api)
    strict = msgspec.structs.replace(api.app.state.settings, outbound_allowed_networks="")
    async with admin_client(strict) as strict_api:
        created = await strict_api.post("agents", json=agent_body(name="inward", url=url))
        updated = await strict_api.put(f"agents/{agent['id']}", json={"url": url})

    for response in (created, updated):
        assert response.status_code == 422, response.text
        assert (response.json()["pointer"], response.json()["detail"]) == ("/url", expected)
    assert (await api.get(f"agents/{agent['id']}")).json()["url"] == agent["url"]


async def test_a_health_check_to_a_refused_address_reports_it_unreachable(api: Client, target: CountingServer) -> None:
    agent = await create(api, url=f"{target.url}/run")
    strict = msgspec.structs.replace(api.app.state.settings, outbound_allowed_networks="")
    async with admin_client(strict) as strict_api:
        health = (await strict_api.get(f"agents/{agent['id']}/health")).json()

    assert health["status"] == "unreachable"
    assert health["error"] == (
        "refused: 127.0.0.1 is a loopback address; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"
    )
    assert target.requests == []


async def test_credentials_are_not_re_aimed_at_another_origin_without_being_sent_again(
    api: Client, settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await create(api, authType="bearer", authConfig={"token": TOKEN}, healthPath="/health")
    path = f"agents/{created['id']}"
    before = await pool.fetchrow("SELECT * FROM agents WHERE id = $1", uuid.UUID(created["id"]))

    refused = [
        await api.put(path, json={"url": "https://attacker.example.net/summarize"}),
        await api.patch(path, json={"url": "http://agents.example.com/summarize"}),  # another scheme
        await api.patch(path, json={"url": "https://agents.example.com:8443/summarize"}),  # another port
        await api.patch(path, json={"url": "https://attacker.example.net/", "healthPath": "/health"}),
    ]
    for response in refused:
        assert response.status_code == 422, response.text
        assert response.json()["pointer"] == "/authConfig"
        assert "authConfig" in response.json()["detail"]
    assert await pool.fetchrow("SELECT * FROM agents WHERE id = $1", uuid.UUID(created["id"])) == before

    # The same origin keeps them: another path, another health path.
    same_origin = await api.patch(path, json={"url": "https://agents.example.com/v2/summarize", "healthPath": "/ok"})
    assert same_origin.status_code == 200, same_origin.text
    # Sent again, they may go anywhere; without credentials there is nothing to re-aim.
    moved = await api.patch(path, json={"url": "https://elsewhere.example.net/run", "authConfig": {"token": "new"}})
    assert moved.status_code == 200, moved.text
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    agent = await load_agent(pool, auth_cipher(settings.secret_key), tenant_id, "summarizer")
    assert agent.auth_config == {"token": "new"}
    plain = await create(api, name="plain")
    assert (await api.patch(f"agents/{plain['id']}", json={"url": "https://other.example.net/"})).status_code == 200
    cleared = await api.patch(path, json={"url": "https://third.example.net/", "authType": "none"})
    assert cleared.status_code == 200 and cleared.json()["authConfigFields"] == []
