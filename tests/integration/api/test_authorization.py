"""The authorization matrix: every tenant route of the served OpenAPI document, times every kind of caller.

The expectations come from the issue's rules, not from the routes' declarations, so a route that declares
the wrong role (or none) fails here: admin-only routes are the API keys and the audit log; reads need a
viewer, except an agent's health check (it sends the agent's credentials) and webhooks (issue #20: admin or
operator); everything else an operator.
Executions (and their tasks) belong to the principal that started them: another viewer or operator gets a
404, exactly like an id that does not exist.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import msgspec
import pytest
from flowline.domain.credentials import key_subject, parse_key
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import ExecutionRows
from tests.support import api_key, bearer

JWT_SECRET = "a-test-secret-of-enough-length-for-hs256"
TENANT_ROUTES = "/api/v1/tenants/{tenant}/"
ADMIN_ONLY = ("/api-keys", "/audit-logs")
# Read by every role, changed by admins alone: the tenant's own settings.
ADMIN_WRITES = ("/retention",)
# Reads that need an operator: an agent's health check sends the agent's credentials to where it points;
# webhooks are for admins and operators alone (issue #20).
OPERATOR_READS = (
    "/agents/{agent_id}/health",
    "/webhooks",
    "/webhooks/{webhook_id}",
    "/webhooks/{webhook_id}/deliveries",
)
ROLES = ("viewer", "operator", "admin")

Client = AsyncTestClient  # type: ignore[type-arg]


def needed_role(method: str, path: str) -> str:
    """The role the issue gives a route."""
    if any(path.startswith(TENANT_ROUTES + part.strip("/")) for part in ADMIN_ONLY):
        return "admin"
    if method != "GET" and path.removeprefix(TENANT_ROUTES.rstrip("/")) in ADMIN_WRITES:
        return "admin"
    if path.removeprefix(TENANT_ROUTES.rstrip("/")) in OPERATOR_READS:
        return "operator"
    return "viewer" if method == "GET" else "operator"


def token(sub: str, tenant: str, roles: list[str], expires_in: timedelta) -> str:
    now = datetime.now(UTC)
    claims = {"sub": sub, "tenant": tenant, "roles": roles, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@dataclass
class World:
    client: Client
    execution_id: uuid.UUID
    task_id: uuid.UUID
    headers: dict[str, dict[str, str]]


@pytest.fixture
async def world(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[World]:
    """A tenant with a workflow, an agent, an execution started by ``owner`` and one of its tasks; a caller of each
    kind."""
    settings = msgspec.structs.replace(settings, jwt_hs256_secret=JWT_SECRET)
    keys = {role: await api_key(settings.database_url, role=role) for role in ROLES}
    owner = await api_key(settings.database_url, role="operator")
    revoked = await api_key(settings.database_url, role="admin")
    rows = ExecutionRows(pool)
    execution_id = await rows.execution(status="running", run_seconds=None)
    task_id = await rows.step(execution_id, "one", position=0, status="running", attempts=1)
    owner_id, _ = parse_key(owner) or (None, None)
    assert owner_id is not None
    await pool.execute("UPDATE executions SET owned_by = $2 WHERE id = $1", execution_id, key_subject(owner_id))
    await rows.tenant("acme")
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        headers = {
            "no credentials": {},
            "bad key": bearer("fl_0190f5d27c1e7a3b9c1d2f4e5a6b7c8d_not-the-secret"),
            "revoked key": bearer(revoked),
            "expired JWT": bearer(token("ada", "dev", ["admin"], timedelta(minutes=-5))),
            "other tenant's admin": bearer(await api_key(settings.database_url, tenant="acme", role="admin")),
            "viewer": bearer(keys["viewer"]),
            "viewer (JWT)": bearer(token("ada", "dev", ["viewer"], timedelta(minutes=5))),
            "operator": bearer(keys["operator"]),
            "owner": bearer(owner),
            "admin": bearer(keys["admin"]),
        }
        revoked_id, _ = parse_key(revoked) or (None, None)
        assert revoked_id is not None
        revoke = await client.delete(f"/api/v1/tenants/dev/api-keys/{revoked_id}", headers=headers["admin"])
        assert revoke.status_code == 200, revoke.text
        yield World(client, execution_id, task_id, headers)


def _path(template: str, world: World) -> str:
    """The route with its parameters filled in: the world's execution and task, and plain names elsewhere."""
    values = {
        "tenant": "dev",
        "execution_id": str(world.execution_id),
        "task_id": str(world.task_id),
        "ref": "demo.hello",
        "pack": "demo",
        "version": "1",
        "name": "go",
    }
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), str(uuid.uuid4())), template)


