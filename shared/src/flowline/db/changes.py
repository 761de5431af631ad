"""A state change's last statement: its events and outbox rows appended with what the change carries along.

Every change of an execution ends with one statement that moves the execution's event counter, appends the
events and enqueues the outbox rows (``flowline.db.events.appending``). It carries the change's pending attempt
results (``flowline.db.attempts.Carrying``) or, for a new execution's start worked out ahead of its lock, the
execution's steps and attempts: one round trip per change, the executor's hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from flowline.db.attempts import (
    FINISHED_STEPS,
    INSERTING_NEW_ATTEMPTS,
    Carrying,
    NewAttempt,
    SettledStep,
    new_attempts_params,
    settled_steps,
)
from flowline.db.events import Appending
from flowline.db.sql import bind
from flowline.db.steps import StepRow, inserting_steps, steps_params

# A new execution's steps and the attempts it ran or started go in only if the execution is as it was created
# (``sequenced`` moved the counter).
_NEW_STEPS_AND_ATTEMPTS = f"{inserting_steps('EXISTS (SELECT FROM sequenced)')}, {INSERTING_NEW_ATTEMPTS}"


class AppendedChange(NamedTuple):
    """What a change's last statement did: whether it moved the event counter, and what its results settled."""

    sequenced: int  # 1 when it moved the counter, 0 when the execution was not where the change expected
    settled: list[SettledStep]


async def append_change(connection: asyncpg.Connection, carrying: Carrying, append: Appending) -> AppendedChange:
    """Append a change's events and outbox rows (``append``) with its pending attempt results (``carrying``)."""
    with_finished = f", f.* FROM (SELECT) AS one LEFT JOIN ({FINISHED_STEPS}) AS f ON true" if carrying.ctes else ""
    records = await connection.fetch(
        *bind(
            f"WITH {carrying.ctes} {append.ctes} SELECT (SELECT count(*) FROM sequenced) AS sequenced{with_finished}",
            carrying.params,
            append.params,
        )
    )
    return AppendedChange(records[0]["sequenced"], settled_steps(records) if carrying.ctes else [])


async def create_started_execution(
    connection: asyncpg.Connection,
    append: Appending,
    steps: dict[str, StepRow],
    attempts: Sequence[NewAttempt],
    *,
    worker: str,
    lease_seconds: float,
) -> bool:
    """Write a new execution's start worked out ahead of its lock: its ``steps``, ``attempts`` and ``append``.

    Returns:
        Whether it was written: nothing is unless the execution is still at its first event.
    """
    written: int = await connection.fetchval(
        *bind(
            f"WITH {append.ctes}, {_NEW_STEPS_AND_ATTEMPTS} SELECT count(*) FROM sequenced",
            steps_params(steps),
            new_attempts_params(attempts),
            append.params,
            worker=worker,
            lease_seconds=lease_seconds,
        )
    )
    return bool(written)
