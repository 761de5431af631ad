"""One stack of the four services and one Chromium for every console test; the tests share a tenant and its keys.

The browser is Debian's ``chromium`` (installed by ``scripts/bootstrap.sh``), launched by Playwright with its
``executable_path``: Playwright's own browser download is not reachable from every machine. Each test opens
its own browser context (its own cookies), so sign-ins do not leak between tests.

Screenshots of the main pages go to a temporary folder, or to ``FLOWLINE_UI_SCREENSHOTS`` when it is set
(``FLOWLINE_UI_SCREENSHOTS=docs/images uv run pytest tests/ui`` refreshes the ones the docs show).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowline.db.migrate import ensure_tenant_async
from flowline.runtime.ids import uuid7
from flowline_devstack.processes import ServiceGroup
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.stacks import Servers, fresh_database, services_env, stack_settings_env
from tests.support import api_key, bearer

CHROMIUM_NAMES = ("chromium", "chromium-browser")
JWT_SECRET = "console-tests-hs256-secret-of-32-bytes"
WEBHOOK_RETRY_SCHEDULE = "0.2"


@pytest.fixture(scope="package")
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    async with fresh_database(servers, template_database) as url:
        yield url


@pytest.fixture(scope="package")
def stack(servers: Servers, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    env = {
        **services_env(stack_settings_env(servers, database_url)),
        "FLOWLINE_JWT_HS256_SECRET": JWT_SECRET,
        # A webhook delivery is retried once, right away, then fails: the webhooks page shows a failed one soon.
        "FLOWLINE_WEBHOOK_RETRY_SCHEDULE_SECONDS": WEBHOOK_RETRY_SCHEDULE,
    }
    with ServiceGroup(env, log_dir=tmp_path_factory.mktemp("ui-stack")) as group:
        yield group


@pytest.fixture(scope="package")
def base_url(stack: ServiceGroup) -> str:
    return str(stack["api"].url)


@pytest.fixture(scope="package")
async def tenant(database_url: str) -> str:
    slug = f"ui-{uuid7().hex[-10:]}"
    await ensure_tenant_async(database_url, slug)
    return slug


@pytest.fixture(scope="package")
async def keys(database_url: str, tenant: str) -> dict[str, str]:
    """API keys of the tenant by role, and ``other-tenant``: an admin key of another tenant."""
    other = f"ui-{uuid7().hex[-10:]}"
    await ensure_tenant_async(database_url, other)
    return {
        "admin": await api_key(database_url, tenant, "admin"),
        "operator": await api_key(database_url, tenant, "operator"),
        "viewer": await api_key(database_url, tenant, "viewer"),
        "other-tenant": await api_key(database_url, other, "admin"),
    }


@pytest.fixture
async def api(base_url: str, tenant: str, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The tenant's API with the admin key (to set up workflows and check what the console did)."""
    async with httpx.AsyncClient(
        base_url=f"{base_url}/api/v1/tenants/{tenant}", headers=bearer(keys["admin"]), timeout=30
    ) as client:
        yield client


def chromium_path() -> str:
    """Debian's Chromium (``scripts/bootstrap.sh`` installs it)."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.fail("chromium is not installed: run scripts/bootstrap.sh (apt-get install chromium)")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        await launched.close()


class Console:
    """A browser context on the console, and what it noticed: Content-Security-Policy violations, script errors."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.problems: list[str] = []

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        return page

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(message.text)

    async def sign_in(self, credential: str) -> Page:
        """A page signed in with an API key or a JWT, on the executions list."""
        page = await self.page()
        await page.goto(f"{self.base_url}/ui/login")
        await page.fill("#credential", credential)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/ui/executions")
        return page


@pytest.fixture
async def console(browser: Browser, base_url: str) -> AsyncIterator[Console]:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    opened = Console(context, base_url)
    yield opened
    await context.close()
    assert opened.problems == [], "the pages broke their Content-Security-Policy or threw"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests put their screenshots of the pages."""
    chosen = os.environ.get("FLOWLINE_UI_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
