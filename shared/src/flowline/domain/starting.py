"""Starting an execution: shared by the api (REST) and the executor (SubmitExecution on Kafka)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from flowline.db.audit import Actor
from flowline.db.events import NewEvent, event_rows
from flowline.db.sql import bind
from flowline.db.workflows import read_workflow
from flowline.domain.jsonschemas import check_instance
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.errors import Conflict, ValidationFailed
from flowline.kafka.outbox import OutboxRow, outgoing
from flowline.messages import CreatedExecution, ExecutionRequested
from flowline.runtime.batches import Batches, Pending
from flowline.runtime.caches import BoundedCache
from flowline.runtime.ids import uuid7
from flowline.runtime.outages import is_outage
from flowline.settings import Topics

# The sequence of an execution's first event, WORKFLOW_CREATED, written with the execution.
CREATED_SEQUENCE = 1
# A new execution travels in its ExecutionRequested (``created``) while the message stays within this size; a
# larger input is read from the database, so that requests stay far below the broker's message size limit.
CARRIED_REQUEST_BYTES = 64 * 1024
# Who started an execution, its ``started_by``: a caller of the api (``api-key:<id>``, ``jwt:<sub>``: see
# ``caller_started_by``), a schedule (``schedule:<id>``), a SubmitExecution on Kafka (``kafka``) or a workflow step
# of another execution (``parent:<execution id>``). It decides nothing: who may see an execution is ``owned_by``.
KAFKA_STARTED_BY = "kafka"


def caller_started_by(subject: str) -> str:
    """The ``started_by`` of an api caller's execution: an API key's subject as it is, a JWT's as ``jwt:<sub>``."""
    return subject if subject.startswith("api-key:") else f"jwt:{subject}"


def parent_started_by(parent_execution_id: uuid.UUID) -> str:
    """The ``started_by`` of a child execution, started by a workflow step of ``parent_execution_id``."""
    return f"parent:{parent_execution_id}"


class ParentStep(NamedTuple):
    """The workflow step a child execution runs for."""

    execution_id: uuid.UUID
    step_id: str
    root_execution_id: uuid.UUID


class ScheduledRun(NamedTuple):
    """The schedule an execution runs for, and the logical time it stands for."""

    schedule_id: uuid.UUID
    scheduled_for: datetime


class Rerun(NamedTuple):
    """The execution a rerun reuses, and the step from which it runs again."""

    execution_id: uuid.UUID
    from_step: str


class WorkflowCache:
    """Workflows (each with the version a start uses) that this process started lately, so as not to read them again.

    Nothing here is trusted: the statement that starts an execution checks that its workflow is still live,
    enabled and, unless a version was asked for, still at that latest version, and a start that finds it
    changed reads it again. Versions never change, so their input schemas are safe to keep. A workflow's row
    holds its definition and schemas (up to FLOWLINE_MAX_DEFINITION_BYTES each), so the cache is bounded by
    their size as JSON as well as by its count; the least recently started go first.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._records: BoundedCache[tuple[uuid.UUID, str, int | None], asyncpg.Record] = BoundedCache(
            max_entries=max_entries, max_bytes=max_bytes, size_of=_json_size
        )

    def get(self, tenant_id: uuid.UUID, ref: str, version: int | None) -> asyncpg.Record | None:
        """The workflow a start of ``ref`` (at ``version``, or its latest) used last, if kept."""
        return self._records.get((tenant_id, ref, version))

    def keep(self, tenant_id: uuid.UUID, ref: str, version: int | None, workflow: asyncpg.Record) -> None:
        """Remember the workflow a start has just used."""
        self._records[(tenant_id, ref, version)] = workflow


def _json_size(record: asyncpg.Record) -> int:
    return len(msgspec.json.encode(dict(record.items())))


class NewExecution(NamedTuple):
    """An execution to insert, with its first event's snapshot and time, its outbox rows and its audit row."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version_id: uuid.UUID
    workflow_ref: str
    workflow_version: int
    input: dict[str, Any]
    triggered_by: str
    started_by: str
    owned_by: str | None
    idempotency_key: str | None
    metadata: dict[str, str]
    tags: list[str]
    root_execution_id: uuid.UUID | None
    parent_execution_id: uuid.UUID | None
    parent_step_id: str | None
    rerun_of: uuid.UUID | None
    rerun_from_step: str | None
    schedule_id: uuid.UUID | None
    scheduled_for: datetime | None
    created_event: Any  # the WORKFLOW_CREATED snapshot
    created_at: datetime  # when that event occurred
    version_pinned: bool  # a version was asked for: the workflow need not be at it still
    outbox: list[OutboxRow]
    audit: tuple[uuid.UUID, str | None, dict[str, Any], str | None] | None  # id, principal, changes, request id


