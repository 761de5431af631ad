"""Starting an execution: shared by the api (REST) and the executor (SubmitExecution on Kafka)."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import asyncpg

from flowline.db.audit import Actor
from flowline.db.events import NewEvent, event_rows
from flowline.db.workflows import read_workflow
from flowline.errors import Conflict, ValidationFailed
from flowline.ids import uuid7
from flowline.jsonschemas import check_instance
from flowline.kafka.outbox import OutboxRow, outgoing
from flowline.messages import ExecutionRequested
from flowline.settings import Topics
from flowline.snapshots import WorkflowSnapshot

TERMINAL_EXECUTION_STATUSES = frozenset({"completed", "failed", "cancelled"})


class ParentStep(NamedTuple):
    """The workflow step a child execution runs for."""

    execution_id: uuid.UUID
    step_id: str
    root_execution_id: uuid.UUID


class Rerun(NamedTuple):
    """The execution a rerun reuses, and the step from which it runs again."""

    execution_id: uuid.UUID
    from_step: str


class WorkflowCache:
    """Workflows (each with the version a start uses) that this process started lately, so as not to read them again.

    Nothing here is trusted: the statement that starts an execution checks that its workflow is still live,
    enabled and, unless a version was asked for, still at that latest version, and a start that finds it
    changed reads it again. Versions never change, so their input schemas are safe to keep.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._records: dict[tuple[uuid.UUID, str, int | None], asyncpg.Record] = {}

    def get(self, tenant_id: uuid.UUID, ref: str, version: int | None) -> asyncpg.Record | None:
        """The workflow a start of ``ref`` (at ``version``, or its latest) used last, if kept."""
        return self._records.get((tenant_id, ref, version))

    def keep(self, tenant_id: uuid.UUID, ref: str, version: int | None, workflow: asyncpg.Record) -> None:
        """Remember the workflow a start has just used."""
        if len(self._records) >= self._max_entries:
            self._records.clear()
        self._records[(tenant_id, ref, version)] = workflow

    def forget(self, tenant_id: uuid.UUID, ref: str, version: int | None) -> None:
        """Drop a workflow that changed since it was kept."""
        self._records.pop((tenant_id, ref, version), None)


class StartedExecution(NamedTuple):
    """The execution a start request resolved to."""

    id: uuid.UUID
    status: str
    created_at: Any
    created: bool  # False when an earlier request with the same idempotency key started it
    outbox: list[OutboxRow]


async def _by_idempotency_key(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, idempotency_key: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT id, status, created_at, workflow_ref FROM executions WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        idempotency_key,
    )


def _existing(record: asyncpg.Record, workflow_ref: str, idempotency_key: str) -> StartedExecution:
    if record["workflow_ref"] != workflow_ref:
        raise Conflict(
            f"idempotency key {idempotency_key!r} was used for an execution of {record['workflow_ref']!r}, "
            f"not {workflow_ref!r}"
        )
    return StartedExecution(record["id"], record["status"], record["created_at"], False, [])


