"""The console's server side in this process (real PostgreSQL and broker): its headers, its session, revoked keys,
and the API's rate limits, which its pages spend from the same budgets as the API's routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from flowline.domain.credentials import parse_key
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]
CSP = "default-src 'none'; script-src 'self'; style-src 'self'"


@pytest.fixture
def limited(settings: Settings) -> Settings:
    """Tiny budgets, per hour so that no window ends during the test."""
    return msgspec.structs.replace(settings, rate_limit_reads="4/hour")


@pytest.fixture
async def console(limited: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(limited), base_url="http://testserver.local") as client:
        yield client


async def sign_in(client: Client, key: str) -> None:
    form = await client.get("/ui/login")
    token = client.cookies["flowline_console_csrf"]
    assert form.status_code == 200 and token in form.text
    signed = await client.post(
        "/ui/login", data={"credential": key, "next": "/ui/agents", "_csrf_token": token}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == "/ui/agents"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert key not in cookie


async def test_pages_send_a_strict_policy_and_sign_in_keeps_a_sealed_cookie(
    console: Client, settings: Settings
) -> None:
    key = await api_key(settings.database_url, "dev", "admin")
    login = await console.get("/ui/login")
    assert login.headers["content-security-policy"].startswith(CSP)
    assert "unsafe" not in login.headers["content-security-policy"]
    assert login.headers["x-content-type-options"] == "nosniff"

    refused = await console.post("/ui/login", data={"credential": key})  # no CSRF token
    assert refused.status_code == 403
    await sign_in(console, key)
    page = await console.get("/ui/agents")
    assert page.status_code == 200 and "<h1>Agents</h1>" in page.text
    assert page.headers["content-security-policy"].startswith(CSP)
    script = await console.get("/ui/static/htmx.org-2.0.11/htmx.min.js")
    assert script.status_code == 200 and "htmx" in script.text


async def test_a_revoked_key_signs_the_console_out(console: Client, settings: Settings) -> None:
    key = await api_key(settings.database_url, "dev", "admin")
    await sign_in(console, key)
    assert (await console.get("/ui/agents")).status_code == 200
    parsed = parse_key(key)
    assert parsed is not None
    revoked = await console.delete(f"/api/v1/tenants/dev/api-keys/{parsed[0]}", headers=bearer(key))
    assert revoked.status_code == 200, revoked.text

    after = await console.get("/ui/agents", follow_redirects=False)
    assert after.status_code == 302
    assert after.headers["location"] == "/ui/login?next=/ui/agents"


async def test_console_pages_spend_the_principals_api_budget(console: Client, settings: Settings) -> None:
    key = await api_key(settings.database_url, "dev", "admin")
    await sign_in(console, key)  # the sign-in form's GET spends an address's budget, not the principal's
    assert (await console.get("/ui/agents")).status_code == 200
    assert (await console.get("/api/v1/tenants/dev/agents", headers=bearer(key))).status_code == 200
    assert (await console.get(f"/ui/executions/{uuid.uuid4()}")).status_code == 404
    assert (await console.get("/ui/workflows")).status_code == 200

    spent = await console.get("/ui/agents")
    assert spent.status_code == 429
    assert "<h1>Too Many Requests</h1>" in spent.text
    assert int(spent.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
async def test_the_console_cookies_are_secure_when_reached_over_https(
    settings: Settings, scheme: str, secure: bool
) -> None:
    key = await api_key(settings.database_url, "dev", "viewer")
    async with AsyncTestClient(create_app(settings), base_url=f"{scheme}://testserver.local") as client:
        form = await client.get("/ui/login")
        csrf_cookie = form.headers["set-cookie"]
        assert csrf_cookie.startswith("flowline_console_csrf=") and "HttpOnly" in csrf_cookie
        token = client.cookies["flowline_console_csrf"]
        signed = await client.post("/ui/login", data={"credential": key, "_csrf_token": token}, follow_redirects=False)
        assert signed.status_code == 303, signed.text
    assert ("Secure" in csrf_cookie) is secure
    assert ("Secure" in signed.headers["set-cookie"]) is secure