class Inserted(NamedTuple):
    """What became of a ``NewExecution``."""

    current: bool  # its workflow was still live, enabled and (unless pinned) at its version: else nothing written
    created_at: datetime | None  # None when not written: not current, or its idempotency key was taken


# The executions to insert, one array element per execution and a parameter per field of ``NewExecution``.
_NEW_EXECUTIONS = """
    SELECT * FROM unnest(:id::uuid[], :tenant_id::uuid[], :workflow_id::uuid[], :workflow_version_id::uuid[],
        :workflow_ref::text[], :workflow_version::int[], :input::jsonb[], :triggered_by::text[], :started_by::text[],
        :owned_by::text[], :idempotency_key::text[], :metadata::jsonb[], :tags::text[], :root_execution_id::uuid[],
        :parent_execution_id::uuid[], :parent_step_id::text[], :rerun_of::uuid[], :rerun_from_step::text[],
        :schedule_id::uuid[], :scheduled_for::timestamptz[], :created_event::jsonb[], :created_at::timestamptz[],
        :version_pinned::bool[], :audit_id::uuid[], :audit_principal::text[], :audit_changes::jsonb[],
        :audit_request_id::text[])
        WITH ORDINALITY AS n(id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version, input,
            triggered_by, started_by, owned_by, idempotency_key, metadata, tags, root_execution_id,
            parent_execution_id, parent_step_id, rerun_of, rerun_from_step, schedule_id, scheduled_for, created_event,
            created_event_at, version_pinned, audit_id, audit_principal, audit_changes, audit_request_id, position)
"""

# Their outbox rows, one array element per row, tagged with its execution.
_NEW_OUTBOX = """
    SELECT * FROM unnest(:outbox_execution_id::uuid[], :outbox_id::uuid[], :outbox_topic::text[], :outbox_key::bytea[],
        :outbox_payload::bytea[], :outbox_request_id::text[]) AS o(execution_id, id, topic, key, payload, request_id)
"""

# Inserts executions ({new}: rows as ``_NEW_EXECUTIONS`` makes them) with their first events, outbox rows
# ({outbox}: as ``_NEW_OUTBOX``) and audit rows, all or none of each execution's: the start's single statement.
# ``created_at`` is the statement's start, not the transaction's: a start prepared ahead (``stage_executions``)
# runs in a transaction that began before its execution was due.
_WRITE_EXECUTIONS = """
WITH new AS ({new}),
current AS (  -- still as read: live, enabled and (unless a version was asked for) at this version
    SELECT n.* FROM new n JOIN workflows w ON w.id = n.workflow_id
    WHERE w.enabled AND w.deleted_at IS NULL AND (n.version_pinned OR w.latest_version = n.workflow_version)
), created AS (
    INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version,
        status, input, root_execution_id, triggered_by, started_by, owned_by, idempotency_key, metadata, tags,
        parent_execution_id, parent_step_id, rerun_of, rerun_from_step, schedule_id, scheduled_for,
        last_event_sequence, created_at, updated_at)
    SELECT id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version, 'pending', input,
        coalesce(root_execution_id, id), triggered_by, started_by, owned_by, idempotency_key, metadata,
        ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), parent_execution_id, parent_step_id, rerun_of,
        rerun_from_step, schedule_id, scheduled_for, 1, statement_timestamp(), statement_timestamp()
    FROM current
    ORDER BY position  -- the caller's order: concurrent statements take the keys' locks in one order
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, created_at
), appended AS (
    INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, task_id, data,
        occurred_at)
    SELECT n.id, 1, n.tenant_id, 'WORKFLOW_CREATED', NULL, NULL, n.created_event, n.created_event_at
    FROM created c JOIN new n ON n.id = c.id
), queued AS (  -- ``created_at`` as the executions': the relay's grace period runs from about the commit
    INSERT INTO outbox (id, topic, key, payload, request_id, created_at)
    SELECT o.id, o.topic, o.key, o.payload, o.request_id, statement_timestamp()
    FROM ({outbox}) AS o JOIN created c ON c.id = o.execution_id
), audited AS (
    INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action, principal, changes, request_id)
    SELECT n.audit_id, n.tenant_id, 'execution', n.id::text, 'start', n.audit_principal, n.audit_changes,
        n.audit_request_id
    FROM created c JOIN new n ON n.id = c.id
    WHERE n.audit_id IS NOT NULL
)
SELECT EXISTS (SELECT FROM current x WHERE x.id = n.id) AS current, c.created_at
FROM new n LEFT JOIN created c ON c.id = n.id
ORDER BY n.position
"""

