from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flowline.devstack.ports import free_port
from flowline.devstack.processes import ServiceGroup


@pytest.fixture
def stack_env(settings_env: dict[str, str]) -> dict[str, str]:
    """The environment of one test's four services, each on a free port."""
    import os

    return {
        **os.environ,
        **settings_env,
        "FLOWLINE_API_PORT": str(free_port()),
        "FLOWLINE_EXECUTOR_HTTP_PORT": str(free_port()),
        "FLOWLINE_SCHEDULER_HTTP_PORT": str(free_port()),
        "FLOWLINE_LOG_INGEST_HTTP_PORT": str(free_port()),
    }


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceGroup]:
    """The four services as real processes."""
    with ServiceGroup(stack_env, log_dir=tmp_path) as group:
        yield group
