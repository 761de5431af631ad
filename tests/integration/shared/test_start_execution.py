"""start_execution checks the input against the workflow's inputSchema for every caller (api, Kafka, child steps)."""

from __future__ import annotations

import asyncpg
import pytest
from flowline.db.packs import create_pack
from flowline.db.workflows import create_workflow
from flowline.domain.starting import CARRIED_REQUEST_BYTES, start_execution
from flowline.errors import ClientError, ValidationFailed
from flowline.messages import CreatedExecution, ExecutionRequested, RequestMessage, decoder
from flowline.settings import Settings

from tests.support import define_and_start

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}


async def test_input_that_breaks_the_schema_starts_nothing(pool: asyncpg.Pool, settings: Settings) -> None:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        await create_pack(connection, tenant_id=tenant_id, ref="demo", label=None, description=None, version=None)
        await create_workflow(
            connection,
            tenant_id=tenant_id,
            ref="demo.typed",
            label=None,
            description=None,
            tags=[],
            enabled=True,
            definition={"steps": [{"id": "a", "type": "action", "action": "core.noop"}]},
            input_schema=SCHEMA,
            output_schema=None,
            created_by=None,
        )

    async def start(execution_input: dict[str, object]) -> object:
        async with pool.acquire() as connection, connection.transaction():
            return await start_execution(
                connection,
                settings.topics,
                tenant_id=tenant_id,
                workflow_ref="demo.typed",
                version=None,
                execution_input=execution_input,
                idempotency_key=None,
                triggered_by="kafka",
                started_by="kafka",
            )

    with pytest.raises(ValidationFailed) as caught:
        await start({"n": 0})

    assert isinstance(caught.value, ClientError)  # the executor turns it into a SubmissionRejected / failed step
    assert (caught.value.pointer, caught.value.detail) == ("/input/n", "/input/n: 0 is less than the minimum of 1")
    assert await pool.fetchval("SELECT count(*) FROM executions") == 0
    await start({"n": 1})
    assert await pool.fetchval("SELECT count(*) FROM executions") == 1


async def test_a_workflow_needs_its_pack(pool: asyncpg.Pool) -> None:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        with pytest.raises(ClientError, match="pack 'ghost' does not exist"):
            await create_workflow(
                connection,
                tenant_id=tenant_id,
                ref="ghost.w",
                label=None,
                description=None,
                tags=[],
                enabled=True,
                definition={"steps": []},
                input_schema=None,
                output_schema=None,
                created_by=None,
            )


async def test_the_request_carries_the_new_execution_when_its_input_is_small(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    definition = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}
    small = await define_and_start(pool, settings, "demo.carried", definition, {"n": 1})
    large = await define_and_start(pool, settings, "demo.carried", definition, {"text": "x" * CARRIED_REQUEST_BYTES})

    def request(started: object) -> ExecutionRequested:
        (row,) = [row for row in started.outbox if row.topic == settings.topics.requests]  # type: ignore[attr-defined]
        message = decoder(RequestMessage).decode(row.payload)
        assert isinstance(message, ExecutionRequested)
        return message

    stored = await pool.fetchrow(
        "SELECT input, workflow_ref, workflow_version, root_execution_id, parent_execution_id, parent_step_id, "
        "owned_by FROM executions WHERE id = $1",
        small.id,
    )
    assert request(small).created == CreatedExecution(**dict(stored))
    assert request(large).created is None  # the executor reads it: the request stays small