# The fields of ``NewExecution`` that are columns of its row, each a parameter of the statement by its name.
_ROW_FIELDS = NewExecution._fields[: NewExecution._fields.index("outbox")]


# The parameters of a ``NewExecution``'s audit row (id, principal, changes, request id).
_AUDIT_PARAMETERS = ("audit_id", "audit_principal", "audit_changes", "audit_request_id")


def _column(executions: Sequence[NewExecution], field: str) -> list[Any]:
    """One parameter of the statement: ``field`` of every execution."""
    if field == "tags":  # as JSON text: lists of tags would go as one two-dimensional array, of one length
        return [msgspec.json.encode(execution.tags).decode() for execution in executions]
    return [getattr(execution, field) for execution in executions]


def _parameters(executions: Sequence[NewExecution]) -> dict[str, list[Any]]:
    """The parameters of ``_NEW_EXECUTIONS`` and ``_NEW_OUTBOX`` for ``executions``."""
    audits = [execution.audit or (None, None, None, None) for execution in executions]
    outbox = [(execution.id, row) for execution in executions for row in execution.outbox]
    params = {field: _column(executions, field) for field in _ROW_FIELDS}
    params.update({name: [audit[position] for audit in audits] for position, name in enumerate(_AUDIT_PARAMETERS)})
    params["outbox_execution_id"] = [execution_id for execution_id, _ in outbox]
    params.update({f"outbox_{field}": [getattr(row, field) for _, row in outbox] for field in OutboxRow._fields})
    return params


_INSERT_EXECUTIONS = _WRITE_EXECUTIONS.format(new=_NEW_EXECUTIONS, outbox=_NEW_OUTBOX)
# Staged (``stage_executions``) in tables of the session that no other session sees, gone at the commit.
_STAGED_EXECUTIONS, _STAGED_OUTBOX = "staged_executions", "staged_outbox"
_INSERT_STAGED_EXECUTIONS = _WRITE_EXECUTIONS.format(
    new=f"SELECT * FROM {_STAGED_EXECUTIONS}", outbox=f"SELECT * FROM {_STAGED_OUTBOX}"
)


async def insert_executions(
    connection: asyncpg.Connection | asyncpg.Pool, executions: Sequence[NewExecution]
) -> list[Inserted]:
    """Insert ``executions`` in one statement (atomic by itself); what became of each, in their order.

    Callers that insert several at once order them by ``execution_lock_order``.
    """
    records = await connection.fetch(*bind(_INSERT_EXECUTIONS, _parameters(executions)))
    return [Inserted(record["current"], record["created_at"]) for record in records]


