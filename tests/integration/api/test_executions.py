"""Start and read executions: POST /executions, GET /executions/{id}, steps, events, children, attempts, tasks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from flowline.db.tenants import read_tenant_id
from flowline.domain.starting import ExecutionInserts, StartedExecution, WorkflowCache, start_execution
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.execution_rows import T0, ExecutionRows
from tests.support import api_key, bearer, define

Client = AsyncTestClient  # type: ignore[type-arg]

HELLO = {
    "ref": "demo.hello",
    "definition": {"steps": [{"id": "greet", "type": "action", "action": "core.echo", "input": {"text": "hi"}}]},
    "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
}


@pytest.fixture
def rows(pool: asyncpg.Pool) -> ExecutionRows:
    return ExecutionRows(pool)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


# --- POST /executions -------------------------------------------------------------------------------------------


async def test_start_answers_202_then_200_for_the_same_key(api: Client, pool: asyncpg.Pool) -> None:
    assert (await define(api, HELLO)).status_code == 201
    body = {
        "workflow": "demo.hello",
        "input": {"name": "Ada"},
        "idempotencyKey": "order-42",
        "metadata": {"customer": "c-42"},
        "tags": ["demo"],
    }

    first = await api.post("/executions", json=body)
    again = await api.post("/executions", json=body)
    by_header = await api.post(
        "/executions", json={"workflow": "demo.hello", "input": {}}, headers={"Idempotency-Key": "order-42"}
    )

    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending"
    assert again.status_code == 200
    assert by_header.status_code == 200
    assert again.json() == first.json() == by_header.json()
    execution = (await api.get(f"/executions/{first.json()['executionId']}")).json()
    assert execution["workflowRef"] == "demo.hello"
    assert execution["workflowVersion"] == 1
    assert execution["triggeredBy"] == "api"
    assert execution["input"] == {"name": "Ada"}
    assert execution["metadata"] == {"customer": "c-42"}
    assert execution["tags"] == ["demo"]
    assert execution["idempotencyKey"] == "order-42"
    assert await pool.fetchval("SELECT count(*) FROM executions") == 1
    events = (await api.get(f"/executions/{first.json()['executionId']}/events")).json()["events"]
    assert [event["event"] for event in events] == ["WORKFLOW_CREATED"]
    # One audit row for the start (written with the execution), none for the repeats.
    audit = (await api.get("/audit-logs?entityType=execution")).json()["items"]
    assert [(row["entityId"], row["action"], row["changes"]) for row in audit] == [
        (first.json()["executionId"], "start", {"workflow": {"before": None, "after": "demo.hello"}})
    ]
    assert audit[0]["principal"].startswith("api-key:") and audit[0]["requestId"]
    assert execution["startedBy"] == audit[0]["principal"]


async def test_start_refuses_what_execute_refuses(api: Client) -> None:
    assert (await define(api, HELLO)).status_code == 201
    other = {**HELLO, "ref": "demo.other"}
    assert (await define(api, other)).status_code == 201
    assert (await api.post("/executions", json={"workflow": "demo.hello", "idempotencyKey": "k"})).status_code == 202

    reserved_field = await api.post("/executions", json={"workflow": "demo.hello", "idempotencyKey": "child:x"})
    reserved_header = await api.post(
        "/executions", json={"workflow": "demo.hello"}, headers={"Idempotency-Key": "kafka:x"}
    )
    differing = await api.post(
        "/executions", json={"workflow": "demo.hello", "idempotencyKey": "a"}, headers={"Idempotency-Key": "b"}
    )
    other_workflow = await api.post("/executions", json={"workflow": "demo.other", "idempotencyKey": "k"})
    unknown = await api.post("/executions", json={"workflow": "demo.nope"})
    bad_input = await api.post("/executions", json={"workflow": "demo.hello", "input": {"name": 7}})
    bad_version = await api.post("/executions", json={"workflow": "demo.hello", "version": 9})
    no_workflow = await api.post("/executions", json={"input": {}})
    extra_field = await api.post("/executions", json={"workflow": "demo.hello", "colour": "red"})
    bad_metadata = await api.post("/executions", json={"workflow": "demo.hello", "metadata": {"n": 1}})

    assert _problem(reserved_field, 422)["pointer"] == "/idempotencyKey"
    assert "reserved" in _problem(reserved_header, 400)["detail"]
    assert "differ" in _problem(differing, 400)["detail"]
    assert "demo.hello" in _problem(other_workflow, 409)["detail"]
    assert _problem(unknown, 404)["detail"] == "workflow 'demo.nope' does not exist"
    assert _problem(bad_input, 422)["pointer"] == "/input/name"
    assert _problem(bad_version, 404)["detail"] == "workflow 'demo.hello' has no version 9"
    assert "workflow" in _problem(no_workflow, 422)["detail"]
    _problem(extra_field, 422)
    assert _problem(bad_metadata, 422)["pointer"].startswith("/metadata")


OVERSIZED = [  # what a start may carry: the bounds of the list filters on the same fields
    ({"tags": ["t" * 3000]}, "/tags/0"),  # one tag past an index row's size was a 500
    ({"tags": ["t" * 101]}, "/tags/0"),
    ({"tags": [""]}, "/tags/0"),
    ({"tags": [f"t{n}" for n in range(51)]}, "/tags"),
    ({"metadata": {"k": "v" * 501}}, "/metadata"),  # msgspec does not name the key whose value is wrong
    ({"metadata": {"k" * 101: "v"}}, "/metadata"),
    ({"metadata": {f"k{n}": "v" for n in range(51)}}, "/metadata"),
    ({"idempotencyKey": "i" * 201}, "/idempotencyKey"),
]


@pytest.mark.parametrize(
    ("route", "workflow"), [("/executions", {"workflow": "demo.hello"}), ("/workflows/demo.hello/execute", {})]
)
@pytest.mark.parametrize(("fields", "pointer"), OVERSIZED)
async def test_a_start_refuses_oversized_metadata_tags_and_keys_naming_the_field(
    api: Client, pool: asyncpg.Pool, route: str, workflow: dict[str, Any], fields: dict[str, Any], pointer: str
) -> None:
    assert (await define(api, HELLO)).status_code == 201

    problem = _problem(await api.post(route, json={**workflow, **fields}), 422)

    assert problem["pointer"] == pointer
    assert await pool.fetchval("SELECT count(*) FROM executions") == 0


@pytest.mark.parametrize("route", ["/executions", "/workflows/demo.hello/execute"])
async def test_a_start_refuses_an_oversized_idempotency_key_header(api: Client, pool: asyncpg.Pool, route: str) -> None:
    assert (await define(api, HELLO)).status_code == 201

    problem = _problem(
        await api.post(
            route,
            json={"workflow": "demo.hello"} if route == "/executions" else {},
            headers={"Idempotency-Key": "i" * 201},
        ),
        400,
    )

    assert "Idempotency-Key" in problem["detail"] and "200" in problem["detail"]
    assert await pool.fetchval("SELECT count(*) FROM executions") == 0
    limit = await api.post(
        route, json={"workflow": "demo.hello"} if route == "/executions" else {}, headers={"Idempotency-Key": "i" * 200}
    )
    assert limit.status_code == 202, limit.text


async def test_a_start_sees_every_change_to_its_workflow(api: Client, pool: asyncpg.Pool) -> None:
    # The api keeps the workflow a start used; each later start checks it is still the one to use.
    assert (await define(api, HELLO)).status_code == 201

    async def start(**extra: Any) -> Any:
        return await api.post("/executions", json={"workflow": "demo.hello", "input": {"name": "Ada"}, **extra})

    async def version_of(response: Any) -> int:
        assert response.status_code == 202, response.text
        execution_id = uuid.UUID(response.json()["executionId"])
        version: int = await pool.fetchval("SELECT workflow_version FROM executions WHERE id = $1", execution_id)
        return version

    assert await version_of(await start()) == 1
    update = {k: v for k, v in HELLO.items() if k != "ref"}
    disabled = await api.put("/workflows/demo.hello", json={**update, "enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert "disabled" in _problem(await start(), 409)["detail"]
    assert (await api.put("/workflows/demo.hello", json={**update, "enabled": True})).status_code == 200
    assert await version_of(await start()) == 1
    schema = {"type": "object", "properties": {"name": {"type": "integer"}}}
    assert (await api.put("/workflows/demo.hello", json={**update, "inputSchema": schema})).status_code == 200
    assert _problem(await start(), 422)["pointer"] == "/input/name"  # the new version's schema
    assert await version_of(await start(version=1)) == 1
    assert await version_of(await api.post("/executions", json={"workflow": "demo.hello", "input": {"name": 1}})) == 2
    assert (await api.delete("/workflows/demo.hello")).status_code == 204
    assert _problem(await start(), 404)["detail"] == "workflow 'demo.hello' does not exist"
    assert _problem(await start(version=1), 404)["detail"] == "workflow 'demo.hello' does not exist"
    assert (await define(api, HELLO)).status_code == 201  # the same ref defined again: a new workflow
    assert await version_of(await start()) == 1


async def test_concurrent_starts_each_get_their_own_answer(api: Client, pool: asyncpg.Pool) -> None:
    # Starts that arrive together share a statement; each still gets what it would have got alone.
    assert (await define(api, HELLO)).status_code == 201

    async def start(key: str | None = None, name: str = "Ada") -> Any:
        extra = {"idempotencyKey": key} if key else {}
        return await api.post("/executions", json={"workflow": "demo.hello", "input": {"name": name}, **extra})

    distinct = [start(f"order-{number}") for number in range(8)]
    same_key = [start("shared") for _ in range(6)]
    keyless = [start() for _ in range(5)]
    unstorable = start(name="nul \u0000 inside")  # PostgreSQL refuses it: only this start may fail
    *answers, refused = await asyncio.gather(*distinct, *same_key, *keyless, unstorable)

    assert "cannot be stored" in _problem(refused, 400)["detail"]
    by_key, shared, alone = answers[:8], answers[8:14], answers[14:]
    assert [answer.status_code for answer in by_key + alone] == [202] * 13
    assert sorted(answer.status_code for answer in shared) == [200] * 5 + [202]
    assert len({answer.json()["executionId"] for answer in shared}) == 1
    assert len({answer.json()["executionId"] for answer in answers}) == 8 + 1 + 5
    assert await pool.fetchval("SELECT count(*) FROM executions") == 14
    assert await pool.fetchval("SELECT count(*) FROM execution_events WHERE event_type = 'WORKFLOW_CREATED'") == 14
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE entity_type = 'execution'") == 14
    tags = await pool.fetch("SELECT DISTINCT tags FROM executions")
    assert [row["tags"] for row in tags] == [[]]


async def test_starts_waiting_together_go_out_in_one_statement(api: Client, pool: asyncpg.Pool) -> None:
    assert (await define(api, HELLO)).status_code == 201
    tenant_id = await read_tenant_id(pool, "dev")
    inserts, workflows = ExecutionInserts(pool), WorkflowCache()

    async def start(number: int) -> StartedExecution:
        return await start_execution(
            pool,
            Settings().topics,
            tenant_id=tenant_id,
            workflow_ref="demo.hello",
            version=None,
            execution_input={"name": f"n{number}"},
            idempotency_key=None,
            triggered_by="api",
            started_by="api-key:test",
            tags=[f"t{number}", "batch"],
            workflows=workflows,  # kept after the first start: the others only insert
            inserting=inserts.insert,
        )

    await start(0)
    started = await asyncio.gather(*(start(number) for number in range(1, 21)))

    assert all(execution.created for execution in started)
    # Rows a transaction inserted carry its id (xmin): the 20 came in one statement, or two, not one each.
    inserted_by = "SELECT count(DISTINCT xmin::text) FROM executions WHERE id = ANY($1::uuid[])"
    assert await pool.fetchval(inserted_by, [execution.id for execution in started]) <= 2
    stored = await pool.fetch(
        "SELECT id, tags, input FROM executions WHERE id = ANY($1::uuid[])", [execution.id for execution in started]
    )
    assert {row["id"]: (row["tags"], row["input"]) for row in stored} == {
        execution.id: ([f"t{number}", "batch"], {"name": f"n{number}"})
        for number, execution in enumerate(started, start=1)
    }


# --- GET /executions/{id} ----------------------------------------------------------------------------------------


async def test_read_holds_everything_about_an_execution(api: Client, rows: ExecutionRows) -> None:
    parent = await rows.execution(status="running", run_seconds=None)
    execution_id = await rows.execution(
        workflow="demo.child",
        status="failed",
        triggered_by="workflow",
        started_by=f"parent:{parent}",
        parent=parent,
        parent_step="ship",
        metadata={"customer": "c-1"},
        tags=["nightly"],
        execution_input={"n": 1},
        error={"type": "StepFailed", "message": "charge failed"},
        run_seconds=2.5,
    )
    await rows.step(execution_id, "reserve", position=0, output={"ok": True})
    await rows.step(execution_id, "charge", position=1, status="failed", attempts=3, error={"message": "declined"})
    await rows.step(execution_id, "notify", position=2, status="cancelled", attempts=0)

    response = await api.get(f"/executions/{execution_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(execution_id)
    assert body["status"] == "failed"
    assert body["workflowRef"] == "demo.child"
    assert body["input"] == {"n": 1}
    assert body["output"] is None
    assert body["error"] == {"type": "StepFailed", "message": "charge failed"}
    assert body["triggeredBy"] == "workflow"
    assert body["startedBy"] == f"parent:{parent}"
    assert (body["parentExecutionId"], body["parentStepId"]) == (str(parent), "ship")
    assert body["rootExecutionId"] == str(parent)
    assert body["metadata"] == {"customer": "c-1"}
    assert body["tags"] == ["nightly"]
    assert body["startedAt"] and body["completedAt"] and body["createdAt"]
    assert body["cancelledAt"] is None
    assert body["durationMs"] == 2500
    assert body["stepCounts"] == {
        "pending": 0,
        "scheduled": 0,
        "running": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "skipped": 0,
    }
    assert [step["stepId"] for step in body["steps"]] == ["reserve", "charge", "notify"]


async def test_a_cancelled_execution_says_when_and_by_whom(api: Client, rows: ExecutionRows) -> None:
    execution_id = await rows.execution(status="cancelled", cancelled_by="ops@example.com")

    body = (await api.get(f"/executions/{execution_id}")).json()

    assert body["cancelledAt"] == body["completedAt"] is not None
    assert body["cancelledBy"] == "ops@example.com"


async def test_missing_foreign_and_malformed_ids(api: Client, rows: ExecutionRows, settings: Settings) -> None:
    foreign = await rows.execution(tenant="acme")
    foreign_task = await rows.step(foreign, "one", position=0)
    missing = uuid.UUID(int=42)

    for path in ("", "/steps", "/events", "/children"):
        assert "does not exist" in _problem(await api.get(f"/executions/{foreign}{path}"), 404)["detail"]
        assert _problem(await api.get(f"/executions/{missing}{path}"), 404)["detail"] == (
            f"execution {missing} does not exist"
        )
        assert "execution_id" in _problem(await api.get(f"/executions/not-a-uuid{path}"), 400)["detail"]
    _problem(await api.get(f"/executions/{foreign}/tasks/{foreign_task}/attempts"), 404)
    _problem(await api.get(f"/tasks/{foreign_task}"), 404)
    assert "task_id" in _problem(await api.get("/tasks/12345"), 400)["detail"]
    assert "task_id" in _problem(await api.get(f"/executions/{foreign}/tasks/x/attempts"), 400)["detail"]
    _problem(await api.post(f"/executions/{missing}/promises/p/resolve", json={}), 404)
    _problem(await api.post("/executions/nope/promises/p/resolve", json={}), 400)
    # The same rows answer in their own tenant.
    acme, acme_key = "http://testserver.local/api/v1/tenants/acme", bearer(await api_key(settings.database_url, "acme"))
    assert (await api.get(f"{acme}/executions/{foreign}", headers=acme_key)).status_code == 200
    assert (await api.get(f"{acme}/tasks/{foreign_task}", headers=acme_key)).status_code == 200


# --- steps, events ----------------------------------------------------------------------------------------------


async def test_steps_list_every_step_in_definition_order(api: Client, rows: ExecutionRows) -> None:
    execution_id = await rows.execution(status="running", run_seconds=None)
    await rows.step(execution_id, "b", position=1, status="running", attempts=2)
    first = await rows.step(execution_id, "a", position=0, output={"text": "hi"})
    await rows.step(execution_id, "c", position=2, status="pending", attempts=0)

    response = await api.get(f"/executions/{execution_id}/steps")

    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert [(step["stepId"], step["status"], step["attempts"]) for step in steps] == [
        ("a", "completed", 1),
        ("b", "running", 2),
        ("c", "pending", 0),
    ]
    assert steps[0]["taskId"] == str(first)
    assert steps[0]["executionId"] == str(execution_id)
    assert steps[0]["type"] == "action"
    assert steps[0]["output"] == {"text": "hi"}
    assert steps[0]["durationMs"] == 240
    assert steps[1]["completedAt"] is None and steps[1]["durationMs"] is None
    assert steps[2]["startedAt"] is None
    empty = await rows.execution(status="pending")
    assert (await api.get(f"/executions/{empty}/steps")).json() == {"steps": []}


async def test_events_page_through_the_history_in_order(api: Client, rows: ExecutionRows) -> None:
    execution_id = await rows.execution()
    await rows.events(
        execution_id,
        ("WORKFLOW_CREATED", None, {"status": "pending"}),
        ("WORKFLOW_STARTED", None, {"status": "running"}),
        *((f"TASK_{kind}", "greet", {"status": kind.lower()}) for kind in ("CREATED", "STARTED", "COMPLETED")),
        ("WORKFLOW_COMPLETED", None, {"status": "completed"}),
    )

    first = (await api.get(f"/executions/{execution_id}/events", params={"limit": 4})).json()
    rest = (await api.get(f"/executions/{execution_id}/events", params={"sinceSequence": first["nextSequence"]})).json()
    later = (await api.get(f"/executions/{execution_id}/events", params={"sinceSequence": rest["nextSequence"]})).json()

    assert [event["sequence"] for event in first["events"]] == [1, 2, 3, 4]
    assert (first["nextSequence"], first["hasMore"]) == (4, True)
    assert [event["event"] for event in rest["events"]] == ["TASK_COMPLETED", "WORKFLOW_COMPLETED"]
    assert (rest["nextSequence"], rest["hasMore"]) == (6, False)
    assert later == {"events": [], "nextSequence": 6, "hasMore": False}
    event = first["events"][2]
    assert (event["event"], event["stepId"], event["data"]) == ("TASK_CREATED", "greet", {"status": "created"})
    assert event["occurredAt"]
    for params, name in (({"limit": 1001}, "limit"), ({"limit": 0}, "limit"), ({"sinceSequence": -1}, "since")):
        assert name in _problem(await api.get(f"/executions/{execution_id}/events", params=params), 400)["detail"]


# --- children, attempts, tasks ----------------------------------------------------------------------------------


async def test_children_list_the_executions_of_workflow_steps(api: Client, rows: ExecutionRows) -> None:
    parent = await rows.execution(status="running", run_seconds=None)

    first = await rows.execution(
        workflow="shipping.dispatch",
        parent=parent,
        parent_step="ship",
        triggered_by="workflow",
        created_at=T0 + timedelta(seconds=5),
    )
    second = await rows.execution(
        workflow="billing.charge",
        parent=parent,
        parent_step="charge",
        status="running",
        triggered_by="workflow",
        created_at=T0 + timedelta(seconds=9),
        run_seconds=None,
    )
    await rows.execution(workflow="other.unrelated", parent=second, triggered_by="workflow")  # a grandchild

    children = (await api.get(f"/executions/{parent}/children")).json()["children"]
    lonely = await api.get(f"/executions/{first}/children")

    assert [
        (child["childWorkflowExecutionId"], child["kind"], child["status"], child["parentStepId"]) for child in children
    ] == [(str(first), "shipping.dispatch", "completed", "ship"), (str(second), "billing.charge", "running", "charge")]
    assert all(child["createdAt"] for child in children)
    assert lonely.json() == {"children": []}


async def test_attempts_of_a_task_and_of_another_executions_task(api: Client, rows: ExecutionRows) -> None:
    execution_id = await rows.execution()
    task = await rows.step(execution_id, "call", position=0, step_type="agent", attempts=2)
    await rows.attempt(task, 2, "completed", worker="executor-b")
    await rows.attempt(task, 1, "failed", worker="executor-a", error={"type": "HttpStatus", "message": "503"})
    await rows.attempt(task, 1, "running", generation=1)
    other_execution = await rows.execution()
    other_task = await rows.step(other_execution, "call", position=0)

    response = await api.get(f"/executions/{execution_id}/tasks/{task}/attempts")
    crossed = await api.get(f"/executions/{execution_id}/tasks/{other_task}/attempts")
    unknown = await api.get(f"/executions/{execution_id}/tasks/{uuid.UUID(int=7)}/attempts")
    no_execution = await api.get(f"/executions/{uuid.UUID(int=8)}/tasks/{task}/attempts")

    assert response.status_code == 200, response.text
    attempts = response.json()["attempts"]
    assert [(a["generation"], a["attempt"], a["status"], a["workerId"]) for a in attempts] == [
        (0, 1, "failed", "executor-a"),
        (0, 2, "completed", "executor-b"),
        (1, 1, "running", "executor-1"),
    ]
    assert attempts[0]["durationMs"] == 100
    assert attempts[0]["error"] == {"type": "HttpStatus", "message": "503"}
    assert attempts[0]["startedAt"] and attempts[0]["finishedAt"]
    assert attempts[2]["finishedAt"] is None and attempts[2]["durationMs"] is None
    assert _problem(crossed, 404)["detail"] == f"execution {execution_id} has no task {other_task}"
    assert _problem(unknown, 404)["detail"].endswith(f"has no task {uuid.UUID(int=7)}")
    assert _problem(no_execution, 404)["detail"] == f"execution {uuid.UUID(int=8)} does not exist"
    empty = await rows.step(execution_id, "later", position=1, status="pending", attempts=0)
    assert (await api.get(f"/executions/{execution_id}/tasks/{empty}/attempts")).json() == {"attempts": []}


async def test_a_task_reads_on_its_own(api: Client, rows: ExecutionRows) -> None:
    execution_id = await rows.execution(workflow="demo.tasks")
    task = await rows.step(execution_id, "charge", position=0, status="failed", attempts=3, error={"message": "no"})

    response = await api.get(f"/tasks/{task}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["taskId"] == str(task)
    assert body["executionId"] == str(execution_id)
    assert body["workflowRef"] == "demo.tasks"
    assert (body["stepId"], body["type"], body["status"], body["attempts"]) == ("charge", "action", "failed", 3)
    assert body["error"] == {"message": "no"}
    assert _problem(await api.get(f"/tasks/{uuid.UUID(int=3)}"), 404)["detail"] == (
        f"task {uuid.UUID(int=3)} does not exist"
    )


async def test_every_execution_and_task_route_is_documented_with_an_example(api: Client) -> None:
    from tests.integration.api.test_openapi import _has_example

    document = (await api.get("http://testserver.local/docs/openapi.json")).json()
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        if path.startswith(("/api/v1/tenants/{tenant}/executions", "/api/v1/tenants/{tenant}/tasks"))
        for method, operation in methods.items()
    }

    assert len(operations) >= 10
    undocumented = {
        name
        for name, operation in operations.items()
        if not (operation.get("summary") and operation.get("description") and _has_example(operation))
    }
    assert undocumented == set()
    parameters = {p["name"] for p in operations["GET /api/v1/tenants/{tenant}/executions"]["parameters"]}
    assert {"workflow", "status", "triggeredBy", "parentId", "createdAfter", "createdBefore", "tag", "search"} <= (
        parameters
    )
