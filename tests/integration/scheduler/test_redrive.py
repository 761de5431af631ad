"""Invariant 1: work whose message was lost (broker data loss, dead letter) is re-sent from PostgreSQL."""

from __future__ import annotations

from flowline.messages import ExecutionRequested, RequestMessage, decoder
from flowline.runtime import Runtime
from flowline.settings import Settings
from flowline_scheduler.redrive import InboxRetention, Redrive

from tests.support import define_and_start, read_topic


async def test_a_pending_execution_whose_request_was_lost_is_requested_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    started = await define_and_start(
        pool, settings, "demo.lost", {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}, {}
    )
    await pool.execute("DELETE FROM outbox")  # the request was published, then the broker lost it

    redrive = Redrive(pool, runtime.outbox, settings.topics, after_seconds=30, interval_seconds=1)
    await redrive.start(loops=1)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # too recent to be considered lost

    await pool.execute("UPDATE executions SET created_at = now() - interval '1 minute'")
    await redrive.start(loops=1)
    [record] = await read_topic(settings, settings.topics.requests, 1)
    message = decoder(RequestMessage).decode(record.value)
    assert isinstance(message, ExecutionRequested)
    assert message.execution_id == started.id


async def test_inbox_retention_forgets_only_ids_past_the_retention(runtime: Runtime) -> None:
    await runtime.pool.execute(
        "INSERT INTO inbox (consumer, message_id, processed_at) "
        "SELECT 'test', gen_random_uuid(), now() - make_interval(days => age) FROM unnest(ARRAY[0, 1, 8, 9, 30]) AS age"
    )
    retention = InboxRetention(runtime.pool, retention_seconds=7 * 86400, interval_seconds=60)

    await retention.run_once()

    kept = await runtime.pool.fetch("SELECT extract(day FROM now() - processed_at)::int AS age FROM inbox")
    assert sorted(row["age"] for row in kept) == [0, 1]