async def stage_executions(connection: asyncpg.Connection, executions: Sequence[NewExecution]) -> None:
    """Write ``executions`` (ordered by ``execution_lock_order``) where only this transaction sees them.

    For a start prepared ahead of its time: ``insert_staged_executions`` inserts them later in the transaction,
    costing PostgreSQL alone (their parameters were sent and encoded here). Nothing of them exists for anyone
    else until then, and nothing at all if the transaction rolls back.
    """
    params = _parameters(executions)
    await connection.execute(
        *bind(f"CREATE TEMPORARY TABLE {_STAGED_EXECUTIONS} ON COMMIT DROP AS {_NEW_EXECUTIONS}", params)
    )
    await connection.execute(*bind(f"CREATE TEMPORARY TABLE {_STAGED_OUTBOX} ON COMMIT DROP AS {_NEW_OUTBOX}", params))


async def insert_staged_executions(connection: asyncpg.Connection) -> list[Inserted]:
    """Insert the executions this transaction staged, as ``insert_executions`` would; what became of each."""
    records = await connection.fetch(_INSERT_STAGED_EXECUTIONS)
    return [Inserted(record["current"], record["created_at"]) for record in records]


def execution_lock_order(execution: NewExecution) -> tuple[uuid.UUID, str]:
    """Where an execution goes among others inserted together: by the idempotency key whose lock it takes."""
    return execution.tenant_id, execution.idempotency_key or ""


class ExecutionInserts:
    """Inserts the executions that concurrent requests start, as many as are waiting in each statement.

    Under load much of a start's cost in PostgreSQL and in this process is per statement (a round trip, a
    commit and its WAL flush): starts that arrive while a statement runs wait for the next one, which takes
    them all. One statement at a time by default: a start takes about a millisecond, so with more of them in
    flight the starts of a few hundred requests a second would seldom find one another. When a statement of
    several fails for another reason than an outage (a value PostgreSQL refuses in one request, say), each of
    its executions is inserted alone, so that only the one at fault fails.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_statements: int = 1, max_executions: int = 100) -> None:
        self._pool = pool
        self._statements: Batches[NewExecution, Inserted] = Batches(
            self._write, order=execution_lock_order, max_writers=max_statements, max_size=max_executions
        )

    async def insert(self, execution: NewExecution) -> Inserted:
        """Insert ``execution`` with the others waiting; what became of it once its statement committed."""
        return await self._statements.submit(execution)

    async def _write(self, batch: list[Pending[NewExecution, Inserted]]) -> None:
        try:
            results = await insert_executions(self._pool, [pending.item for pending in batch])
        except Exception as err:
            if len(batch) == 1 or is_outage(err):
                raise
            for one in batch:  # the statement rolled back: find the execution at fault
                try:
                    await self._write([one])
                except Exception as alone:
                    one.done.set_exception(alone)
            return
        for pending, result in zip(batch, results, strict=True):
            pending.done.set_result(result)


class StartedExecution(NamedTuple):
    """The execution a start request resolved to."""

    id: uuid.UUID
    status: str
    created_at: Any
    created: bool  # False when an earlier request with the same idempotency key started it
    outbox: list[OutboxRow]


async def _by_idempotency_key(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, idempotency_key: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT id, status, created_at, workflow_ref FROM executions WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        idempotency_key,
    )


def existing_execution(record: asyncpg.Record, workflow_ref: str, idempotency_key: str) -> StartedExecution:
    """The execution an idempotency key started before, if it is of ``workflow_ref``; else a Conflict."""
    if record["workflow_ref"] != workflow_ref:
        raise Conflict(
            f"idempotency key {idempotency_key!r} was used for an execution of {record['workflow_ref']!r}, "
            f"not {workflow_ref!r}"
        )
    return StartedExecution(record["id"], record["status"], record["created_at"], False, [])


class StartRequest(NamedTuple):
    """What a call of ``start_execution`` asks to start (all its keyword arguments but how it writes)."""

    tenant_id: uuid.UUID
    workflow_ref: str
    version: int | None
    execution_input: dict[str, Any]
    idempotency_key: str | None
    triggered_by: str
    started_by: str
    owned_by: str | None
    metadata: dict[str, str] | None
    tags: list[str] | None
    parent: ParentStep | None
    rerun: Rerun | None
    scheduled: ScheduledRun | None
    audit: Actor | None


def may_start(start: StartRequest, workflow: asyncpg.Record, *, kept: bool) -> bool:
    """Whether ``workflow`` takes the input; False when a kept workflow's schema refuses it.

    A workflow kept from an earlier start is judged again by the stored one rather than refused.

    Raises:
        Conflict: the workflow is disabled.
        ValidationFailed: the input does not match the (stored) workflow's input schema.
    """
    if not workflow["enabled"]:
        raise Conflict(f"workflow {start.workflow_ref!r} is disabled")  # never kept: the stored workflow says so
    if workflow["input_schema"] is not None:
        try:
            check_instance(workflow["input_schema"], start.execution_input, "/input")
        except ValidationFailed:
            if kept:  # by the schema of a version that may no longer be the one to start
                return False
            raise
    return True


def _requested_row(topics: Topics, start: StartRequest, workflow: asyncpg.Record, execution_id: uuid.UUID) -> OutboxRow:
    """The new execution's ExecutionRequested outbox row, carrying the execution while the message stays small."""
    parent, scheduled = start.parent, start.scheduled
    created = CreatedExecution(
        input=start.execution_input,
        workflow_ref=start.workflow_ref,
        workflow_version=workflow["version"],
        root_execution_id=parent.root_execution_id if parent else execution_id,
        parent_execution_id=parent.execution_id if parent else None,
        parent_step_id=parent.step_id if parent else None,
        owned_by=start.owned_by,
        scheduled_for=scheduled.scheduled_for if scheduled else None,
    )
    request = ExecutionRequested(
        tenant_id=start.tenant_id,
        execution_id=execution_id,
        workflow_version_id=workflow["version_id"],
        created=created if start.rerun is None else None,  # a rerun's start reads the execution it reruns
    )
    requested = outgoing(topics.requests, request)
    if len(requested.payload) > CARRIED_REQUEST_BYTES:  # the executor reads a large input from the database
        requested = outgoing(topics.requests, msgspec.structs.replace(request, created=None))
    return requested


