"""The submissions topic: start a submitted execution, or cancel one, once; or publish why not (SubmissionRejected)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from flowline.db.execution_runs import read_execution_id_by_key
from flowline.db.tenants import read_tenant_id
from flowline.domain.commands import request_cancel
from flowline.domain.starting import KAFKA_STARTED_BY, start_execution
from flowline.errors import ClientError, NotFound, ValidationFailed
from flowline.kafka.inbox import claim_message
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue
from flowline.messages import CancelSubmission, SubmissionMessage, SubmissionRejected, SubmitExecution, encode
from flowline.runtime.ids import uuid7
from flowline.runtime.outages import is_data_error
from flowline.runtime.request_ids import current_request_id
from flowline.settings import Topics

logger = logging.getLogger(__name__)

# The name under which the ids of applied requests are kept (the inbox).
REQUESTS_CONSUMER = "executor"
# Workflow versions are PostgreSQL integers, as the api's ``version`` fields are bounded.
MAX_WORKFLOW_VERSION = 2**31 - 1


async def submit(pool: asyncpg.Pool, outbox: OutboxPublisher, topics: Topics, message: SubmissionMessage) -> None:
    """Start the submitted execution, or cancel it, once; or publish why not (SubmissionRejected on the events topic).

    A value PostgreSQL cannot store (text with a NUL character, say) is the submission's fault as much as an
    unknown workflow: it is rejected in a transaction of its own, since the one that met it is spoiled.
    """
    try:
        rows = await (
            _start(pool, topics, message) if isinstance(message, SubmitExecution) else _cancel(pool, topics, message)
        )
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


async def _cancel(pool: asyncpg.Pool, topics: Topics, message: CancelSubmission) -> Sequence[OutboxRow]:
    """Claim the cancel and cancel the execution its submission started, or reject it; the outbox rows to publish.

    Only an execution a submission started (``startedBy: kafka``) in the named tenant is found, by its key.
    """
    async with pool.acquire() as connection, connection.transaction():
        if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
            return []
        try:
            tenant_id = await read_tenant_id(connection, message.tenant)
            execution_id = await read_execution_id_by_key(
                connection, tenant_id, message.idempotency_key, started_by=KAFKA_STARTED_BY
            )
            if execution_id is None:
                raise NotFound(
                    f"no execution of tenant {message.tenant!r} was submitted as {message.idempotency_key!r}"
                )
            return await request_cancel(
                connection,
                topics,
                tenant_id=tenant_id,
                execution_id=execution_id,
                reason=message.reason,
                requested_by=KAFKA_STARTED_BY,
            )
        except ClientError as err:
            return await _rejection(connection, topics, message, err.detail)


async def _reject(
    connection: asyncpg.Connection, topics: Topics, message: SubmissionMessage, reason: str
) -> Sequence[OutboxRow]:
    """Claim the submission and reject it (nothing, if it was applied before)."""
    if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
        return []
    return await _rejection(connection, topics, message, reason)


async def _rejection(
    connection: asyncpg.Connection, topics: Topics, message: SubmissionMessage, reason: str
) -> Sequence[OutboxRow]:
    """Enqueue the SubmissionRejected that tells the message's producer why it started or cancelled nothing."""
    rejection = SubmissionRejected(
        submission_id=message.id,
        tenant=message.tenant,
        workflow=message.workflow if isinstance(message, SubmitExecution) else "",
        idempotency_key=message.idempotency_key,
        reason=reason[:2000],
        request="SubmitExecution" if isinstance(message, SubmitExecution) else "CancelSubmission",
    )
    key = (message.idempotency_key or str(message.id)).encode()
    rejected = OutboxRow(uuid7(), topics.events, key, encode(rejection), current_request_id.get())
    logger.warning("submission %s rejected: %s", message.id, reason[:2000])
    return await enqueue(connection, [rejected])
