"""Live streams of execution events: history from the event log, then live events from the hub, no gap, no repeat.

A stream subscribes to the hub first (which returns once the hub's consumer has its positions; live events
queue up from then on), then reads the event log after the client's position, then drains the queue skipping
every sequence it already sent. A live event that skips ahead of the stream's position (a message the broker
has not delivered yet, or lost) is filled in from the event log, where it was committed before it was
published.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import msgspec
from flowline.db.execution_reads import execution_visible, list_visible_tree
from flowline.domain.credentials import Principal
from flowline.domain.task_log_limits import DROPPED_KEY, TaskLogQuota, dropped_notice_id
from flowline.errors import ClientError, NotFound
from flowline.messages import ExecutionEvent, TaskLogRecord
from flowline_schemas.streams import FINAL_EVENTS, StreamEvent, StreamLog, StreamOverflow
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import ServerSentEventMessage

from flowline_api.domain.streams.hub import Overflowed, StreamHub, Subscription

TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled"})
TERMINAL_TASK_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "skipped"})
# After its task finished, a task stream waits this long for the last log records (they travel on another
# topic than the events) before it closes.
LOG_GRACE_SECONDS: Final = 1.0
_POSITION = re.compile(r"^([0-9a-fA-F-]{32,36}):(\d{1,18})$")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StreamTimings:
    """How often a quiet stream sends a keep-alive comment, and after how long without events it closes."""

    keepalive_seconds: float
    idle_timeout_seconds: float


def parse_sequence(last_event_id: str | None) -> int:
    """The sequence in the ``Last-Event-ID`` of an execution or task stream (0: from the start).

    Raises:
        ClientError: not a non-negative integer.
    """
    if last_event_id is None or last_event_id.strip() == "":
        return 0
    value = last_event_id.strip()
    if not value.isdigit() or len(value) > 18:
        raise ClientError(f"Last-Event-ID: {last_event_id!r} is not an event sequence (a non-negative integer)")
    return int(value)


def parse_positions(last_event_id: str | None, root: uuid.UUID) -> dict[uuid.UUID, int]:
    """The per-execution positions in the ``Last-Event-ID`` of a consolidated stream.

    The id is ``<executionId>:<sequence>`` pairs joined by commas (every execution of the tree the stream has
    sent events of); a bare integer is the sequence of the root execution.

    Raises:
        ClientError: neither form.
    """
    if last_event_id is None or last_event_id.strip() == "":
        return {}
    value = last_event_id.strip()
    if value.isdigit() and len(value) <= 18:
        return {root: int(value)}
    positions: dict[uuid.UUID, int] = {}
    for part in value.split(","):
        match = _POSITION.match(part.strip())
        try:
            if match is None:
                raise ValueError(part)
            positions[uuid.UUID(match[1])] = int(match[2])
        except ValueError as err:
            raise ClientError(
                f"Last-Event-ID: {last_event_id!r} is not a consolidated stream position "
                "(<executionId>:<sequence> pairs separated by commas)"
            ) from err
    return positions


def from_message(event: ExecutionEvent) -> StreamEvent:
    """The stream form of a live event."""
    return StreamEvent(
        event=event.event,
        data=event.data,
        timestamp_ms=event.timestamp_ms,
        execution_id=str(event.execution_id),
        sequence=event.sequence,
        step_id=event.step_id,
        task_id=None if event.task_id is None else str(event.task_id),
        occurred_at=event.occurred_at,
    )


def from_row(row: asyncpg.Record) -> StreamEvent:
    """The stream form of an ``execution_events`` row (identical to the live one)."""
    occurred_at: datetime = row["occurred_at"]
    return StreamEvent(
        event=row["event_type"],
        data=row["data"],
        timestamp_ms=int(occurred_at.timestamp() * 1000),
        execution_id=str(row["execution_id"]),
        sequence=row["sequence"],
        step_id=row["step_id"],
        task_id=None if row["task_id"] is None else str(row["task_id"]),
        occurred_at=occurred_at,
    )


def from_log(record: TaskLogRecord | asyncpg.Record) -> StreamLog:
    """The stream form of a log record, live or stored."""
    if isinstance(record, TaskLogRecord):
        return StreamLog(
            id=str(record.id),
            execution_id=str(record.execution_id),
            task_id=None if record.task_id is None else str(record.task_id),
            step_id=record.step_id,
            attempt=record.attempt,
            level=record.level,
            message=record.message,
            timestamp=record.timestamp,
            metadata=record.metadata or None,
        )
    return StreamLog(
        id=str(record["id"]),
        execution_id=str(record["execution_id"]),
        task_id=None if record["task_id"] is None else str(record["task_id"]),
        step_id=record["step_id"],
        attempt=record["attempt"],
        level=record["level"],
        message=record["message"],
        timestamp=record["timestamp"],
        metadata=record["metadata"] or None,
    )


class StreamSession:
    """One client's stream: which executions it follows, how far it got in each, and when it ends."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        subscription: Subscription,
        timings: StreamTimings,
        *,
        root: uuid.UUID,
        positions: dict[uuid.UUID, int],
        consolidated: bool = False,
        task_id: uuid.UUID | None = None,
        logs_since: datetime | None = None,
        tenant_id: uuid.UUID | None = None,
        visible_to: str | None = None,
    ) -> None:
        self._pool = pool
        # Children found on the way are followed only when this principal may see them (None: an admin).
        self._tenant_id = tenant_id
        self._visible_to = visible_to
        self._subscription = subscription
        self._timings = timings
        self._root = root
        self._consolidated = consolidated
        self._task_id = task_id
        self._logs_since = logs_since
        self._positions = dict(positions)  # the last sequence read, per execution
        self._sent: dict[uuid.UUID, int] = dict(positions)  # the last sequence sent, per execution
        self._known: set[uuid.UUID] = set()  # executions followed (and caught up)
        self._hidden: set[uuid.UUID] = set()  # children found that the principal may not see: never followed
        self._terminal: dict[uuid.UUID, bool] = {}
        self._task_done = False
        self._seen_logs: set[str] = set()
        # The task's log cut-off, as log-ingest applies it: records past it are held back, and the record that
        # reports them is sent when the stream ends (docs/architecture.md §6.2).
        self._log_quota = TaskLogQuota(subscription.log_limits)
        self._notice_id = None if task_id is None else dropped_notice_id(task_id)
        self._notice_sent = 0  # the count of the WARN record sent with the stored records (0: none)
        self._first_held_back: StreamLog | None = None  # the first live record past the cut-off
        self._held_back = 0  # how many live records were past it

    # What the stream has reached ----------------------------------------------------------------------------

    def finished(self) -> bool:
        """Whether everything the stream watches reached a final state (its last event is sent)."""
        if self._task_id is not None:
            return self._task_done or self._terminal.get(self._root, False)
        if self._consolidated:
            return all(self._terminal.get(execution_id, False) for execution_id in self._known)
        return self._terminal.get(self._root, False)

    def _accept(self, event: StreamEvent, discovered: list[uuid.UUID]) -> bool:
        """Advance past ``event`` if it is the next one; whether the client should see it."""
        execution_id = uuid.UUID(event.execution_id)
        if event.sequence <= self._positions.get(execution_id, 0):
            return False
        self._positions[execution_id] = event.sequence
        if event.event.startswith("WORKFLOW_") or event.event == "RETRY_REQUESTED":
            self._terminal[execution_id] = event.event in FINAL_EVENTS
        if self._consolidated and event.event == "CHILD_WORKFLOW_INITIATED":
            child = event.data.get("childExecutionId")
            if isinstance(child, str):
                discovered.append(uuid.UUID(child))
        if self._task_id is not None:
            if event.task_id != str(self._task_id):
                return False
            if event.event.startswith("TASK_"):
                self._task_done = event.data.get("status") in TERMINAL_TASK_STATUSES
        return True

    async def _visible(self, execution_id: uuid.UUID) -> bool:
        """Whether the stream's principal may see this execution (a child found in a parent's event)."""
        if self._visible_to is None:
            return True
        assert self._tenant_id is not None, "a stream limited to a principal names its tenant"
        return await execution_visible(self._pool, self._tenant_id, execution_id, self._visible_to)

    # Reading the event log -------------------------------------------------------------------------------------

    async def _read_state(self, execution_id: uuid.UUID) -> None:
        """Start from the execution's (and task's) current status, read before its events.

        A stream resumed after the final event has no event to learn the end from; events read afterwards
        override this in order, so a retry started meanwhile shows too.
        """
        row = await self._pool.fetchrow(
            "SELECT e.status, s.status AS task_status FROM executions e "
            "LEFT JOIN step_executions s ON s.id = $2 AND s.execution_id = e.id WHERE e.id = $1",
            execution_id,
            self._task_id,
        )
        if row is None:
            return
        self._terminal[execution_id] = row["status"] in TERMINAL_STATUSES
        if self._task_id is not None and row["task_status"] is not None:
            self._task_done = row["task_status"] in TERMINAL_TASK_STATUSES

    async def _read_log(self, execution_id: uuid.UUID, discovered: list[uuid.UUID]) -> list[StreamEvent]:
        """The events of ``execution_id`` after its position, from the event log."""
        rows = await self._pool.fetch(
            "SELECT execution_id, sequence, event_type, step_id, task_id, data, occurred_at FROM execution_events "
            "WHERE execution_id = $1 AND sequence > $2 ORDER BY sequence",
            execution_id,
            self._positions.get(execution_id, 0),
        )
        return [event for event in map(from_row, rows) if self._accept(event, discovered)]

    async def _follow(self, execution_ids: list[uuid.UUID]) -> list[StreamEvent]:
        """Follow these executions live, then read what they logged before; children found are followed too.

        Returns:
            The events to send, each execution's in order, interleaved by time.
        """
        per_execution: list[list[StreamEvent]] = []
        pending = list(execution_ids)
        while pending:
            execution_id = pending.pop(0)
            if execution_id in self._known or execution_id in self._hidden:
                continue
            if execution_id != self._root and not await self._visible(execution_id):
                self._hidden.add(execution_id)  # and what is below it: its events, which name them, are not read
                continue
            self._known.add(execution_id)
            self._subscription.follow(execution_id)  # live first: nothing falls between the read and the live
            await self._read_state(execution_id)
            discovered: list[uuid.UUID] = []
            per_execution.append(await self._read_log(execution_id, discovered))
            pending.extend(discovered)
        return list(heapq.merge(*per_execution, key=lambda event: event.occurred_at))

    async def _initial_logs(self) -> list[StreamLog]:
        """The task's stored log records (since the resumed event, when resuming)."""
        assert self._task_id is not None
        rows = await self._pool.fetch(
            "SELECT id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata FROM task_logs "
            "WHERE task_id = $1 AND ($2::timestamptz IS NULL OR timestamp >= $2) ORDER BY timestamp, id",
            self._task_id,
            self._logs_since,
        )
        logs = [from_log(row) for row in rows]
        self._seen_logs.update(log.id for log in logs)
        for log in logs:
            if log.id == str(self._notice_id):  # stored past the task's last kept record: it is full
                self._notice_sent = self._log_quota.dropped = max(_dropped_count(log), 1)
            else:
                self._log_quota.keep(log.message)
        return logs

    async def _dropped_notice(self) -> StreamLog | None:
        """The record that reports the records held back, sent when the stream ends (None: nothing new to say).

        As stored when log-ingest has counted at least as many; otherwise the stream's own, with the same id and
        the count of live records it held back. When the stored one went out with the stored records, its count
        may already include some of the live ones: then only a stored count that grew since is sent again.
        """
        first = self._first_held_back
        if first is None:
            return None
        row = await self._pool.fetchrow(
            "SELECT id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata FROM task_logs "
            "WHERE id = $1 AND task_id = $2",
            self._notice_id,
            self._task_id,
        )
        stored = None if row is None else from_log(row)
        if self._notice_sent:
            return stored if stored is not None and _dropped_count(stored) > self._notice_sent else None
        if stored is not None and _dropped_count(stored) >= self._held_back:
            return stored
        return msgspec.structs.replace(
            first,
            id=str(self._notice_id),
            level="WARN",
            message=self._log_quota.limits.dropped_notice(self._held_back),
            metadata={DROPPED_KEY: self._held_back},
        )

    async def _on_live(self, item: ExecutionEvent | TaskLogRecord) -> list[StreamEvent | StreamLog]:
        if isinstance(item, TaskLogRecord):
            if item.task_id != self._task_id or str(item.id) in self._seen_logs:
                return []
            self._seen_logs.add(str(item.id))
            if not self._log_quota.keep(item.message):
                self._first_held_back = self._first_held_back or from_log(item)
                self._held_back += 1
                return []
            return [from_log(item)]
        event = from_message(item)
        if item.sequence > self._positions.get(item.execution_id, 0) + 1:  # something in between is missing
            discovered: list[uuid.UUID] = []
            caught_up: list[StreamEvent | StreamLog] = [*await self._read_log(item.execution_id, discovered)]
            return [*caught_up, *(await self._follow(discovered))]
        discovered = []
        if not self._accept(event, discovered):
            return []
        return [event, *await self._follow(discovered)]

    # Writing SSE -------------------------------------------------------------------------------------------------

    def _message(self, item: StreamEvent | StreamLog) -> ServerSentEventMessage:
        if isinstance(item, StreamLog):
            return ServerSentEventMessage(data=_encoder.encode(item).decode())
        execution_id = uuid.UUID(item.execution_id)
        self._sent[execution_id] = item.sequence
        if self._consolidated:
            event_id: str = ",".join(f"{key}:{value}" for key, value in self._sent.items() if value > 0)
        else:
            event_id = str(item.sequence)
        return ServerSentEventMessage(data=_encoder.encode(item).decode(), id=event_id)

    async def messages(self, start: list[uuid.UUID]) -> AsyncIterator[ServerSentEventMessage]:
        """The stream: history after the client's position, then live events, keep-alives, and the end.

        Args:
            start: the executions to follow from the start (the root, and its known descendants).
        """
        loop = asyncio.get_running_loop()
        try:
            first: list[StreamEvent | StreamLog] = [*await self._follow(start)]
            if self._task_id is not None:
                logs = await self._initial_logs()
                first = list(heapq.merge(first, logs, key=_moment))
            for message in first:
                yield self._message(message)
            last_event = last_write = loop.time()
            closing_at: float | None = None
            while True:
                if closing_at is None and self.finished():
                    if self._task_id is None:
                        return
                    closing_at = loop.time() + LOG_GRACE_SECONDS  # the task's last log records may still come
                now = loop.time()
                if closing_at is not None and now >= closing_at:
                    if (notice := await self._dropped_notice()) is not None:
                        yield self._message(notice)
                    return
                deadline = min(
                    last_write + self._timings.keepalive_seconds, last_event + self._timings.idle_timeout_seconds
                )
                if closing_at is not None:
                    deadline = min(deadline, closing_at)
                item = await self._subscription.get(deadline - now)
                if isinstance(item, Overflowed):
                    yield _overflow_message(item)  # the client reconnects with Last-Event-ID and catches up
                    return
                if item is None:
                    now = loop.time()
                    if now >= last_event + self._timings.idle_timeout_seconds:
                        return
                    if now >= last_write + self._timings.keepalive_seconds:
                        yield ServerSentEventMessage(data=None, comment="keep-alive")
                        last_write = now
                    continue
                for out in await self._on_live(item):
                    yield self._message(out)
                    last_event = last_write = loop.time()
        finally:
            self._subscription.close()


