"""Helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer
from flowline.db.migrate import downgrade, upgrade_head
from flowline.kafka.consumer import MessageConsumer
from flowline.messages import EventMessage, decoder
from flowline.runtime.ids import uuid7
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Settings


async def read_topic(
    settings: Settings,
    topic: str,
    count: int,
    timeout: float = 20.0,
    keep: Callable[[Any], bool] = lambda record: True,
) -> list[Any]:
    """The first ``count`` records of ``topic`` that ``keep`` accepts (from the beginning, outside any group).

    Only those: a fetch may bring more at once, such as a message the outbox published twice (at least once).
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(record for record in partition_records if keep(record))
    finally:
        await consumer.stop()
    return records[:count]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until ``check()`` is true (the suite never asserts on timings; this only bounds a hang)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def listening(wakeups: Wakeups) -> AsyncIterator[Wakeups]:
    """Run ``wakeups`` (its loops made already: they subscribe at construction) until it listens; stop it after."""
    running = asyncio.create_task(wakeups.run())

    async def heard() -> bool:
        return wakeups.listening

    try:
        await eventually(heard)
        yield wakeups
    finally:
        wakeups.stop()
        await running


class CountingServer:
    """A real local HTTP server that records every request (for agent and http steps).

    ``/ok`` answers 200 with the JSON body it got; ``/flaky/<n>`` answers 503 to the first ``n`` requests
    of each Idempotency-Key (or webhook-id), then 200; ``/status/<code>`` answers that status (429 with
    ``Retry-After: 7``); ``/slow/<seconds>`` answers late; ``/text`` answers 200 with a plain-text body,
    ``/empty`` 204 with none;
    ``/huge/<bytes>`` answers 200 with that many bytes, ``/drip/<seconds>`` a byte a second for that long;
    ``/headers`` answers 200 with the request's headers echoed (``{"headers": {…}, "seen": "auth was …"}``);
    ``/hold`` answers 200 once ``release()`` is called (a receiver that keeps its callers waiting).
    """

    def __init__(self, port: int = 0) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._released = threading.Event()
        lock = threading.Lock()
        seen: dict[tuple[str, str], int] = {}
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                with lock:
                    server_self.requests.append((self.command, self.path, headers, body))
                    # Steps send an Idempotency-Key, webhooks a webhook-id: either names one request's retries.
                    key = (self.path, headers.get("idempotency-key") or headers.get("webhook-id", ""))
                    seen[key] = seen.get(key, 0) + 1
                    count = seen[key]
                parts = self.path.strip("/").split("/")
                status = 200
                if parts[0] == "flaky" and count <= int(parts[1]):
                    status = 503
                elif parts[0] == "status":
                    status = int(parts[1])
                elif parts[0] == "slow":
                    time.sleep(float(parts[1]))
                elif parts[0] == "hold":
                    server_self._released.wait()
                payload = json.dumps({"path": self.path, "got": body.decode() or None}).encode()
                if parts[0] == "headers":  # a debugging endpoint: the request's headers, echoed
                    echoed = f"auth was {headers.get('authorization')}"
                    payload = json.dumps({"headers": headers, "seen": echoed}).encode()
                content_type = "application/json"
                if parts[0] in ("huge", "drip"):
                    self._stream(parts[0], float(parts[1]))
                    return
                if parts[0] == "text":
                    payload, content_type = b"plain words", "text/plain"
                elif parts[0] == "empty":
                    payload, status = b"", 204
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                if status == 503:
                    self.send_header("retry-after", "0")
                elif status == 429:
                    self.send_header("retry-after", "7")
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, kind: str, amount: float) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                if kind == "huge":
                    chunk = b"x" * 65536
                    for _ in range(int(amount) // len(chunk)):
                        self.wfile.write(chunk)
                    return
                for _ in range(int(amount)):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(1)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # Steps that become ready together (a group commit starts them at once) connect in a burst;
            # socketserver's default backlog of 5 overflows and resets some of those connections.
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on /slow closes the socket: expected, not worth a traceback

        self._server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Answer the requests to ``/hold``, those waiting and those to come."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


async def define_and_start(
    pool: Any, settings: Settings, ref: str, definition: dict[str, Any], execution_input: dict[str, Any]
) -> Any:
    """Store a workflow for the tenant ``dev`` (and its pack when missing) unless it exists, and a pending execution."""
    from flowline.db.packs import create_pack
    from flowline.db.workflows import create_workflow
    from flowline.domain.starting import start_execution
    from flowline.errors import Conflict

    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection:
        try:
            pack = ref.split(".", 1)[0]
            await create_pack(connection, tenant_id=tenant_id, ref=pack, label=None, description=None, version=None)
        except Conflict:
            pass
        try:
            async with connection.transaction():
                await create_workflow(
                    connection,
                    tenant_id=tenant_id,
                    ref=ref,
                    label=None,
                    description=None,
                    tags=[],
                    enabled=True,
                    definition=definition,
                    input_schema=None,
                    output_schema=None,
                    created_by=None,
                )
        except Conflict:
            pass
        return await start_execution(
            connection,
            settings.topics,
            tenant_id=tenant_id,
            workflow_ref=ref,
            version=None,
            execution_input=execution_input,
            idempotency_key=None,
            triggered_by="test",
            started_by="test",
        )


async def ensure_pack(client: Any, ref: str) -> None:
    """Create the pack ``ref`` through the api unless it exists (workflows need their pack)."""
    response = await client.post("/packs", json={"ref": ref})
    assert response.status_code in (201, 409), response.text


async def define(client: Any, workflow: dict[str, Any]) -> Any:
    """POST a workflow through the api, creating its pack first when missing; the api's response."""
    await ensure_pack(client, str(workflow["ref"]).split(".", 1)[0])
    return await client.post("/workflows", json=workflow)


async def api_key(database_url: str, tenant: str = "dev", role: str = "admin") -> str:
    """A new API key of ``tenant`` with ``role``, made straight in the database (as the admin command does)."""
    from flowline.db.audit import Actor
    from flowline.domain.credentials import issue_api_key

    return await issue_api_key(database_url, tenant=tenant, role=role, name=f"test-{role}", actor=Actor("test", None))


def bearer(key: str) -> dict[str, str]:
    """The header that authenticates with ``key``."""
    return {"Authorization": f"Bearer {key}"}


async def run_until_finished(runtime: Any, settings: Settings, execution_id: Any) -> str:
    """Run an executor in this process (its two consumers) until the execution's status is final; returns it.

    Each run's consumers join groups of their own: joining a group its previous members just left waits out
    their session, seconds per run. A new group reads the topics from the start; what an earlier run already
    applied is applied once (redelivery is idempotent, DESIGN §3).
    """
    from flowline.domain.actions import load_actions
    from flowline.messages import RequestMessage, TaskMessage, decoder
    from flowline_executor.engine import Engine
    from flowline_executor.metrics import ExecutorMetrics
    from prometheus_client import CollectorRegistry

    # A registry per engine: a test may run one engine after another.
    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    run = uuid.uuid4().hex[:8]
    requests = runtime.consumer(
        f"executor-{run}", [settings.topics.requests], decoder(RequestMessage), handler=engine.handle_request
    )
    tasks = runtime.consumer(
        f"executor-tasks-{run}", [settings.topics.tasks], decoder(TaskMessage), handler=engine.handle_task
    )
    await requests.start()
    await tasks.start()
    try:

        async def finished() -> bool:
            await asyncio.gather(requests.poll_once(), tasks.poll_once())
            status = await runtime.pool.fetchval("SELECT status FROM executions WHERE id = $1", execution_id)
            return status in ("completed", "failed", "cancelled")

        await eventually(finished, timeout=60)
    finally:
        await requests.stop()
        await tasks.stop()
    status: str = await runtime.pool.fetchval("SELECT status FROM executions WHERE id = $1", execution_id)
    return status


FIXTURE_TIMEOUT_SECONDS = 600  # how long a test's bulk fixture statement may take, on the slowest machine


async def bulk_fill(pool: Any, statement: str, *args: Any) -> None:
    """Run a statement that inserts a test's many fixture rows, unbounded by the pool's timeouts for requests."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL statement_timeout = 0")
        await connection.execute(statement, *args, timeout=FIXTURE_TIMEOUT_SECONDS)


async def analyze_every_row(pool: Any, *statements: str) -> None:
    """Run ANALYZE statements with samples of up to 300,000 rows: every row of the plan tests' tables.

    The plans a test inspects then follow from its data alone, not from which rows a random sample caught.
    """
    async with pool.acquire() as connection:
        await connection.execute("SET default_statistics_target = 1000")
        await connection.execute("SET statement_timeout = 0")  # the pool's 30 s bounds requests, not fixtures
        try:
            for statement in statements:
                await connection.execute(statement, timeout=FIXTURE_TIMEOUT_SECONDS)
        finally:
            await connection.execute("RESET default_statistics_target")
            await connection.execute("RESET statement_timeout")


async def assert_each_ran_once(connection: Any, executions: int) -> None:
    """Every one of ``executions`` numbered executions finished with its number, and no event came twice.

    For the crash tests, whose workflow outputs its input number.
    """
    outputs = sorted(int(row["output"]) for row in await connection.fetch("SELECT output FROM executions"))
    assert outputs == list(range(executions))
    duplicates = await connection.fetch(
        """
        SELECT execution_id, step_id, event_type FROM execution_events
        WHERE event_type IN ('TASK_COMPLETED', 'WORKFLOW_COMPLETED', 'WORKFLOW_STARTED')
        GROUP BY execution_id, step_id, event_type HAVING count(*) > 1
        """
    )
    assert duplicates == []


@contextlib.asynccontextmanager
async def at_revision(database_url: str, revision: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database at ``revision`` (down from head), for a migration test to fill and move.

    When the test's block ends without an error, the database goes up to head again with what the test left in it.
    """
    await migrate(database_url, revision)
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
    await migrate(database_url, "head")


async def migrate(database_url: str, revision: str) -> None:
    """Take the database down to ``revision``, or up to the newest with ``"head"``."""
    if revision == "head":
        await asyncio.to_thread(upgrade_head, database_url)
    else:
        await asyncio.to_thread(downgrade, database_url, revision)


class OldWorkflow(NamedTuple):
    """A workflow inserted as rows (for schemas older than the code): its tenant's, its own and its version's ids."""

    tenant_id: uuid.UUID
    workflow_id: uuid.UUID
    version_id: uuid.UUID


async def old_workflow(connection: asyncpg.Connection, name: str) -> OldWorkflow:
    """Insert pack ``demo`` of tenant ``dev`` and its workflow ``demo.{name}`` at version 1, in columns every
    revision has."""
    tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    pack_id, workflow_id, version_id = uuid7(), uuid7(), uuid7()
    await connection.execute("INSERT INTO packs (id, tenant_id, ref) VALUES ($1, $2, 'demo')", pack_id, tenant_id)
    await connection.execute(
        "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) VALUES ($1, $2, $3, $4, $5, 1)",
        workflow_id,
        tenant_id,
        pack_id,
        f"demo.{name}",
        name,
    )
    await connection.execute(
        "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) VALUES ($1, $2, $3, 1, '{}')",
        version_id,
        tenant_id,
        workflow_id,
    )
    return OldWorkflow(tenant_id, workflow_id, version_id)


def events_consumer(
    runtime: Any, settings: Settings, name: str, handle: Callable[[EventMessage], Awaitable[None]]
) -> MessageConsumer[EventMessage]:
    """A consumer of the events topic in the group ``name``, with ``settings``; not started."""
    return MessageConsumer(
        name=name,
        settings=settings,
        topics=[settings.topics.events],
        decoder=decoder(EventMessage),
        handler=handle,
        producer=runtime.producer,
        metrics=runtime.messaging_metrics,
    )