def new_execution(
    topics: Topics, start: StartRequest, workflow: asyncpg.Record, *, created_at: datetime | None = None
) -> NewExecution:
    """The execution ``start`` asks for, of ``workflow``: its row, first event, outbox rows and audit row.

    Its WORKFLOW_CREATED event occurs now, or at ``created_at`` for an execution prepared ahead of its time.
    """
    parent, rerun, scheduled, audit = start.parent, start.rerun, start.scheduled, start.audit
    execution_id = uuid7()
    created_event = NewEvent(
        "WORKFLOW_CREATED",
        WorkflowSnapshot(status="pending", workflow_ref=start.workflow_ref, workflow_version=workflow["version"]),
    )
    now, snapshots, rows = event_rows(
        start.tenant_id, execution_id, CREATED_SEQUENCE, [created_event], topics.events, occurred_at=created_at
    )
    rows.append(_requested_row(topics, start, workflow, execution_id))
    return NewExecution(
        id=execution_id,
        tenant_id=start.tenant_id,
        workflow_id=workflow["id"],
        workflow_version_id=workflow["version_id"],
        workflow_ref=start.workflow_ref,
        workflow_version=workflow["version"],
        input=start.execution_input,
        triggered_by=start.triggered_by,
        started_by=start.started_by,
        owned_by=start.owned_by,
        idempotency_key=start.idempotency_key,
        metadata=start.metadata or {},
        tags=start.tags or [],
        root_execution_id=parent.root_execution_id if parent else None,
        parent_execution_id=parent.execution_id if parent else None,
        parent_step_id=parent.step_id if parent else None,
        rerun_of=rerun.execution_id if rerun else None,
        rerun_from_step=rerun.from_step if rerun else None,
        schedule_id=scheduled.schedule_id if scheduled else None,
        scheduled_for=scheduled.scheduled_for if scheduled else None,
        created_event=snapshots[0],
        created_at=now,
        version_pinned=start.version is not None,
        outbox=rows,
        audit=(
            (uuid7(), audit.principal, {"workflow": {"before": None, "after": start.workflow_ref}}, audit.request_id)
            if audit
            else None
        ),
    )


