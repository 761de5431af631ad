"""SubmitExecution: create the submitted execution once, or publish why not (SubmissionRejected)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from flowline.db.tenants import read_tenant_id
from flowline.errors import ClientError, ValidationFailed
from flowline.executions import KAFKA_STARTED_BY, start_execution
from flowline.ids import uuid7
from flowline.kafka.inbox import claim_message
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue
from flowline.messages import SubmissionRejected, SubmitExecution, encode
from flowline.outages import is_data_error
from flowline.request_ids import current_request_id
from flowline.settings import Topics

logger = logging.getLogger(__name__)

# The name under which the ids of applied requests are kept (the inbox).
REQUESTS_CONSUMER = "executor"
# Workflow versions are PostgreSQL integers, as the api's ``version`` fields are bounded.
MAX_WORKFLOW_VERSION = 2**31 - 1


async def submit(pool: asyncpg.Pool, outbox: OutboxPublisher, topics: Topics, message: SubmitExecution) -> None:
    """Start the submitted execution once, or publish why not (SubmissionRejected on the events topic).

    A value PostgreSQL cannot store (text with a NUL character, say) is the submission's fault as much as an
    unknown workflow: it is rejected in a transaction of its own, since the one that met it is spoiled.
    """
    try:
        rows = await _start(pool, topics, message)
    except Exception as err:
        if not is_data_error(err):
            raise
        async with pool.acquire() as connection, connection.transaction():
            rows = await _reject(connection, topics, message, f"a value cannot be stored: {err}")
    await outbox.publish(rows)


async def _start(pool: asyncpg.Pool, topics: Topics, message: SubmitExecution) -> Sequence[OutboxRow]:
    """Claim the submission and start its execution, or reject it; the outbox rows to publish."""
    async with pool.acquire() as connection, connection.transaction():
        if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
            return []
        try:
            if message.version is not None and not 1 <= message.version <= MAX_WORKFLOW_VERSION:
                raise ValidationFailed(f"version must be between 1 and {MAX_WORKFLOW_VERSION}", pointer="/version")
            tenant_id = await read_tenant_id(connection, message.tenant)
            started = await start_execution(
                connection,
                topics,
                tenant_id=tenant_id,
                workflow_ref=message.workflow,
                version=message.version,
                execution_input=message.input,
                idempotency_key=message.idempotency_key or f"kafka:{message.id}",
                triggered_by="kafka",
                started_by=KAFKA_STARTED_BY,
                owned_by=None,  # only admins see a submission's executions, unless its workflow is public
                metadata=message.metadata,
                tags=message.tags,
            )
        except ClientError as err:
            return await _rejection(connection, topics, message, err.detail)
        return started.outbox


async def _reject(
    connection: asyncpg.Connection, topics: Topics, message: SubmitExecution, reason: str
) -> Sequence[OutboxRow]:
    """Claim the submission and reject it (nothing, if it was applied before)."""
    if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
        return []
    return await _rejection(connection, topics, message, reason)


async def _rejection(
    connection: asyncpg.Connection, topics: Topics, message: SubmitExecution, reason: str
) -> Sequence[OutboxRow]:
    """Enqueue the SubmissionRejected that tells the submission's producer why it started nothing."""
    rejection = SubmissionRejected(
        submission_id=message.id,
        tenant=message.tenant,
        workflow=message.workflow,
        idempotency_key=message.idempotency_key,
        reason=reason[:2000],
    )
    key = (message.idempotency_key or str(message.id)).encode()
    rejected = OutboxRow(uuid7(), topics.events, key, encode(rejection), current_request_id.get())
    logger.warning("submission %s rejected: %s", message.id, reason[:2000])
    return await enqueue(connection, [rejected])
