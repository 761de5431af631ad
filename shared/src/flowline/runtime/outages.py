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


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` means a dependency is unavailable, rather than that the work at hand is at fault.

    asyncpg refuses an argument it cannot send (an integer beyond 64 bits, say) with an ``InterfaceError`` that
    is also a ``ValueError`` (its client-side ``DataError``): the data's fault, which no retry cures.
    """
    return not _refused_argument(err) and isinstance(err, OUTAGE_ERRORS)


def _refused_argument(err: BaseException) -> bool:
    return isinstance(err, asyncpg.InterfaceError) and isinstance(err, ValueError)


def is_data_error(err: BaseException) -> bool:
    """Whether ``err`` is PostgreSQL (or asyncpg, before sending) refusing a value: the data's fault, not an outage.

    A value out of a column's range, text with a NUL character, an integer beyond 64 bits: no retry cures them.
    """
    return isinstance(err, asyncpg.DataError) or _refused_argument(err)
