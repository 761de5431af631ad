from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from flowline.runtime.service import Runtime
from flowline.settings import Settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Pool, producer (topics created) and outbox publisher for one test."""
    runtime = await Runtime.open(settings)
    yield runtime
    await runtime.close()
