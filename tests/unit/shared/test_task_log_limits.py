import uuid

import msgspec
from flowline.domain.task_log_limits import (
    BATCH_MAX_BYTES,
    MESSAGE_CUT_KEY,
    METADATA_CUT_KEY,
    LogLimits,
    TaskLogQuota,
    cut_message,
    cut_record,
    dropped_notice_id,
    split_batches,
)
from flowline.messages import TaskLogBatch, TaskLogRecord


def test_a_message_within_the_limit_is_left_alone() -> None:
    assert cut_message("é" * 16, 32) == ("é" * 16, None)


def test_a_long_message_is_cut_within_the_limit_on_a_character_boundary_and_says_so() -> None:
    message = "é" * 100  # 200 bytes
    cut, original = cut_message(message, 64)
    assert original == 200
    assert len(cut.encode()) <= 64
    assert cut.endswith(" … [cut: 200 bytes in all]")
    assert set(cut.removesuffix(" … [cut: 200 bytes in all]")) == {"é"}
    assert cut_message(cut, 64) == (cut, None)  # cutting again changes nothing


def test_a_cut_record_is_marked_in_its_metadata_and_cutting_it_again_changes_nothing() -> None:
    record = TaskLogRecord(
        tenant_id=uuid.uuid4(), execution_id=uuid.uuid4(), message="x" * 100, metadata={"big": "y" * 100, "n": 1}
    )
    cut = cut_record(record, 64)
    assert len(cut.message.encode()) <= 64
    assert cut.metadata == {METADATA_CUT_KEY: len(b'{"big":"' + b"y" * 100 + b'","n":1}'), MESSAGE_CUT_KEY: 100}
    assert cut_record(cut, 64) is cut
    small = TaskLogRecord(tenant_id=uuid.uuid4(), execution_id=uuid.uuid4(), message="fine", metadata={"n": 1})
    assert cut_record(small, 64) is small


def test_the_quota_keeps_a_prefix_within_both_limits() -> None:
    quota = TaskLogQuota(LogLimits(message_max_bytes=64, task_max_records=3, task_max_bytes=10))
    assert [quota.keep(message) for message in ("abcd", "abcd", "abcd", "a")] == [True, True, False, False]
    assert (quota.records, quota.bytes, quota.dropped) == (2, 8, 2)
    by_count = TaskLogQuota(LogLimits(message_max_bytes=64, task_max_records=2, task_max_bytes=100))
    assert [by_count.keep("a") for _ in range(4)] == [True, True, False, False]


def test_the_notice_of_a_task_has_one_id_wherever_it_is_made() -> None:
    task = uuid.uuid4()
    assert dropped_notice_id(task) == dropped_notice_id(uuid.UUID(str(task))) != dropped_notice_id(uuid.uuid4())
    assert LogLimits(32768, 10_000, 10_485_760).dropped_notice(7) == (
        "7 log records of this task were dropped: it reached its limit of 10000 records or 10485760 bytes"
    )


def test_records_too_many_for_one_message_are_split_in_order() -> None:
    tenant_id, execution_id = uuid.uuid4(), uuid.uuid4()
    records = [
        TaskLogRecord(tenant_id=tenant_id, execution_id=execution_id, message=f"{n:04d}" + "x" * 30_000)
        for n in range(40)
    ]
    batches = split_batches(records)
    assert [record for batch in batches for record in batch] == records
    assert len(batches) > 1
    for batch in batches:
        encoded = msgspec.json.encode(TaskLogBatch(tenant_id=tenant_id, execution_id=execution_id, records=batch))
        assert len(encoded) <= BATCH_MAX_BYTES
    assert split_batches([records[0]], max_bytes=10) == [[records[0]]]  # one record over the size goes alone
    assert split_batches([]) == []
