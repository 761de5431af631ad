"""SubmitExecution: create the submitted execution once, or publish why not (SubmissionRejected)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from flowline.db.tenants import read_tenant_id
from flowline.errors import ClientError
from flowline.executions import KAFKA_STARTED_BY, start_execution
from flowline.ids import uuid7
from flowline.kafka.inbox import claim_message
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue
from flowline.messages import SubmissionRejected, SubmitExecution, encode
from flowline.request_ids import current_request_id
from flowline.settings import Topics

logger = logging.getLogger(__name__)

# The name under which the ids of applied requests are kept (the inbox).
REQUESTS_CONSUMER = "executor"


async def submit(pool: asyncpg.Pool, outbox: OutboxPublisher, topics: Topics, message: SubmitExecution) -> None:
    """Start the submitted execution once, or publish why not (SubmissionRejected on the events topic)."""
    rows: Sequence[OutboxRow]
    async with pool.acquire() as connection, connection.transaction():
        if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
            return
        try:
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
            rows = started.outbox
        except ClientError as err:
            rejection = SubmissionRejected(
                submission_id=message.id,
                tenant=message.tenant,
                workflow=message.workflow,
                idempotency_key=message.idempotency_key,
                reason=err.detail,
            )
            key = (message.idempotency_key or str(message.id)).encode()
            rejected = OutboxRow(uuid7(), topics.events, key, encode(rejection), current_request_id.get())
            rows = await enqueue(connection, [rejected])
            logger.warning("submission %s rejected: %s", message.id, err.detail)
    await outbox.publish(rows)
