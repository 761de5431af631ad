"""Retention: removes executions whose root finished longer ago than its workflow keeps them, and old audit rows."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from flowline.db.retention import (
    RetentionCutoff,
    delete_old_audit_rows,
    lock_removable_roots,
    oldest_removable,
    retention_cutoffs,
)
from flowline.domain.removal import Remover
from flowline.runtime.loops import LoopService

from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)

# A pass stops after this long and the next starts at once: the "behind" gauge and log line stay current
# however large the backlog.
PASS_SECONDS = 60.0
# How far past its retention the oldest removable execution may be before a pass says it fell behind.
BEHIND_WARNING_SECONDS = 60.0
# The most roots a batch archives: their documents (task logs included) are built in memory, and each file is
# flushed to disk while the batch's transaction is open.
ARCHIVED_BATCH = 50


@dataclass(frozen=True, slots=True)
class RetentionPeriods:
    """How long executions (by default; a workflow may say otherwise) and audit rows are kept, in seconds."""

    executions: int
    audit: int


class RetentionLoop(LoopService):
    """Removes whole execution trees past their retention, in small batches, oldest first within each workflow.

    Each batch is one short transaction: it locks up to ``batch_size`` finished roots of one workflow with
    ``FOR UPDATE SKIP LOCKED``, then their descendants, and removes them with all their rows (archived first
    when ``archive_dir`` is set). Schedulers running side by side take different roots and never wait on one
    another; a scheduler that dies mid-batch leaves the batch whole for the next pass. Nothing but the finished
    rows being removed is locked, so starts and reads never wait on it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: SchedulerMetrics,
        periods: RetentionPeriods,
        *,
        interval_seconds: float,
        batch_size: int,
        archive_dir: Path | None,
    ) -> None:
        super().__init__("retention", interval_seconds)
        self._pool = pool
        self._metrics = metrics
        self._periods = periods
        self._batch_size = batch_size if archive_dir is None else min(batch_size, ARCHIVED_BATCH)
        self._remover = Remover(archive_dir)

    async def run_once(self) -> None:
        """One pass: every workflow's removable roots and the old audit rows, or as much as ``PASS_SECONDS`` allows."""
        deadline = time.monotonic() + PASS_SECONDS
        started = datetime.now(UTC)
        kept: list[uuid.UUID] = []
        removed = 0
        async with self._pool.acquire() as connection:
            cutoffs = await retention_cutoffs(connection, default_seconds=self._periods.executions)
        for cutoff in cutoffs:
            while time.monotonic() < deadline:
                count, more = await self.run_batch(cutoff, kept)
                removed += count
                if not more:
                    break
        while time.monotonic() < deadline and await self._remove_audit_rows():
            pass
        behind = await self._behind(cutoffs, kept, started)
        self._metrics.retention_behind.set(behind)
        if behind > BEHIND_WARNING_SECONDS:
            logger.warning(
                "retention is behind: the oldest removable execution has been past its retention for %.0f s "
                "(this pass removed %d root executions, %d kept)",
                behind,
                removed,
                len(kept),
            )
        if time.monotonic() >= deadline:
            self.wake()  # more is left: the next pass starts at once

    async def run_batch(self, cutoff: RetentionCutoff, kept: list[uuid.UUID]) -> tuple[int, bool]:
        """Remove one batch of a workflow's removable roots, in one transaction; ``kept`` gathers those that stay.

        Returns:
            How many roots were removed, and whether the workflow may have more.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            roots = await lock_removable_roots(connection, cutoff, passed=kept, limit=self._batch_size)
            if not roots:
                return 0, False
            removal = await self._remover.remove_roots(connection, roots)
        kept.extend(removal.kept)
        for table, count in removal.rows.items():
            self._metrics.retention_removed_rows.labels(table).inc(count)
        if removal.not_archived:
            self._metrics.retention_not_archived.inc(len(removal.not_archived))
        return len(removal.removed), len(roots) == self._batch_size

    async def _remove_audit_rows(self) -> bool:
        """Remove one batch of audit rows past their retention; whether there may be more."""
        async with self._pool.acquire() as connection:
            count = await delete_old_audit_rows(
                connection, retention_seconds=self._periods.audit, limit=self._batch_size * 10
            )
        self._metrics.retention_removed_rows.labels("audit_logs").inc(count)
        return count == self._batch_size * 10

    async def _behind(self, cutoffs: list[RetentionCutoff], kept: list[uuid.UUID], started: datetime) -> float:
        """How long the oldest execution still removable has been past its retention, in seconds (0: none is)."""
        elapsed = datetime.now(UTC) - started
        behind = timedelta(0)
        async with self._pool.acquire() as connection:
            for cutoff in cutoffs:
                oldest = await oldest_removable(connection, cutoff, passed=kept)
                if oldest is not None:
                    behind = max(behind, cutoff.cutoff + elapsed - oldest)
        return behind.total_seconds()
