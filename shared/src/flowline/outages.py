"""Errors that mean a dependency (PostgreSQL, Kafka) is unavailable: wait and retry, or answer 503."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaError

OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.OperatorInterventionError,  # the server is shutting down or restarting
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    KafkaError,
)