async def _start_with(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    start: StartRequest,
    workflow: asyncpg.Record,
    *,
    kept: bool,
    inserting: Callable[[NewExecution], Awaitable[Inserted]] | None,
) -> StartedExecution | None:
    """Start the execution with ``workflow``; None when the workflow is no longer as read (or kept)."""
    if not may_start(start, workflow, kept=kept):
        return None
    new = new_execution(topics, start, workflow)
    if inserting is not None:
        inserted = await inserting(new)
    else:
        (inserted,) = await insert_executions(connection, [new])
    if not inserted.current:
        return None
    if inserted.created_at is None:  # a concurrent request with the same key won the race
        assert start.idempotency_key is not None
        return existing_execution(
            await _by_idempotency_key(connection, start.tenant_id, start.idempotency_key),
            start.workflow_ref,
            start.idempotency_key,
        )
    return StartedExecution(new.id, "pending", inserted.created_at, True, new.outbox)


async def start_execution(
    connection: asyncpg.Connection | asyncpg.Pool,
    topics: Topics,
    *,
    tenant_id: uuid.UUID,
    workflow_ref: str,
    version: int | None,
    execution_input: dict[str, Any],
    idempotency_key: str | None,
    triggered_by: str,
    started_by: str,
    owned_by: str | None = None,
    metadata: dict[str, str] | None = None,
    tags: list[str] | None = None,
    parent: ParentStep | None = None,
    rerun: Rerun | None = None,
    scheduled: ScheduledRun | None = None,
    audit: Actor | None = None,
    workflows: WorkflowCache | None = None,
    inserting: Callable[[NewExecution], Awaitable[Inserted]] | None = None,
) -> StartedExecution:
    """Create a pending execution with its first event and the ExecutionRequested outbox row.

    Runs in the caller's transaction; publish ``outbox`` after the commit. A repeated idempotency key
    returns the existing execution and writes nothing. One statement writes the execution, its first event
    (sequence 1), the outbox rows and, with ``audit``, the ``start`` audit row: atomic without a transaction
    of the caller's (the api needs none), and one round trip; with ``workflows`` holding the workflow, the
    only one. ``inserting`` (``ExecutionInserts.insert``) writes it with the executions other requests start
    meanwhile, in that one statement; without it the statement runs on ``connection``, which the reads use.
    ``started_by`` says who starts it (see ``KAFKA_STARTED_BY``); ``scheduled`` is the schedule run it is, if
    any (``flowline.domain.schedules``); ``owned_by`` is the principal that may see it
    (None: only admins, unless its workflow is public).

    Raises:
        NotFound: unknown workflow or version.
        Conflict: the workflow is disabled, or the idempotency key started another workflow.
        ValidationFailed: the input does not match the workflow's input schema.
    """
    if idempotency_key is not None and (existing := await _by_idempotency_key(connection, tenant_id, idempotency_key)):
        return existing_execution(existing, workflow_ref, idempotency_key)

    start = StartRequest(
        tenant_id=tenant_id,
        workflow_ref=workflow_ref,
        version=version,
        execution_input=execution_input,
        idempotency_key=idempotency_key,
        triggered_by=triggered_by,
        started_by=started_by,
        owned_by=owned_by,
        metadata=metadata,
        tags=tags,
        parent=parent,
        rerun=rerun,
        scheduled=scheduled,
        audit=audit,
    )
    if workflows is not None and (kept := workflows.get(tenant_id, workflow_ref, version)) is not None:
        if (started := await _start_with(connection, topics, start, kept, kept=True, inserting=inserting)) is not None:
            return started
    while True:  # until the workflow stays as read for the length of one statement
        workflow = await read_workflow(connection, tenant_id, workflow_ref, version)
        started = await _start_with(connection, topics, start, workflow, kept=False, inserting=inserting)
        if started is not None:
            if workflows is not None:
                workflows.keep(tenant_id, workflow_ref, version, workflow)
            return started
