"""Servers for the whole suite, found in this order (DESIGN §9): URLs from the environment
(FLOWLINE_DATABASE_URL, FLOWLINE_KAFKA_BOOTSTRAP), testcontainers when a Docker engine answers,
otherwise a private PostgreSQL from the local binaries and a Tansu broker, started once per session.
Each test gets its own database (a copy of a migrated template) and its own topic prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from flowline.db.migrate import ensure_tenant, upgrade_head
from flowline.db.pool import create_pool
from flowline.settings import Settings, load_settings
from flowline_devstack.processes import ServiceGroup

from tests.stacks import Servers, admin, fresh_database, services_env, stack_settings_env, with_database


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _local_servers(base: Path) -> Iterator[Servers]:
    from flowline_devstack.broker import TansuBroker
    from flowline_devstack.postgres import PrivatePostgres

    from tests.ports import free_port

    # Not under pytest's temp folder: pytest makes it root-only at every session start, and the server runs
    # as the unprivileged `postgres` user when the suite runs as root.
    postgres = PrivatePostgres.temporary(free_port())
    broker = TansuBroker(free_port(), log_path=base / "tansu.log")
    postgres.start()
    try:
        broker.start()
        try:
            yield Servers(postgres.url, broker.bootstrap)
        finally:
            broker.stop()
    finally:
        postgres.remove()


@contextlib.contextmanager
def _container_servers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver=None) as postgres, KafkaContainer() as kafka:
        yield Servers(postgres.get_connection_url(), kafka.get_bootstrap_server())


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    database_url = os.environ.get("FLOWLINE_DATABASE_URL")
    kafka_bootstrap = os.environ.get("FLOWLINE_KAFKA_BOOTSTRAP")
    if database_url and kafka_bootstrap:
        yield Servers(database_url, kafka_bootstrap)
    elif _docker_answers():
        with _container_servers() as found:
            yield found
    else:
        with _local_servers(tmp_path_factory.mktemp("servers")) as found:
            yield found


@pytest.fixture(scope="session")
def template_database(servers: Servers) -> Iterator[str]:
    """A database migrated to head with the tenant ``dev``; tests copy it."""
    name = f"flowline_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(servers.database_url, f'CREATE DATABASE "{name}"'))
    url = with_database(servers.database_url, name)
    upgrade_head(url)
    ensure_tenant(url, "dev")
    yield name
    asyncio.run(admin(servers.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    """A fresh database for one test."""
    async with fresh_database(servers, template_database) as url:
        yield url


@pytest.fixture
def settings_env(servers: Servers, database_url: str) -> dict[str, str]:
    """FLOWLINE_* variables of one test's stack."""
    return stack_settings_env(servers, database_url)


@pytest.fixture
def stack_env(settings_env: dict[str, str]) -> dict[str, str]:
    """The environment of one test's four services."""
    return services_env(settings_env)


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceGroup]:
    """The four services as real processes, their output in the test's temporary folder."""
    with ServiceGroup(stack_env, log_dir=tmp_path) as group:
        yield group


@pytest.fixture
def settings(settings_env: dict[str, str]) -> Settings:
    return load_settings(settings_env)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    yield pool
    await pool.close()
