"""The day partitions of ``task_logs``: which exist, creating one ahead, and dropping one past retention.

``task_logs`` is partitioned by range of its records' timestamps (docs/architecture.md §6.2). A partition's name
says its range, so nothing has to parse PostgreSQL's bound expressions: ``task_logs_p20261207`` holds the UTC day
2026-12-07, ``task_logs_until_20261207`` everything before it (the table as it was before partitioning), and
``task_logs_default`` whatever no other partition takes, so that no record is ever refused.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import msgspec

from flowline.db.sql import bind

PARENT = "task_logs"
DEFAULT_PARTITION = "task_logs_default"
_NAME = re.compile(r"^task_logs_(?:p(?P<day>\d{8})|until_(?P<until>\d{8})|default)$")
# Executions whose logs must stay whatever their age: those that may still write or be read as running.
UNFINISHED_STATUSES = ("pending", "running", "paused")


_MAINTENANCE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('flowline.task_log_partitions'))"


async def lock_partition_maintenance(connection: asyncpg.Connection, *, lock_timeout: str) -> None:
    """Take the transaction's lock on changing partitions, so that schedulers change them one at a time.

    The transaction then waits ``lock_timeout`` at most for this lock and for every lock it takes after it.

    Raises:
        asyncpg.LockNotAvailableError: the lock was not granted in time.
    """
    await connection.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")  # SET takes no parameters
    await connection.execute(_MAINTENANCE_LOCK)


class LogPartition(msgspec.Struct, frozen=True, kw_only=True):
    """One partition of ``task_logs`` and the range its name gives (None: open on that side)."""

    name: str
    starts_at: datetime | None
    ends_at: datetime | None


def is_partition(name: str) -> bool:
    """Whether ``name`` is one of the partitions of ``task_logs`` (which the table definitions do not list)."""
    return _NAME.match(name) is not None


def start_of_day(day: date) -> datetime:
    """The first moment of ``day``, in UTC."""
    return datetime.combine(day, time(), tzinfo=UTC)


def day_partition_name(day: date) -> str:
    """The name of the partition holding ``day`` (UTC)."""
    return f"{PARENT}_p{day:%Y%m%d}"


def until_partition_name(day: date) -> str:
    """The name of a partition holding everything before ``day``."""
    return f"{PARENT}_until_{day:%Y%m%d}"


def parse_partition(name: str) -> LogPartition | None:
    """The partition ``name`` stands for; None when it is not a partition's name."""
    match = _NAME.match(name)
    if match is None:
        return None
    if match["day"] is not None:
        day = datetime.strptime(match["day"], "%Y%m%d").date()
        return LogPartition(name=name, starts_at=start_of_day(day), ends_at=start_of_day(day + timedelta(days=1)))
    if match["until"] is not None:
        day = datetime.strptime(match["until"], "%Y%m%d").date()
        return LogPartition(name=name, starts_at=None, ends_at=start_of_day(day))
    return LogPartition(name=name, starts_at=None, ends_at=None)


def _literal(moment: datetime) -> str:
    """A timestamp as a partition bound (DDL takes no parameters; the text is ours, never a caller's)."""
    return f"'{moment.astimezone(UTC).isoformat()}'"


async def list_log_partitions(connection: asyncpg.Connection) -> list[LogPartition]:
    """Every partition of ``task_logs``, oldest range first, the default partition last."""
    names = await connection.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'task_logs'::regclass"
    )
    partitions = [partition for row in names if (partition := parse_partition(row["relname"])) is not None]
    far_future = datetime.max.replace(tzinfo=UTC)
    return sorted(partitions, key=lambda partition: partition.ends_at or far_future)


def covers(partition: LogPartition, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether ``partition`` (not the default one) takes any moment of [starts_at, ends_at)."""
    if partition.name == DEFAULT_PARTITION:
        return False
    return (partition.starts_at is None or partition.starts_at < ends_at) and (
        partition.ends_at is None or partition.ends_at > starts_at
    )


async def create_day_partition(connection: asyncpg.Connection, day: date) -> bool:
    """Create the partition of ``day`` unless a partition takes (part of) that day; whether it was created.

    Call inside a transaction. Records of that day already in the default partition (a producer's clock far
    ahead) move into the new partition with it: PostgreSQL refuses a partition whose rows the default partition
    holds. Attaching takes only a SHARE UPDATE EXCLUSIVE lock on ``task_logs``: reads and writes go on.
    """
    name = day_partition_name(day)
    starts_at, ends_at = start_of_day(day), start_of_day(day + timedelta(days=1))
    if any(covers(partition, starts_at, ends_at) for partition in await list_log_partitions(connection)):
        return False
    await connection.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    await connection.execute(
        *bind(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= :starts_at AND timestamp < :ends_at "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            starts_at=starts_at,
            ends_at=ends_at,
        )
    )
    await connection.execute(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({_literal(starts_at)}) TO ({_literal(ends_at)})"
    )
    return True


async def partition_exists(connection: asyncpg.Connection, partition: LogPartition) -> bool:
    """Whether ``partition`` is (still) there: another scheduler may have dropped it since it was listed."""
    return bool(await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", partition.name))


async def holds_unfinished_execution(connection: asyncpg.Connection, partition: LogPartition) -> bool:
    """Whether an execution that is not finished has records in ``partition``."""
    return bool(
        await connection.fetchval(
            *bind(
                "SELECT EXISTS (SELECT FROM executions e WHERE e.status = ANY(:unfinished::text[]) "
                f"AND EXISTS (SELECT FROM {partition.name} l WHERE l.execution_id = e.id))",
                unfinished=list(UNFINISHED_STATUSES),
            )
        )
    )


async def holds_present_execution(connection: asyncpg.Connection, partition: LogPartition) -> bool:
    """Whether an execution still in the database, finished or not, has records in ``partition``.

    Reads the partition's records until one of an execution still there: at once while any is, and little once
    retention removed theirs (what is left are records of executions gone).
    """
    return bool(
        await connection.fetchval(
            f"SELECT EXISTS (SELECT FROM {partition.name} l "
            "WHERE EXISTS (SELECT FROM executions e WHERE e.id = l.execution_id))"
        )
    )


async def drop_partition(connection: asyncpg.Connection, partition: LogPartition) -> None:
    """Drop ``partition`` and every record in it (a catalog change: no row is deleted one by one).

    It takes an ACCESS EXCLUSIVE lock on ``task_logs`` for a moment; the caller bounds the wait for it
    (``lock_timeout``) so that reads and writes never queue long behind it.
    """
    if partition.name == DEFAULT_PARTITION or not is_partition(partition.name):
        raise ValueError(f"{partition.name} is not a partition that may be dropped")
    await connection.execute(f"DROP TABLE {partition.name}")


async def read_longest_set_retention(connection: asyncpg.Connection) -> int | None:
    """The longest retention, in seconds, any workflow or tenant sets for executions (None: none sets its own)."""
    longest: int | None = await connection.fetchval(
        "SELECT greatest((SELECT max(retention_seconds) FROM workflows), (SELECT max(retention_seconds) FROM tenants))"
    )
    return longest
