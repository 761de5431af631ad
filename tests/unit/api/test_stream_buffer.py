"""A stream's buffer holds at most its byte budget (and MAX_BUFFERED records) before the stream is cut off, and
receives only the records of its own tenant's executions."""

from __future__ import annotations

import uuid

import msgspec
from flowline.messages import ExecutionEvent, TaskLogRecord
from flowline.settings import Settings
from flowline_api.domain.streams.hub import Overflowed, StreamHub, Subscription


def _event(sequence: int) -> ExecutionEvent:
    return ExecutionEvent(
        tenant_id=uuid.uuid4(),
        execution_id=uuid.uuid4(),
        timestamp_ms=0,
        sequence=sequence,
        event="TASK_STARTED",
        data={},
    )


def _subscription(max_bytes: int) -> Subscription:
    return Subscription(StreamHub(Settings()), uuid.uuid4(), logs=False, owner="dev:reader", max_bytes=max_bytes)


def test_records_queue_up_to_the_budget_and_the_next_one_cuts_the_stream_off() -> None:
    subscription = _subscription(100)
    for sequence in range(1, 5):
        subscription.put(_event(sequence), 25)
    assert subscription.buffered_bytes == 100 and not subscription.overflowed

    subscription.put(_event(5), 1)
    subscription.put(_event(6), 1)  # after the cut, nothing more is kept

    assert subscription.overflowed and subscription.buffered_bytes == 100
    received = [subscription.get_nowait() for _ in range(6)]
    assert [item.sequence for item in received[:4] if isinstance(item, ExecutionEvent)] == [1, 2, 3, 4]
    assert isinstance(received[4], Overflowed) and "100 bytes" in received[4].reason
    assert received[5] is None and subscription.buffered_bytes == 0


def test_reading_makes_room_and_a_record_larger_than_the_budget_passes_alone() -> None:
    subscription = _subscription(100)
    subscription.put(_event(1), 80)
    assert subscription.get_nowait() is not None and subscription.buffered_bytes == 0
    subscription.put(_event(2), 80)
    subscription.put(_event(3), 20)
    assert not subscription.overflowed and subscription.buffered_bytes == 100
    subscription.get_nowait()
    subscription.get_nowait()

    subscription.put(_event(4), 5_000)  # nothing waits before it: it is sent
    assert not subscription.overflowed and subscription.buffered_bytes == 5_000
    subscription.put(_event(5), 1)
    assert subscription.overflowed


def test_a_record_naming_another_tenant_reaches_no_stream_of_the_execution() -> None:
    settings = Settings()
    hub = StreamHub(settings)
    tenant_id, other_tenant_id, execution_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    subscription = Subscription(hub, tenant_id, logs=True, owner="dev:reader", max_bytes=1 << 20)
    subscription.follow(execution_id)

    def event(tenant: uuid.UUID, sequence: int) -> bytes:
        return msgspec.json.encode(
            ExecutionEvent(
                tenant_id=tenant, execution_id=execution_id, timestamp_ms=0, sequence=sequence, event="X", data={}
            )
        )

    def log(tenant: uuid.UUID, message: str) -> bytes:
        return msgspec.json.encode(
            TaskLogRecord(
                tenant_id=tenant,
                execution_id=execution_id,
                task_id=uuid.uuid4(),
                step_id="a",
                attempt=1,
                message=message,
            )
        )

    hub.dispatch(settings.topics.events, event(other_tenant_id, 7))
    hub.dispatch(settings.topics.logs, log(other_tenant_id, "forged"))
    hub.dispatch(settings.topics.events, event(tenant_id, 2))
    hub.dispatch(settings.topics.logs, log(tenant_id, "honest"))

    first, second = subscription.get_nowait(), subscription.get_nowait()
    assert isinstance(first, ExecutionEvent) and first.sequence == 2 and first.tenant_id == tenant_id
    assert isinstance(second, TaskLogRecord) and second.message == "honest"
    assert subscription.get_nowait() is None
