from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The api in this process over the test's real database and broker (see ``admin_client``)."""
    async with admin_client(settings) as client:
        yield client