def _overflow_message(overflowed: Overflowed) -> ServerSentEventMessage:
    detail = (
        f"this stream is closed: {overflowed.reason} (FLOWLINE_STREAM_BUFFER_MAX_BYTES); reconnect with the "
        "Last-Event-ID of the last event received to catch up from the event log"
    )
    return ServerSentEventMessage(data=_encoder.encode(StreamOverflow(detail=detail)).decode(), event="overflow")


def _dropped_count(log: StreamLog) -> int:
    """How many records the record that reports a task's dropped ones counts."""
    count = (log.metadata or {}).get(DROPPED_KEY)
    return count if isinstance(count, int) else 0


def _moment(item: StreamEvent | StreamLog) -> datetime:
    return item.occurred_at if isinstance(item, StreamEvent) else item.timestamp


Messages = AsyncIterator[ServerSentEventMessage]


class StreamService:
    """Opens the live streams of a tenant's executions and tasks.

    Each opener returns None when the client already has everything and nothing more can come (it resumes
    after the final event): the route answers 204, which tells an EventSource to stop reconnecting. An opener
    waits for the hub to follow the topics; when it cannot (the broker is unreachable), the opener raises a
    Kafka error or TimeoutError, which the route answers 503. Streams count against the caller's and the
    process's limits (429 and 503, see ``StreamHub.subscribe``).
    """

    def __init__(self, pool: asyncpg.Pool, hub: StreamHub, timings: StreamTimings, caller: Principal) -> None:
        self._pool = pool
        self._hub = hub
        self._timings = timings
        # The streams of one principal count together against its limit (a JWT's sub is unique in its tenant).
        self._owner = f"{caller.tenant}:{caller.subject}"

    async def execution_stream(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, last_event_id: str | None
    ) -> Messages | None:
        """The events of one execution after ``last_event_id`` (from its first event when None), then live.

        Raises:
            ClientError: a malformed Last-Event-ID.
            NotFound: no such execution in this tenant.
            TooManyRequests: the caller holds as many open streams as one principal may.
            Unavailable: this api process holds as many open streams as it may.
        """
        after = parse_sequence(last_event_id)
        execution = await self._pool.fetchrow(
            "SELECT status, last_event_sequence FROM executions WHERE id = $1 AND tenant_id = $2",
            execution_id,
            tenant_id,
        )
        if execution is None:
            raise NotFound(f"execution {execution_id} does not exist")
        if execution["status"] in TERMINAL_STATUSES and execution["last_event_sequence"] <= after:
            return None
        subscription = await self._hub.subscribe(tenant_id, owner=self._owner)
        session = StreamSession(
            self._pool, subscription, self._timings, root=execution_id, positions={execution_id: after}
        )
        return session.messages([execution_id])

    async def consolidated_stream(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        last_event_id: str | None,
        visible_to: str | None = None,
    ) -> Messages | None:
        """The events of an execution and its descendants, then live (children started later join).

        Only the descendants ``visible_to`` may see (None: all, as an admin sees them): a hidden child is
        left out with everything below it, whether known now or started later.

        Raises:
            ClientError: a malformed Last-Event-ID.
            NotFound: no such execution in this tenant.
            TooManyRequests: the caller holds as many open streams as one principal may.
            Unavailable: this api process holds as many open streams as it may.
        """
        positions = parse_positions(last_event_id, execution_id)
        tree = await list_visible_tree(self._pool, tenant_id, execution_id, visible_to)
        if not tree:
            raise NotFound(f"execution {execution_id} does not exist")
        # Positions in executions the principal may not see are dropped: they are neither followed nor echoed.
        members = {row["id"] for row in tree}
        positions = {key: value for key, value in positions.items() if key in members}
        if all(
            row["status"] in TERMINAL_STATUSES and row["last_event_sequence"] <= positions.get(row["id"], 0)
            for row in tree
        ):
            return None
        start = [execution_id, *(row["id"] for row in tree if row["id"] != execution_id)]
        subscription = await self._hub.subscribe(tenant_id, owner=self._owner)
        session = StreamSession(
            self._pool,
            subscription,
            self._timings,
            root=execution_id,
            positions=positions,
            consolidated=True,
            tenant_id=tenant_id,
            visible_to=visible_to,
        )
        return session.messages(start)

    async def task_stream(self, tenant_id: uuid.UUID, task_id: uuid.UUID, last_event_id: str | None) -> Messages | None:
        """A task's state events and its log records, stored then live.

        Raises:
            ClientError: a malformed Last-Event-ID.
            NotFound: no such task in this tenant.
            TooManyRequests: the caller holds as many open streams as one principal may.
            Unavailable: this api process holds as many open streams as it may.
        """
        after = parse_sequence(last_event_id)
        task = await self._pool.fetchrow(
            "SELECT s.execution_id, s.status, e.occurred_at AS resumed_at, EXISTS (SELECT 1 FROM execution_events l "
            "WHERE l.execution_id = s.execution_id AND l.sequence > $3 AND l.task_id = s.id) AS more "
            "FROM step_executions s LEFT JOIN execution_events e ON e.execution_id = s.execution_id "
            "AND e.sequence = $3 WHERE s.id = $1 AND s.tenant_id = $2",
            task_id,
            tenant_id,
            after,
        )
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        if after and task["status"] in TERMINAL_TASK_STATUSES and not task["more"]:
            return None
        subscription = await self._hub.subscribe(tenant_id, logs=True, owner=self._owner)
        session = StreamSession(
            self._pool,
            subscription,
            self._timings,
            root=task["execution_id"],
            positions={task["execution_id"]: after},
            task_id=task_id,
            logs_since=task["resumed_at"] if after else None,
        )
        return session.messages([task["execution_id"]])


def provide_stream_service(
    pool: NamedDependency[asyncpg.Pool], state: State, caller: NamedDependency[Principal]
) -> StreamService:
    """A stream opener sharing the process's hub, whose streams count as the caller's."""
    hub: StreamHub = state.stream_hub
    timings: StreamTimings = state.stream_timings
    return StreamService(pool, hub, timings, caller)
