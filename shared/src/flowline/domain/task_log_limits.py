"""What one task's log may hold: the cut of a long message, the per-task cut-off, and the record that says so.

The executor cuts messages before it publishes them; log-ingest and the api's live streams cut again whatever
another producer sent, and cutting twice changes nothing, so every view holds the same text. The per-task cut-off
is applied where records are stored (log-ingest, ``flowline.db.task_logs``) and, with the same rule, by the api's
task streams (docs/architecture.md §6.2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from flowline.messages import TaskLogRecord
from flowline.settings import Settings

# Metadata keys Flowline adds to a record: the size of a message or of metadata that was cut, and the count of
# dropped records on the record that reports them.
MESSAGE_CUT_KEY = "flowline.messageCut"
METADATA_CUT_KEY = "flowline.metadataCut"
DROPPED_KEY = "flowline.dropped"
# The text of the record that reports a task's dropped records: %-formatted with the count and the two limits,
# by Python here and by PostgreSQL's format() in flowline.db.task_logs, so both write the same words.
DROPPED_NOTICE = "%s log records of this task were dropped: it reached its limit of %s records or %s bytes"
# The most one TaskLogBatch carries (JSON, estimated): well within the broker's default largest message (1 MiB),
# which would refuse a larger one, and the records in it would be lost.
BATCH_MAX_BYTES = 512 * 1024
# What a record adds to its message and metadata on the wire: ids, names, level, timestamp (estimated high).
_RECORD_OVERHEAD_BYTES = 400
_DROPPED_NAMESPACE = uuid.UUID("6c0f5b8e-2f7a-4d43-9a55-3f1c0de7b1a9")
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class LogLimits:
    """The three per-task log limits (``FLOWLINE_TASK_LOG_*``)."""

    message_max_bytes: int
    task_max_records: int
    task_max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LogLimits:
        """The limits the settings give."""
        return cls(
            message_max_bytes=settings.task_log_message_max_bytes,
            task_max_records=settings.task_log_max_records,
            task_max_bytes=settings.task_log_max_bytes,
        )

    def dropped_notice(self, dropped: int) -> str:
        """The message of the record that reports ``dropped`` records of a task."""
        return DROPPED_NOTICE % (dropped, self.task_max_records, self.task_max_bytes)


def cut_message(message: str, max_bytes: int) -> tuple[str, int | None]:
    """``message`` within ``max_bytes`` of UTF-8, and its original size in bytes when it had to be cut.

    A cut message ends with a visible ``… [cut: N bytes in all]`` and is itself within the limit, so cutting it
    again changes nothing.
    """
    if len(message) * 4 <= max_bytes:  # a UTF-8 character takes at most 4 bytes: no need to encode
        return message, None
    encoded = message.encode()
    if len(encoded) <= max_bytes:
        return message, None
    suffix = f" … [cut: {len(encoded)} bytes in all]"
    keep = max(max_bytes - len(suffix.encode()), 0)
    # A character split by the cut is left out whole.
    return encoded[:keep].decode(errors="ignore") + suffix, len(encoded)


def cut_record(record: TaskLogRecord, max_bytes: int) -> TaskLogRecord:
    """``record`` with its message cut at ``max_bytes`` and metadata over that size replaced by its size.

    What was cut is marked in the metadata (``flowline.messageCut``, ``flowline.metadataCut``: the original size
    in bytes). A record within the limits is returned as it is.
    """
    message, message_bytes = cut_message(record.message, max_bytes)
    metadata: dict[str, Any] = record.metadata
    metadata_bytes = len(_json.encode(metadata)) if metadata else 0
    if message_bytes is None and metadata_bytes <= max_bytes:
        return record
    if metadata_bytes > max_bytes:
        metadata = {METADATA_CUT_KEY: metadata_bytes}
    if message_bytes is not None:
        metadata = {**metadata, MESSAGE_CUT_KEY: message_bytes}
    return msgspec.structs.replace(record, message=message, metadata=metadata)


def split_batches(records: list[TaskLogRecord], max_bytes: int = BATCH_MAX_BYTES) -> list[list[TaskLogRecord]]:
    """``records`` in order, in runs each small enough for one message (a record larger than that goes alone)."""
    batches: list[list[TaskLogRecord]] = []
    batch: list[TaskLogRecord] = []
    size = 0
    for record in records:
        record_size = _RECORD_OVERHEAD_BYTES + message_bytes(record.message)
        if record.metadata:
            record_size += len(_json.encode(record.metadata))
        if batch and size + record_size > max_bytes:
            batches.append(batch)
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        batches.append(batch)
    return batches


def message_bytes(message: str) -> int:
    """What a record's message counts against its task's byte limit: its size in UTF-8."""
    return len(message.encode())


def task_key(task_id: uuid.UUID | None, execution_id: uuid.UUID) -> uuid.UUID:
    """Whose limit a record counts against: its task's, or its execution's when it names no task."""
    return execution_id if task_id is None else task_id


def dropped_notice_id(key: uuid.UUID) -> uuid.UUID:
    """The id of the one record that reports a task's dropped records: the same wherever it is made."""
    return uuid.uuid5(_DROPPED_NAMESPACE, str(key))


class TaskLogQuota:
    """Counts one task's records in the order they come and says which are kept: a prefix, as in storage."""

    def __init__(self, limits: LogLimits) -> None:
        self.limits = limits
        self.records = 0
        self.bytes = 0
        self.dropped = 0

    @property
    def full(self) -> bool:
        """Whether the task reached its limit: no later record is kept."""
        return self.dropped > 0

    def keep(self, message: str) -> bool:
        """Count a new record of the task; whether it is kept (within both limits, and none dropped before)."""
        size = message_bytes(message)
        if (
            self.full
            or self.records + 1 > self.limits.task_max_records
            or self.bytes + size > self.limits.task_max_bytes
        ):
            self.dropped += 1
            return False
        self.records += 1
        self.bytes += size
        return True
