"""The skeleton through HTTP: define, execute, read the result, with the four services as processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from flowline.messages import EventMessage, SubmissionRejected, decoder
from flowline.settings import Settings
from flowline_devstack.processes import ServiceGroup

from tests.support import define, eventually, read_topic

DIAMOND = {
    "ref": "demo.diamond",
    "label": "Diamond",
    "definition": {
        "steps": [
            {"id": "start", "type": "action", "action": "core.echo", "input": {"name": "{{ input.name }}"}},
            {
                "id": "left",
                "type": "action",
                "action": "core.echo",
                "needs": ["start"],
                "input": {"greeting": "hello {{ steps.start.output.name }}"},
            },
            {"id": "right", "type": "action", "action": "core.noop", "needs": ["start"]},
            {
                "id": "join",
                "type": "action",
                "action": "core.echo",
                "needs": ["left", "right"],
                "input": "{{ steps.left.output.greeting }}!",
            },
        ],
        "output": {"message": "{{ steps.join.output }}"},
    },
}


def _api(api_url: str, api_headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10)


async def _wait_finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    for _ in range(300):
        response = await client.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish: {body}")


async def test_a_workflow_runs_end_to_end(api_url: str, api_headers: dict[str, str], settings: Settings) -> None:
    async with _api(api_url, api_headers) as client:
        created = await define(client, DIAMOND)
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 1

        accepted = await client.post("/workflows/demo.diamond/execute", json={"input": {"name": "Ada"}})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["executionId"]
        assert accepted.json()["status"] == "pending"

        execution = await _wait_finished(client, execution_id)

    assert execution["status"] == "completed", execution
    assert execution["output"] == {"message": "hello Ada!"}
    assert execution["startedAt"] and execution["completedAt"]
    steps = {step["stepId"]: step for step in execution["steps"]}
    assert {step["status"] for step in steps.values()} == {"completed"}
    assert steps["left"]["output"] == {"greeting": "hello Ada"}
    assert steps["join"]["startedAt"] >= max(steps["left"]["completedAt"], steps["right"]["completedAt"])
    assert steps["left"]["startedAt"] >= steps["start"]["completedAt"]

    # log-ingest persisted the executor's attempt log lines.
    connection = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(100):
            logs = await connection.fetchval(
                "SELECT count(*) FROM task_logs WHERE execution_id = $1", uuid.UUID(execution_id)
            )
            if logs >= 8:
                break
            await asyncio.sleep(0.1)
        events = [
            row["event_type"]
            for row in await connection.fetch(
                "SELECT event_type FROM execution_events WHERE execution_id = $1 ORDER BY sequence",
                uuid.UUID(execution_id),
            )
        ]
    finally:
        await connection.close()
    assert logs == 8  # a started and a finished line for each of the four attempts
    assert events[0] == "WORKFLOW_CREATED" and events[1] == "WORKFLOW_STARTED"
    assert events[-1] == "WORKFLOW_COMPLETED"
    assert events.count("TASK_COMPLETED") == 4


async def test_one_request_id_follows_an_execution_into_the_executors_log(
    stack: ServiceGroup, api_url: str, api_headers: dict[str, str]
) -> None:
    request_id = f"req-{uuid.uuid4()}"
    async with _api(api_url, api_headers) as client:
        assert (await define(client, DIAMOND)).status_code == 201
        accepted = await client.post(
            "/workflows/demo.diamond/execute", json={"input": {"name": "Ada"}}, headers={"X-Request-ID": request_id}
        )
        assert accepted.headers["x-request-id"] == request_id
        execution_id = accepted.json()["executionId"]
        assert (await _wait_finished(client, execution_id))["status"] == "completed"
        unnamed = await client.get(f"/executions/{execution_id}")
        assert unnamed.headers["x-request-id"] not in ("", request_id)  # made by the api when not sent

    def executor_lines() -> list[dict[str, Any]]:
        log_path = stack["executor"].log_path
        assert log_path is not None
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("executionId") == execution_id]

    async def finished_logged() -> bool:
        return any("WORKFLOW_COMPLETED" in line["message"] for line in executor_lines())

    await eventually(finished_logged)
    lines = executor_lines()
    assert {line["requestId"] for line in lines} == {request_id}
    assert [line["message"].split(": ")[-1] for line in lines] == ["WORKFLOW_STARTED", "WORKFLOW_COMPLETED"]
    assert {line["service"] for line in lines} == {"executor"}


async def test_bad_input_gets_problem_details(api_url: str, api_headers: dict[str, str]) -> None:
    async with _api(api_url, api_headers) as client:
        malformed = await client.post("/workflows", content=b"{not json", headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert malformed.headers["content-type"].startswith("application/problem+json")

        wrong_type = await define(client, {**DIAMOND, "ref": "demo.typed", "enabled": "yes"})
        assert wrong_type.status_code == 422
        assert wrong_type.json()["pointer"] == "/enabled"

        bad_step = {"steps": [{"id": "a", "type": "teleport"}]}
        unknown_type = await define(client, {"ref": "demo.bad", "definition": bad_step})
        assert unknown_type.status_code == 422
        assert unknown_type.json()["pointer"] == "/definition/steps/0/type"

        cyclic = {
            "steps": [
                {"id": "a", "type": "action", "action": "core.noop", "needs": ["c"]},
                {"id": "b", "type": "action", "action": "core.noop", "needs": ["a"]},
                {"id": "c", "type": "action", "action": "core.noop", "needs": ["b"]},
            ]
        }
        cycle = await define(client, {"ref": "demo.cycle", "definition": cyclic})
        assert cycle.status_code == 422
        assert "a → c → b → a" in cycle.json()["detail"]

        missing = await client.post("/workflows/demo.missing/execute", json={})
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

        unknown_execution = await client.get(f"/executions/{uuid.uuid4()}")
        assert unknown_execution.status_code == 404

        bad_id = await client.get("/executions/not-a-uuid")
        assert bad_id.status_code in (400, 404)

        assert (await define(client, DIAMOND)).status_code == 201
        duplicate = await define(client, DIAMOND)
        assert duplicate.status_code == 409

        nul = await client.post("/workflows/demo.diamond/execute", json={"input": {"name": "a\u0000b"}})
        assert nul.status_code == 400
        assert "\\u0000" in nul.json()["detail"]

        huge_version = await client.post("/workflows/demo.diamond/execute", json={"version": 99999999999})
        assert huge_version.status_code == 422
        assert huge_version.json()["pointer"] == "/version"

        first = await client.post("/workflows/demo.diamond/execute", json={"idempotencyKey": "k-1"})
        assert first.status_code == 202
        again = await client.post("/workflows/demo.diamond/execute", json={"idempotencyKey": "k-1"})
        assert again.status_code == 200
        assert again.json()["executionId"] == first.json()["executionId"]
        other = {**DIAMOND, "ref": "demo.other"}
        assert (await define(client, other)).status_code == 201
        reused = await client.post("/workflows/demo.other/execute", json={"idempotencyKey": "k-1"})
        assert reused.status_code == 409
        reserved = await client.post("/workflows/demo.diamond/execute", json={"idempotencyKey": "child:x"})
        assert reserved.status_code == 422
        reserved_header = await client.post("/workflows/demo.diamond/execute", headers={"Idempotency-Key": "kafka:1"})
        assert reserved_header.status_code == 400, reserved_header.text
        by_header = await client.post("/workflows/demo.diamond/execute", headers={"Idempotency-Key": "k-1"})
        assert by_header.status_code == 200
        assert by_header.json()["executionId"] == first.json()["executionId"]


async def test_a_failing_step_fails_the_execution(api_url: str, api_headers: dict[str, str]) -> None:
    definition = {
        "steps": [
            {"id": "boom", "type": "action", "action": "core.fail", "input": {"message": "no luck"}},
            {"id": "after", "type": "action", "action": "core.noop", "needs": ["boom"]},
        ]
    }
    async with _api(api_url, api_headers) as client:
        assert (await define(client, {"ref": "demo.fails", "definition": definition})).status_code == 201
        accepted = await client.post("/workflows/demo.fails/execute", json={})
        execution = await _wait_finished(client, accepted.json()["executionId"])
    assert execution["status"] == "failed"
    assert "no luck" in execution["error"]["message"]
    steps = {step["stepId"]: step["status"] for step in execution["steps"]}
    assert steps == {"boom": "failed", "after": "cancelled"}


async def test_a_step_result_and_what_follows_it_are_written_together_right(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    # A step's result is written by the statement that follows it (the next attempt's start, the execution's
    # end): each step and attempt must still end in its own status, and a sibling still running is cancelled.
    definition = {
        "steps": [
            {"id": "one", "type": "action", "action": "core.noop"},
            {"id": "two", "type": "action", "action": "core.noop", "needs": ["one"]},
            {"id": "nap", "type": "sleep", "duration": "1h"},
            {"id": "boom", "type": "action", "action": "core.fail", "input": {"message": "no"}, "needs": ["two"]},
        ]
    }
    async with _api(api_url, api_headers) as client:
        assert (await define(client, {"ref": "demo.folded", "definition": definition})).status_code == 201
        accepted = await client.post("/workflows/demo.folded/execute", json={})
        execution = await _wait_finished(client, accepted.json()["executionId"])
    assert execution["status"] == "failed"
    assert {step["stepId"]: step["status"] for step in execution["steps"]} == {
        "one": "completed",
        "two": "completed",
        "nap": "cancelled",
        "boom": "failed",
    }
    connection = await asyncpg.connect(settings.database_url)
    try:
        attempts = await connection.fetch(
            "SELECT s.step_id, a.status, a.finished_at IS NOT NULL AS finished, s.completed_at IS NOT NULL AS done "
            "FROM task_attempts a JOIN step_executions s ON s.id = a.step_execution_id WHERE s.execution_id = $1",
            uuid.UUID(accepted.json()["executionId"]),
        )
    finally:
        await connection.close()
    assert sorted(tuple(row) for row in attempts) == [
        ("boom", "failed", True, True),
        ("one", "completed", True, True),
        ("two", "completed", True, True),
    ]


async def test_an_execution_submitted_on_kafka_runs_once(
    api_url: str, api_headers: dict[str, str], tenant: str, settings: Settings
) -> None:
    async with _api(api_url, api_headers) as client:
        assert (await define(client, DIAMOND)).status_code == 201
    submission = json.dumps(
        {
            "type": "SubmitExecution",
            "schema_version": 1,
            "id": str(uuid.uuid4()),
            "tenant": tenant,
            "workflow": "demo.diamond",
            "input": {"name": "Kafka"},
            "idempotency_key": "order-42",
        }
    ).encode()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.submissions, submission, key=b"order-42")
        await producer.send_and_wait(settings.topics.submissions, submission, key=b"order-42")
    finally:
        await producer.stop()

    connection = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(300):
            row = await connection.fetchrow(
                "SELECT count(*) AS n, max(status) AS status, max(output::text) AS output, "
                "max(started_by) AS started_by FROM executions WHERE idempotency_key = 'order-42'"
            )
            if row["status"] == "completed":
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    assert row["n"] == 1
    assert row["status"] == "completed"
    assert "hello Kafka!" in row["output"]
    assert row["started_by"] == "kafka"


async def test_a_submission_that_cannot_start_is_rejected_with_a_reason(tenant: str, settings: Settings) -> None:
    submission = {
        "type": "SubmitExecution",
        "id": str(uuid.uuid4()),
        "tenant": tenant,
        "workflow": "demo.nowhere",
        "idempotency_key": "order-7",
    }
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.submissions, json.dumps(submission).encode(), key=b"order-7")
    finally:
        await producer.stop()
    [record] = await read_topic(settings, settings.topics.events, 1, keep=lambda record: record.key == b"order-7")
    rejection = decoder(EventMessage).decode(record.value)
    assert isinstance(rejection, SubmissionRejected)
    assert rejection.submission_id == uuid.UUID(submission["id"])
    assert "demo.nowhere" in rejection.reason and "does not exist" in rejection.reason


async def test_a_template_error_fails_the_step_with_a_clear_message(api_url: str, api_headers: dict[str, str]) -> None:
    definition = {"steps": [{"id": "oops", "type": "action", "action": "core.echo", "input": "{{ input.items }}"}]}
    async with _api(api_url, api_headers) as client:
        assert (await define(client, {"ref": "demo.oops", "definition": definition})).status_code == 201
        accepted = await client.post("/workflows/demo.oops/execute", json={"input": {"items": [1]}})
        execution = await _wait_finished(client, accepted.json()["executionId"])
    assert execution["status"] == "failed"
    assert "gives a function" in execution["error"]["message"]
    assert execution["steps"][0]["status"] == "failed"


async def test_a_template_that_would_never_end_fails_its_step_and_the_executor_goes_on(
    api_url: str, api_headers: dict[str, str]
) -> None:
    endless = "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"
    definition = {"steps": [{"id": "spin", "type": "action", "action": "core.echo", "input": endless}]}
    async with _api(api_url, api_headers) as client:
        assert (await define(client, {"ref": "demo.spin", "definition": definition})).status_code == 201
        assert (await define(client, DIAMOND)).status_code == 201
        hostile = await client.post("/workflows/demo.spin/execute", json={"input": {}})
        honest = await client.post("/workflows/demo.diamond/execute", json={"input": {"name": "Ada"}})
        spun = await _wait_finished(client, hostile.json()["executionId"])
        assert (await _wait_finished(client, honest.json()["executionId"]))["status"] == "completed"
    assert spun["status"] == "failed"
    assert "TemplateLimitExceeded" in spun["error"]["message"]
    assert spun["steps"][0]["status"] == "failed" and spun["steps"][0]["attempts"] <= 1


async def test_a_submission_with_a_version_postgresql_cannot_take_is_rejected_and_the_next_one_runs(
    api_url: str, api_headers: dict[str, str], tenant: str, settings: Settings
) -> None:
    async with _api(api_url, api_headers) as client:
        assert (await define(client, DIAMOND)).status_code == 201

    def submission(key: str, **extra: Any) -> bytes:
        body = {"type": "SubmitExecution", "schema_version": 1, "id": str(uuid.uuid4()), "tenant": tenant}
        body |= {"workflow": "demo.diamond", "input": {"name": key}, "idempotency_key": key, **extra}
        return json.dumps(body).encode()

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:  # one key: one partition, in order; the first was once retried for ever and held the second behind it
        await producer.send_and_wait(settings.topics.submissions, submission("bad", version=2**40), key=b"same")
        await producer.send_and_wait(settings.topics.submissions, submission("good"), key=b"same")
    finally:
        await producer.stop()

    connection = await asyncpg.connect(settings.database_url)
    try:

        async def good_completed() -> bool:
            status = await connection.fetchval("SELECT status FROM executions WHERE idempotency_key = 'good'")
            return bool(status == "completed")

        await eventually(good_completed, timeout=60)
        assert await connection.fetchval("SELECT count(*) FROM executions WHERE idempotency_key = 'bad'") == 0
    finally:
        await connection.close()
    # Answered, as any submission that cannot start is, rather than dead-lettered.
    [record] = await read_topic(settings, settings.topics.events, 1, keep=lambda record: record.key == b"bad")
    rejection = decoder(EventMessage).decode(record.value)
    assert isinstance(rejection, SubmissionRejected)
    assert rejection.reason == "version must be between 1 and 2147483647"
