"""Workflow use cases: define, read, execute."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from flowline.db.workflows import create_workflow, read_workflow
from flowline.definitions import validate_definition
from flowline.errors import TooLarge
from flowline.executions import StartedExecution, start_execution
from flowline.kafka.outbox import OutboxPublisher
from flowline.settings import Settings

from flowline_api.domain.workflows.schemas import ExecuteRequest, Workflow, WorkflowCreate


def to_workflow(record: asyncpg.Record) -> Workflow:
    """The response body for a workflow row joined with a version."""
    return Workflow(
        ref=record["ref"],
        pack=record["pack"],
        name=record["name"],
        label=record["label"],
        description=record["description"],
        version=record["version"],
        definition=record["definition"],
        input_schema=record["input_schema"],
        output_schema=record["output_schema"],
        tags=list(record["tags"]),
        enabled=record["enabled"],
        created_by=record["created_by"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


class WorkflowService:
    """Stores definitions and starts executions of them."""

    def __init__(
        self, pool: asyncpg.Pool, outbox: OutboxPublisher, settings: Settings, known_actions: frozenset[str]
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._settings = settings
        self._known_actions = known_actions

    async def create(self, tenant_id: uuid.UUID, data: WorkflowCreate) -> Workflow:
        """Validate and store a new workflow as version 1.

        Raises:
            ValidationFailed: the definition is invalid (the problem names the JSON pointer).
            TooLarge: the definition exceeds the size limits.
            Conflict: the ref exists.
        """
        definition = msgspec.to_builtins(data.definition)
        size = len(msgspec.json.encode(definition))
        if size > self._settings.max_definition_bytes:
            raise TooLarge(f"the definition is {size} bytes; the limit is {self._settings.max_definition_bytes}")
        validate_definition(
            data.definition, known_actions=self._known_actions, max_steps=self._settings.max_steps_per_workflow
        )
        async with self._pool.acquire() as connection, connection.transaction():
            record = await create_workflow(
                connection,
                tenant_id=tenant_id,
                ref=data.ref,
                label=data.label,
                description=data.description,
                tags=data.tags,
                enabled=data.enabled,
                definition=definition,
                input_schema=data.input_schema,
                output_schema=data.output_schema,
                created_by=None,
            )
        return to_workflow(record)

    async def read(self, tenant_id: uuid.UUID, ref: str) -> Workflow:
        """The latest version of a workflow.

        Raises:
            NotFound: no such workflow.
        """
        return to_workflow(await read_workflow(self._pool, tenant_id, ref))

    async def execute(self, tenant_id: uuid.UUID, ref: str, request: ExecuteRequest) -> StartedExecution:
        """Store a pending execution and publish its ExecutionRequested after the commit.

        Raises:
            NotFound: unknown workflow or version.
            Conflict: the workflow is disabled.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            started = await start_execution(
                connection,
                self._settings.topics,
                tenant_id=tenant_id,
                workflow_ref=ref,
                version=request.version,
                execution_input=request.input,
                idempotency_key=request.idempotency_key,
                triggered_by="api",
                metadata=request.metadata,
                tags=request.tags,
            )
        await self._outbox.publish(started.outbox)
        return started
