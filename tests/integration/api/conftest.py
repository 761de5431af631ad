from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The api in this process over the test's real database and broker, addressed relative to tenant ``dev``."""
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local/api/v1/tenants/dev/") as client:
        yield client