async def test_every_route_answers_each_kind_of_caller_as_the_rules_say(world: World) -> None:
    document = (await world.client.get("/docs/openapi.json")).json()
    operations = [
        (method.upper(), path)
        for path, methods in document["paths"].items()
        if path.startswith(TENANT_ROUTES)
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 40
    wrong = []
    for method, template in operations:
        path = _path(template, world)
        body = None if method in ("GET", "DELETE") else {}
        role = needed_role(method, template)
        owned = "{execution_id}" in template or "{task_id}" in template
        for caller, headers in world.headers.items():
            if "stream" in template and caller in ("owner", "admin"):
                continue  # an allowed live stream stays open; every refusal is checked like any route's
            response = await world.client.request(method, path, json=body, headers=headers)
            status, detail = response.status_code, response.json().get("detail", "") if response.content else ""
            if caller in ("no credentials", "bad key", "revoked key", "expired JWT"):
                expected = "401"
                ok = status == 401 and response.headers.get("www-authenticate", "").startswith("Bearer")
            elif caller == "other tenant's admin":
                expected, ok = "404 (tenant)", status == 404 and detail == "tenant 'dev' does not exist"
            else:
                caller_role = {"viewer (JWT)": "viewer", "owner": "operator"}.get(caller, caller)
                if ROLES.index(caller_role) < ROLES.index(role):
                    expected, ok = "403", status == 403
                elif owned and caller in ("viewer", "viewer (JWT)", "operator"):
                    expected = "404 (not theirs)"
                    ok = status == 404 and detail.endswith(" does not exist")
                else:
                    # Other answers (404 for a deleted workflow, 409, 422 for an empty body) are the route's own.
                    hidden = detail in (
                        f"execution {world.execution_id} does not exist",
                        f"task {world.task_id} does not exist",
                    )
                    expected, ok = "allowed", status not in (401, 403) and not hidden
            if not ok:
                wrong.append(f"{method} {template} as {caller}: expected {expected}, got {status} {detail}")
    assert wrong == [], "\n".join(wrong)


async def test_a_principal_lists_only_its_own_executions_unless_the_workflow_is_public(world: World) -> None:
    listed = {
        caller: [
            item["id"]
            for item in (await world.client.get("/api/v1/tenants/dev/executions", headers=headers)).json()["items"]
        ]
        for caller, headers in world.headers.items()
        if caller in ("viewer", "operator", "owner", "admin")
    }
    assert listed == {
        "viewer": [],
        "operator": [],
        "owner": [str(world.execution_id)],
        "admin": [str(world.execution_id)],
    }

    workflow = "/api/v1/tenants/dev/workflows/demo.hello"
    steps = [{"id": "one", "type": "action", "action": "core.echo"}]
    made_public = await world.client.put(
        workflow, json={"definition": {"steps": steps}, "public": True}, headers=world.headers["operator"]
    )
    assert made_public.status_code == 200, made_public.text
    assert made_public.json()["public"] is True
    public = await world.client.get(
        f"/api/v1/tenants/dev/executions/{world.execution_id}", headers=world.headers["viewer"]
    )
    assert public.status_code == 200


async def test_keys_are_made_shown_once_listed_without_secrets_and_revoked(world: World) -> None:
    admin = world.headers["admin"]
    made = await world.client.post("/api/v1/tenants/dev/api-keys", json={"name": "ci", "role": "viewer"}, headers=admin)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith("fl_") and made.json()["role"] == "viewer"
    assert (await world.client.get("/api/v1/tenants/dev/workflows", headers=bearer(key))).status_code == 200
    listed = (await world.client.get("/api/v1/tenants/dev/api-keys", headers=admin)).json()["items"]
    assert key not in str(listed)
    assert {"ci"} <= {item["name"] for item in listed}
    used = next(item for item in listed if item["name"] == "ci")
    assert used["lastUsedAt"] is not None

    revoked = await world.client.delete(f"/api/v1/tenants/dev/api-keys/{made.json()['id']}", headers=admin)
    assert revoked.json()["revokedAt"] is not None
    assert (await world.client.get("/api/v1/tenants/dev/workflows", headers=bearer(key))).status_code == 401
    bad_role = await world.client.post(
        "/api/v1/tenants/dev/api-keys", json={"name": "x", "role": "root"}, headers=admin
    )
    assert bad_role.status_code in (400, 422)
    audit = (await world.client.get("/api/v1/tenants/dev/audit-logs?entityType=api_key", headers=admin)).json()
    assert {(item["entityId"], item["action"]) for item in audit["items"]} >= {
        (made.json()["id"], "create"),
        (made.json()["id"], "revoke"),
    }
    admin_id, _ = parse_key(admin["Authorization"].removeprefix("Bearer ")) or (None, None)
    assert admin_id is not None
    principals = {item["principal"] for item in audit["items"] if item["entityId"] == made.json()["id"]}
    assert principals == {key_subject(admin_id)}  # the audit rows name the admin key that acted


async def test_an_idempotency_key_does_not_hand_out_another_principals_execution(world: World) -> None:
    base = "/api/v1/tenants/dev/workflows"
    steps = [{"id": "one", "type": "action", "action": "core.echo"}]
    made = await world.client.post(
        base, json={"ref": "demo.keyed", "definition": {"steps": steps}}, headers=world.headers["admin"]
    )
    assert made.status_code == 201, made.text

    async def execute(caller: str) -> Any:
        headers = {**world.headers[caller], "Idempotency-Key": "order-1"}
        return await world.client.post(f"{base}/demo.keyed/execute", json={}, headers=headers)

    first = await execute("owner")
    again, other, admin = await execute("owner"), await execute("operator"), await execute("admin")

    assert first.status_code == 202, first.text
    assert (again.status_code, again.json()["executionId"]) == (200, first.json()["executionId"])
    assert (admin.status_code, admin.json()["executionId"]) == (200, first.json()["executionId"])
    assert other.status_code == 409
    assert first.json()["executionId"] not in other.text


async def test_an_execution_says_who_started_it_and_belongs_to_them(world: World) -> None:
    base = "/api/v1/tenants/dev"
    steps = [{"id": "one", "type": "action", "action": "core.echo"}]
    made = await world.client.post(
        f"{base}/workflows", json={"ref": "demo.mine", "definition": {"steps": steps}}, headers=world.headers["admin"]
    )
    assert made.status_code == 201, made.text
    ada, bob = (bearer(token(sub, "dev", ["operator"], timedelta(minutes=5))) for sub in ("ada", "bob"))

    started = await world.client.post(f"{base}/workflows/demo.mine/execute", json={}, headers=ada)
    assert started.status_code == 202, started.text
    execution_id = started.json()["executionId"]
    rerun = await world.client.post(f"{base}/executions/{execution_id}/rerun", json={"fromStep": "one"}, headers=ada)
    assert rerun.status_code == 202, rerun.text

    async def started_by(headers: dict[str, str], who: str) -> dict[str, str]:
        response = await world.client.get(f"{base}/executions", params={"startedBy": who}, headers=headers)
        assert response.status_code == 200, response.text
        return {item["id"]: item["startedBy"] for item in response.json()["items"]}

    ours = {execution_id: "jwt:ada", rerun.json()["executionId"]: "jwt:ada"}
    assert await started_by(ada, "jwt:ada") == ours
    assert await started_by(world.headers["admin"], "jwt:ada") == ours
    assert await started_by(bob, "jwt:ada") == {}  # who may see an execution is unchanged: its owner
    assert await started_by(ada, "ada") == {}
    read = await world.client.get(f"{base}/executions/{execution_id}", headers=ada)
    assert (read.status_code, read.json()["startedBy"]) == (200, "jwt:ada")
    assert (await world.client.get(f"{base}/executions/{execution_id}", headers=bob)).status_code == 404


async def test_a_jwt_naming_an_api_key_is_refused_not_taken_for_the_key(world: World, pool: asyncpg.Pool) -> None:
    owner = await pool.fetchval("SELECT owned_by FROM executions WHERE id = $1", world.execution_id)
    assert owner.startswith("api-key:")
    impostor = bearer(token(owner, "dev", ["operator"], timedelta(minutes=5)))

    read = await world.client.get(f"/api/v1/tenants/dev/executions/{world.execution_id}", headers=impostor)

    assert read.status_code == 401, read.text
    assert (
        await world.client.get(f"/api/v1/tenants/dev/executions/{world.execution_id}", headers=world.headers["owner"])
    ).status_code == 200
