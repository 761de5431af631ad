"""Starting many executions at once, set-based: the schedule loop starts a pass's runs in one statement."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg

from flowline.db.sql import bind
from flowline.db.workflows import read_workflow
from flowline.domain.starting import (
    Inserted,
    NewExecution,
    StartedExecution,
    StartRequest,
    WorkflowCache,
    execution_lock_order,
    existing_execution,
    insert_executions,
    may_start,
    new_execution,
)
from flowline.errors import Conflict, FlowlineError
from flowline.runtime.outages import is_outage
from flowline.settings import Topics

WorkflowKey = tuple[uuid.UUID, str, int | None]  # tenant, workflow ref, version (None: the latest)


async def _by_idempotency_keys(
    connection: asyncpg.Connection | asyncpg.Pool, starts: Sequence[StartRequest]
) -> dict[tuple[uuid.UUID, str | None], asyncpg.Record]:
    """The executions started with the idempotency keys of ``starts``, by tenant and key, in one statement."""
    records = await connection.fetch(
        *bind(
            "SELECT e.tenant_id, e.idempotency_key, e.id, e.status, e.created_at, e.workflow_ref "
            "FROM unnest(:tenant_id::uuid[], :idempotency_key::text[]) AS k(tenant_id, idempotency_key) "
            "JOIN executions e ON e.tenant_id = k.tenant_id AND e.idempotency_key = k.idempotency_key",
            tenant_id=[start.tenant_id for start in starts],
            idempotency_key=[start.idempotency_key for start in starts],
        )
    )
    return {(record["tenant_id"], record["idempotency_key"]): record for record in records}


class _Round(NamedTuple):
    """What one round of ``start_executions`` prepared.

    ``new``: the executions to insert, by the start's position; ``again``: the starts whose kept workflow
    refused their input, for a round with the stored workflow.
    """

    new: dict[int, NewExecution]
    again: list[int]


async def _prepare(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    starts: Sequence[StartRequest],
    positions: list[int],
    workflows: WorkflowCache,
    results: list[StartedExecution | Exception | None],
    *,
    fresh: bool,
    created_at: datetime | None = None,
) -> _Round:
    """The executions of the starts at ``positions``, each workflow kept (unless ``fresh``) or read once.

    ``created_at``: see ``new_execution``.
    """
    prepared = _Round({}, [])
    read: dict[WorkflowKey, asyncpg.Record | FlowlineError] = {}
    for position in positions:
        start = starts[position]
        key: WorkflowKey = (start.tenant_id, start.workflow_ref, start.version)
        kept = None if fresh else workflows.get(*key)
        if kept is None and key not in read:
            try:
                read[key] = await read_workflow(connection, *key)
                workflows.keep(*key, read[key])
            except FlowlineError as err:
                read[key] = err
        workflow = kept if kept is not None else read[key]
        try:
            if isinstance(workflow, FlowlineError):
                raise workflow
            if may_start(start, workflow, kept=kept is not None):
                prepared.new[position] = new_execution(topics, start, workflow, created_at=created_at)
            else:
                prepared.again.append(position)
        except Exception as err:  # a start that cannot be built (a bug, say) spoils no other
            results[position] = err
    return prepared


async def prepare_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    starts: Sequence[StartRequest],
    *,
    workflows: WorkflowCache,
    created_at: datetime,
) -> list[NewExecution | None]:
    """The executions ``start_executions`` would insert for ``starts``, built ahead of ``created_at``, in order.

    None for a start that cannot be built ahead (its workflow unknown or disabled, its input refused): leave
    that start to ``start_executions`` at its time, which says why. Insert the others together, as
    ``insert_executions`` or ``insert_staged_executions`` do (either checks their workflows are still as read).
    """
    failed: list[StartedExecution | Exception | None] = [None] * len(starts)
    prepared = await _prepare(
        connection, topics, starts, list(range(len(starts))), workflows, failed, fresh=False, created_at=created_at
    )
    return [prepared.new.get(position) for position in range(len(starts))]


async def _insert_each_alone_on_failure(
    connection: asyncpg.Connection | asyncpg.Pool, executions: list[NewExecution]
) -> list[Inserted | Exception]:
    """``insert_executions``; when it fails for another reason than an outage, each alone, so only one fails."""
    try:
        return list(await insert_executions(connection, executions))
    except Exception as err:
        if len(executions) == 1 or is_outage(err):
            raise
    results: list[Inserted | Exception] = []
    for execution in executions:
        try:
            results.extend(await insert_executions(connection, [execution]))
        except Exception as alone:
            if is_outage(alone):
                raise
            results.append(alone)
    return results


async def start_executions(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    starts: Sequence[StartRequest],
    *,
    workflows: WorkflowCache,
) -> list[StartedExecution | Exception]:
    """Start ``starts`` together, each as ``start_execution`` would: what became of each, in their order.

    One statement inserts them all, however many: before it, a read of each workflow not in ``workflows``;
    another round only for starts whose workflow changed meanwhile. Where ``start_execution`` looks a key up
    before it starts, here the insert skips the keys that are taken, and one statement after it looks up only
    the starts it skipped or that failed: a start made before is returned as it is (``created`` False),
    whatever became of its workflow since. A start that cannot start has its error in its place and spoils
    no other. The insert commits by itself unless ``connection`` is in a transaction; publish the outbox rows
    after that.
    """
    results: list[StartedExecution | Exception | None] = [None] * len(starts)
    positions, fresh, taken = list(range(len(starts))), False, set()
    while positions:  # until each workflow stays as read for the length of one statement
        prepared = await _prepare(connection, topics, starts, positions, workflows, results, fresh=fresh)
        ordered = sorted(prepared.new.items(), key=lambda item: execution_lock_order(item[1]))
        inserted = await _insert_each_alone_on_failure(connection, [new for _, new in ordered]) if ordered else []
        positions, fresh = prepared.again, True
        for (position, new), outcome in zip(ordered, inserted, strict=True):
            if isinstance(outcome, Exception):
                results[position] = outcome
            elif not outcome.current:
                positions.append(position)
            elif outcome.created_at is None:  # its key is taken: by which execution is looked up below
                taken.add(position)
            else:
                results[position] = StartedExecution(new.id, "pending", outcome.created_at, True, new.outbox)
    return await _resolve_keys(connection, starts, results, taken)


async def _resolve_keys(
    connection: asyncpg.Connection | asyncpg.Pool,
    starts: Sequence[StartRequest],
    results: list[StartedExecution | Exception | None],
    taken: set[int],
) -> list[StartedExecution | Exception]:
    """The results, with the starts whose key was taken, or that failed, answered by the execution of their key."""
    keyed = [
        position
        for position, start in enumerate(starts)
        if start.idempotency_key is not None and (position in taken or isinstance(results[position], FlowlineError))
    ]
    existing = await _by_idempotency_keys(connection, [starts[position] for position in keyed]) if keyed else {}
    for position in keyed:
        start = starts[position]
        assert start.idempotency_key is not None
        if (record := existing.get((start.tenant_id, start.idempotency_key))) is not None:
            try:
                results[position] = existing_execution(record, start.workflow_ref, start.idempotency_key)
            except Conflict as err:
                results[position] = err
        elif position in taken:  # its execution went (retention) between the insert and the look-up
            results[position] = Conflict(f"idempotency key {start.idempotency_key!r} is taken")
    done = [result for result in results if result is not None]
    assert len(done) == len(starts)  # each start was answered in one of the rounds or by its key
    return done