async def start_execution(
    connection: asyncpg.Connection,
    topics: Topics,
    *,
    tenant_id: uuid.UUID,
    workflow_ref: str,
    version: int | None,
    execution_input: dict[str, Any],
    idempotency_key: str | None,
    triggered_by: str,
    started_by: str | None = None,
    metadata: dict[str, str] | None = None,
    tags: list[str] | None = None,
    parent: ParentStep | None = None,
    rerun: Rerun | None = None,
    audit: Actor | None = None,
    workflows: WorkflowCache | None = None,
) -> StartedExecution:
    """Create a pending execution with its first event and the ExecutionRequested outbox row.

    Runs in the caller's transaction; publish ``outbox`` after the commit. A repeated idempotency key
    returns the existing execution and writes nothing. One statement writes the execution, its first event
    (sequence 1), the outbox rows and, with ``audit``, the ``start`` audit row: atomic without a transaction
    of the caller's (the api needs none), and one round trip; with ``workflows`` holding the workflow, the
    only one.

    Raises:
        NotFound: unknown workflow or version.
        Conflict: the workflow is disabled, or the idempotency key started another workflow.
        ValidationFailed: the input does not match the workflow's input schema.
    """
    if idempotency_key is not None and (existing := await _by_idempotency_key(connection, tenant_id, idempotency_key)):
        return _existing(existing, workflow_ref, idempotency_key)

    async def start(workflow: asyncpg.Record, *, kept: bool) -> StartedExecution | None:
        """Start the execution with ``workflow``; None when the workflow is no longer as read (or kept).

        A workflow kept from an earlier start is judged again by the stored one rather than refused.
        """
        if not workflow["enabled"]:
            raise Conflict(f"workflow {workflow_ref!r} is disabled")  # never kept: the stored workflow says so
        if workflow["input_schema"] is not None:
            try:
                check_instance(workflow["input_schema"], execution_input, "/input")
            except ValidationFailed:
                if kept:  # by the schema of a version that may no longer be the one to start
                    return None
                raise
        execution_id = uuid7()
        created_event = NewEvent(
            "WORKFLOW_CREATED",
            WorkflowSnapshot(status="pending", workflow_ref=workflow_ref, workflow_version=workflow["version"]),
        )
        now, snapshots, rows = event_rows(tenant_id, execution_id, 1, [created_event], topics.events)
        rows.append(
            outgoing(
                topics.requests,
                ExecutionRequested(
                    tenant_id=tenant_id, execution_id=execution_id, workflow_version_id=workflow["version_id"]
                ),
            )
        )
        audited = (
            """, audited AS (
                INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action, principal, changes, request_id)
                SELECT $26, $2, 'execution', $1::text, 'start', $27, $28, $29 FROM created
            )"""
            if audit
            else ""
        )
        record = await connection.fetchrow(
            f"""
            WITH workflow AS (  -- still as read: live, enabled and (unless $25, a version asked for) at this version
                SELECT 1 FROM workflows w
                WHERE w.id = $3 AND w.enabled AND w.deleted_at IS NULL AND ($25 OR w.latest_version = $6)
            ), created AS (
                INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version,
                    status, input, root_execution_id, triggered_by, started_by, idempotency_key, metadata, tags,
                    parent_execution_id, parent_step_id, rerun_of, rerun_from_step, last_event_sequence)
                SELECT $1::uuid, $2, $3, $4, $5, $6, 'pending', $7, coalesce($13::uuid, $1::uuid), $8, $9, $10, $11,
                    $12, $14::uuid, $15::text, $16::uuid, $17::text, 1
                FROM workflow
                ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, status, created_at
            ), appended AS (
                INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, task_id, data,
                    occurred_at)
                SELECT id, 1, $2, 'WORKFLOW_CREATED', NULL, NULL, $18::jsonb, $19 FROM created
            ), queued AS (
                INSERT INTO outbox (id, topic, key, payload, request_id)
                SELECT o.* FROM unnest($20::uuid[], $21::text[], $22::bytea[], $23::bytea[], $24::text[])
                    AS o(id, topic, key, payload, request_id), created
            ){audited}
            SELECT c.id, c.status, c.created_at, EXISTS (SELECT FROM workflow) AS current
            FROM (SELECT) AS one LEFT JOIN created c ON true
            """,
            execution_id,
            tenant_id,
            workflow["id"],
            workflow["version_id"],
            workflow_ref,
            workflow["version"],
            execution_input,
            triggered_by,
            started_by,
            idempotency_key,
            metadata or {},
            tags or [],
            parent.root_execution_id if parent else None,
            parent.execution_id if parent else None,
            parent.step_id if parent else None,
            rerun.execution_id if rerun else None,
            rerun.from_step if rerun else None,
            snapshots[0],
            now,
            [row.id for row in rows],
            [row.topic for row in rows],
            [row.key for row in rows],
            [row.payload for row in rows],
            [row.request_id for row in rows],
            version is not None,
            *(
                (uuid7(), audit.principal, {"workflow": {"before": None, "after": workflow_ref}}, audit.request_id)
                if audit
                else ()
            ),
        )
        if not record["current"]:
            return None
        if record["id"] is None:  # a concurrent request with the same key won the race
            assert idempotency_key is not None
            return _existing(
                await _by_idempotency_key(connection, tenant_id, idempotency_key), workflow_ref, idempotency_key
            )
        return StartedExecution(execution_id, "pending", record["created_at"], True, rows)

    if workflows is not None and (kept := workflows.get(tenant_id, workflow_ref, version)) is not None:
        if (started := await start(kept, kept=True)) is not None:
            return started
    while True:  # until the workflow stays as read for the length of one statement
        workflow = await read_workflow(connection, tenant_id, workflow_ref, version)
        if (started := await start(workflow, kept=False)) is not None:
            if workflows is not None:
                workflows.keep(tenant_id, workflow_ref, version, workflow)
            return started
