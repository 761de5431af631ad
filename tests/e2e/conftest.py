"""One stack of the four services for every end-to-end test, each test in a tenant of its own.

Starting four processes and waiting for them takes seconds; sharing them keeps the suite within its time
budget. A fresh tenant per test keeps the tests apart (workflow refs, packs, agents and idempotency keys all
belong to a tenant), so none depends on what another one left behind. A module that needs other settings
runs a stack of its own on a database of its own (as ``test_streams`` does): two stacks on one database
fire each other's timers and publish what follows on their own topics.

The stack is package-scoped (this folder is a package for that): it stops after the last end-to-end test
instead of idling, and costing CPU, through the rest of the suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from flowline.db.migrate import ensure_tenant_async
from flowline.runtime.ids import uuid7
from flowline_devstack.processes import ServiceGroup

from tests.stacks import Servers, fresh_database, services_env, stack_settings_env
from tests.support import api_key, bearer


@pytest.fixture(scope="package")
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    async with fresh_database(servers, template_database) as url:
        yield url


@pytest.fixture(scope="package")
def settings_env(servers: Servers, database_url: str) -> dict[str, str]:
    return stack_settings_env(servers, database_url)


@pytest.fixture(scope="package")
def stack_env(settings_env: dict[str, str]) -> dict[str, str]:
    return services_env(settings_env)


@pytest.fixture(scope="package")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    with ServiceGroup(stack_env, log_dir=tmp_path_factory.mktemp("stack")) as group:
        yield group


@pytest.fixture
async def tenant(database_url: str) -> str:
    """The slug of a tenant made for this test alone."""
    slug = f"t-{uuid7().hex[-12:]}"
    await ensure_tenant_async(database_url, slug)
    return slug


@pytest.fixture
async def api_headers(database_url: str, tenant: str) -> dict[str, str]:
    """The credentials of this test: an admin API key of its tenant."""
    return bearer(await api_key(database_url, tenant))


@pytest.fixture
def api_url(stack: ServiceGroup, tenant: str) -> str:
    """The base URL of this test's tenant routes."""
    return f"{stack['api'].url}/api/v1/tenants/{tenant}"
