"""The suite's servers and the pieces of a stack's environment, shared by the conftest files."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from cryptography.fernet import Fernet
from flowline.runtime.outbound import LOOPBACK_NETWORKS


@dataclass(frozen=True)
class Servers:
    """Where the suite's PostgreSQL server and Kafka broker answer."""

    database_url: str  # a database on the server in which tests may create databases
    kafka_bootstrap: str


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_database(servers: Servers, template_database: str) -> AsyncIterator[str]:
    """A new database copied from the migrated template, dropped on exit."""
    name = f"flowline_test_{uuid.uuid4().hex[:12]}"
    # FILE_COPY copies the small template in about a fifth of WAL_LOG's time (PostgreSQL 15's default).
    await admin(servers.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY')
    try:
        yield with_database(servers.database_url, name)
    finally:
        await admin(servers.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stack_settings_env(servers: Servers, database_url: str) -> dict[str, str]:
    """FLOWLINE_* variables of one stack: its database, its own topics and consumer groups."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return {
        "FLOWLINE_DATABASE_URL": database_url,
        "FLOWLINE_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "FLOWLINE_TOPIC_PREFIX": prefix,
        "FLOWLINE_CONSUMER_GROUP_PREFIX": prefix,
        "FLOWLINE_LEASE_SECONDS": "3",
        "FLOWLINE_OUTBOX_RELAY_GRACE_SECONDS": "0.5",
        "FLOWLINE_OUTBOX_RELAY_INTERVAL_SECONDS": "0.2",
        "FLOWLINE_CONSUMER_MAX_FAILURES": "3",
        # A killed service's partitions move on sooner (6 s is the lowest Apache Kafka allows by default).
        "FLOWLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "FLOWLINE_SECRET_KEY": Fernet.generate_key().decode(),
        # Agents and http steps in tests call local servers (CountingServer on 127.0.0.1).
        "FLOWLINE_OUTBOUND_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
    }


def services_env(settings_env: dict[str, str]) -> dict[str, str]:
    """The environment of four services, each on a free port."""
    from tests.ports import free_port

    return {
        **os.environ,
        **settings_env,
        "FLOWLINE_API_PORT": str(free_port()),
        "FLOWLINE_EXECUTOR_HTTP_PORT": str(free_port()),
        "FLOWLINE_SCHEDULER_HTTP_PORT": str(free_port()),
        "FLOWLINE_LOG_INGEST_HTTP_PORT": str(free_port()),
    }


def own_stack_env(servers: Servers, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of another stack over ``database_url``: its own ports, topics and groups."""
    return {**services_env(stack_settings_env(servers, database_url)), **settings}
