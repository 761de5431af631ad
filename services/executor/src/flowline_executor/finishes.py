"""Finished attempts of one state change, written together by whichever statement of the change comes next.

A step's result is usually followed, in the same change, by the start of the next step's attempt or by the
end of the execution, and the results of instant actions (see ``attempts.runs_here``) gather until one of
those. Written as CTEs of that statement (``flowline.db.attempts.FINISHING_ATTEMPTS``) they cost no round trip
of their own. They touch only their steps and attempts, which nothing else in that statement reads, so no
statement needs to see them earlier; any other statement of the change is preceded by ``Finishes.flush``, so
it sees them written.
"""

from __future__ import annotations

import uuid

import asyncpg
from flowline.db.attempts import (
    FINISHING_ATTEMPTS,
    NOTHING_CARRIED,
    Carrying,
    FinishedAttempt,
    SettledStep,
    finish_attempts,
    finishing_params,
)

from flowline_executor.metrics import Outcomes


class Finishes:
    """The finished attempts of one change not yet written."""

    def __init__(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, worker: str) -> None:
        self._owner = {"tenant_id": tenant_id, "execution_id": execution_id, "worker": worker}
        self._pending: list[FinishedAttempt] = []

    def add(self, attempt: FinishedAttempt) -> None:
        """Keep an attempt's result for the change's next statement."""
        self._pending.append(attempt)

    def carry(self) -> Carrying:
        """The pending results as CTEs (ending in a comma) and their named parameters (``NOTHING_CARRIED``: none).

        The statement that takes them must select ``FINISHED_STEPS`` (with its own rows, if any) and hand the
        steps it settled to ``carried``.
        """
        if not self._pending:
            return NOTHING_CARRIED
        params = finishing_params(self._pending) | self._owner
        self._pending = []
        return Carrying(FINISHING_ATTEMPTS + ",", params)

    def take(self) -> list[FinishedAttempt]:
        """The pending results, for a statement that writes their steps' rows whole (a new execution's)."""
        pending, self._pending = self._pending, []
        return pending

    async def flush(self, connection: asyncpg.Connection, outcomes: Outcomes) -> None:
        """Write the pending results now, before a statement that does not carry them."""
        carrying = self.carry()
        if carrying.ctes:
            self.carried(await finish_attempts(connection, carrying), outcomes)

    @staticmethod
    def carried(settled: list[SettledStep], outcomes: Outcomes) -> None:
        """Count the steps a carrying statement finished (a step waiting for its next attempt has not)."""
        outcomes.steps_finished.extend(
            (step.step_type, step.step_status, step.seconds) for step in settled if step.step_status != "scheduled"
        )
