"""Task log routes over real PostgreSQL: filters, pages (offset and cursor), search with context, errors, and both
download formats."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from flowline.db.migrate import ensure_tenant_async
from flowline.settings import Settings
from flowline_api.domain.logs.search import SEARCH_SCAN_RECORDS
from litestar.testing import AsyncTestClient

from tests.support import bulk_fill, define_and_start

BASE = datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
DEFINITION = {
    "steps": [
        {"id": "fetch", "type": "action", "action": "core.log", "input": "hello"},
        {"id": "store", "type": "action", "action": "core.noop", "needs": ["fetch"]},
    ]
}


async def _seed(pool: asyncpg.Pool, settings: Settings) -> dict[str, Any]:
    """A pending execution with two steps and log records at every level (none from the services)."""
    started = await define_and_start(pool, settings, "demo.logs", DEFINITION, {})
    execution_id = started.id
    tenant_id = await pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
    tasks = {}
    for position, step_id in enumerate(("fetch", "store")):
        tasks[step_id] = uuid.uuid4()
        await pool.execute(
            "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status) "
            "VALUES ($1, $2, $3, $4, $5, 'action', 'completed')",
            tasks[step_id],
            tenant_id,
            execution_id,
            step_id,
            position,
        )
    rows = []
    levels = ["DEBUG", "INFO", "WARN", "ERROR"]
    for index in range(12):
        step_id = "fetch" if index < 8 else "store"
        rows.append(
            (
                uuid.uuid4(),
                tenant_id,
                execution_id,
                tasks[step_id],
                step_id,
                1 + index % 2,
                levels[index % 4],
                f"line {index}",
                BASE + timedelta(seconds=index),
                {"n": index},
            )
        )
    await pool.executemany(
        "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, "
        "metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rows,
    )
    return {"execution_id": str(execution_id), "tenant_id": tenant_id, "tasks": tasks}


async def test_execution_logs_filter_by_level_and_step_and_page(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    path = f"executions/{seeded['execution_id']}/logs"

    everything = (await api.get(path)).json()
    assert everything["total"] == 12 and everything["limit"] == 1000 and everything["offset"] == 0
    assert [log["message"] for log in everything["logs"]] == [f"line {index}" for index in range(12)]
    first = everything["logs"][0]
    assert set(first) == {"id", "level", "message", "timestamp", "stepId", "attempt"}
    assert first["level"] == "DEBUG" and first["stepId"] == "fetch" and first["attempt"] == 1
    assert first["timestamp"].startswith("2026-01-01T10:00:00.123")

    warn_and_above = (await api.get(path, params={"level": "WARN"})).json()
    assert warn_and_above["total"] == 6
    assert {log["level"] for log in warn_and_above["logs"]} == {"WARN", "ERROR"}
    assert (await api.get(path, params={"level": "debug"})).json()["total"] == 12

    store = (await api.get(path, params={"stepId": "store", "level": "INFO"})).json()
    assert [log["message"] for log in store["logs"]] == ["line 9", "line 10", "line 11"]

    page = (await api.get(path, params={"limit": 5, "offset": 5})).json()
    assert page["total"] == 12 and page["limit"] == 5 and page["offset"] == 5
    assert [log["message"] for log in page["logs"]] == [f"line {index}" for index in range(5, 10)]


async def test_task_logs_filter_and_page(api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings) -> None:
    seeded = await _seed(pool, settings)
    path = f"tasks/{seeded['tasks']['fetch']}/logs"

    default = (await api.get(path)).json()
    assert default["total"] == 8 and default["limit"] == 50 and default["offset"] == 0
    assert {log["stepId"] for log in default["logs"]} == {"fetch"}

    errors = (await api.get(path, params={"level": "ERROR", "limit": 1, "offset": 1})).json()
    assert errors["total"] == 2
    assert [log["message"] for log in errors["logs"]] == ["line 7"]


async def test_bad_requests_and_unknown_ids(api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings) -> None:
    seeded = await _seed(pool, settings)
    execution_path = f"executions/{seeded['execution_id']}/logs"

    bad_level = await api.get(execution_path, params={"level": "LOUD"})
    assert bad_level.status_code == 400
    assert bad_level.headers["content-type"].startswith("application/problem+json")
    assert "DEBUG, INFO, WARN, ERROR" in bad_level.json()["detail"]
    assert (await api.get(f"tasks/{seeded['tasks']['fetch']}/logs", params={"level": "TRACE"})).status_code == 400
    assert (await api.get(execution_path, params={"limit": 10_001})).status_code == 400
    assert (await api.get(execution_path, params={"limit": 10_000})).status_code == 200
    assert (await api.get(execution_path, params={"offset": -1})).status_code == 400

    for path in (
        f"executions/{uuid.uuid4()}/logs",
        f"executions/{uuid.uuid4()}/logs/download",
        f"tasks/{uuid.uuid4()}/logs",
    ):
        missing = await api.get(path)
        assert missing.status_code == 404, path
        assert missing.headers["content-type"].startswith("application/problem+json")

    # Another tenant sees none of it.
    await ensure_tenant_async(settings.database_url, "other")
    other = "http://testserver.local/api/v1/tenants/other"
    for path in (execution_path, f"{execution_path}/download", f"tasks/{seeded['tasks']['fetch']}/logs"):
        assert (await api.get(f"{other}/{path}")).status_code == 404, path


async def test_download_as_text_and_json(api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings) -> None:
    seeded = await _seed(pool, settings)
    execution_id = seeded["execution_id"]

    text = await api.get(f"executions/{execution_id}/logs/download")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert text.headers["content-disposition"] == f'attachment; filename="execution-{execution_id}-logs.txt"'
    lines = text.text.splitlines()
    assert len(lines) == 12
    assert lines[0] == "2026-01-01T10:00:00.123Z DEBUG [fetch#1] line 0"
    assert lines[1] == "2026-01-01T10:00:01.123Z INFO  [fetch#2] line 1"
    assert lines[11] == "2026-01-01T10:00:11.123Z ERROR [store#2] line 11"

    as_json = await api.get(f"executions/{execution_id}/logs/download", params={"format": "json"})
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.headers["content-disposition"] == f'attachment; filename="execution-{execution_id}-logs.json"'
    records = json.loads(as_json.text)
    assert [record["message"] for record in records] == [f"line {index}" for index in range(12)]
    assert records[0]["timestamp"] == "2026-01-01T10:00:00.123Z"
    assert records[0]["metadata"] == {"n": 0} and records[0]["taskId"] == str(seeded["tasks"]["fetch"])

    assert (await api.get(f"executions/{execution_id}/logs/download", params={"format": "xml"})).status_code == 400


async def test_an_empty_log_downloads_as_an_empty_file(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    started = await define_and_start(pool, settings, "demo.quiet", DEFINITION, {})
    assert (await api.get(f"executions/{started.id}/logs/download")).text == ""
    assert json.loads((await api.get(f"executions/{started.id}/logs/download?format=json")).text) == []


async def test_a_large_log_downloads_whole_and_in_order(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    await bulk_fill(
        pool,
        "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
        "SELECT gen_random_uuid(), $1, $2, $3, 'bulk', 1, 'INFO', 'bulk ' || n, "
        "'2026-02-01T00:00:00Z'::timestamptz + n * interval '1 millisecond' FROM generate_series(1, 100000) n",
        seeded["tenant_id"],
        uuid.UUID(seeded["execution_id"]),
        seeded["tasks"]["store"],
    )
    lines: list[str] = []
    chunks = 0
    async with api.stream("GET", f"executions/{seeded['execution_id']}/logs/download") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
        chunks = response.num_bytes_downloaded
    assert chunks > 0
    assert len(lines) == 100_012
    assert lines[12] == "2026-02-01T00:00:00.001Z INFO  [bulk#1] bulk 1"
    assert lines[-1] == "2026-02-01T00:01:40.000Z INFO  [bulk#1] bulk 100000"

    # As JSON too, across the pages it is read in: one array of every record.
    as_json = await api.get(f"executions/{seeded['execution_id']}/logs/download", params={"format": "json"})
    records = json.loads(as_json.text)
    assert len(records) == 100_012
    assert records[12]["message"] == "bulk 1" and records[-1]["message"] == "bulk 100000"


async def test_an_execution_includes_its_latest_100_log_records_when_asked(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    await pool.executemany(
        "INSERT INTO task_logs (id, tenant_id, execution_id, step_id, level, message, timestamp) "
        "VALUES ($1, $2, $3, 'store', 'INFO', $4, $5)",
        [
            (
                uuid.uuid4(),
                seeded["tenant_id"],
                uuid.UUID(seeded["execution_id"]),
                f"later {n}",
                BASE + timedelta(hours=1, seconds=n),
            )
            for n in range(100)
        ],
    )
    path = f"executions/{seeded['execution_id']}"

    plain = (await api.get(path)).json()
    with_logs = (await api.get(path, params={"include": "logs"})).json()

    assert "logs" not in plain
    latest = (await api.get(f"{path}/logs", params={"offset": 12, "limit": 100})).json()["logs"]
    assert with_logs["logs"] == latest
    assert [log["message"] for log in with_logs["logs"]] == [f"later {n}" for n in range(100)]
    assert {key: value for key, value in with_logs.items() if key != "logs"} == plain


async def test_an_unknown_include_is_400_naming_what_can_be_included(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)

    response = await api.get(f"executions/{seeded['execution_id']}", params={"include": "logs,steps"})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "include: 'steps' is not one of logs"


async def _insert_messages(
    pool: asyncpg.Pool, seeded: dict[str, Any], step_id: str, messages: list[str], *, start: datetime
) -> None:
    """One INFO record per message, a second apart from ``start``, in the seeded task of ``step_id``."""
    await pool.executemany(
        "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
        "VALUES ($1, $2, $3, $4, $5, 1, 'INFO', $6, $7)",
        [
            (
                uuid.uuid4(),
                seeded["tenant_id"],
                uuid.UUID(seeded["execution_id"]),
                seeded["tasks"][step_id],
                step_id,
                message,
                start + timedelta(seconds=position),
            )
            for position, message in enumerate(messages)
        ],
    )


async def test_logs_filter_by_attempt(api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings) -> None:
    seeded = await _seed(pool, settings)

    second = (await api.get(f"executions/{seeded['execution_id']}/logs", params={"attempt": 2})).json()
    assert [log["message"] for log in second["logs"]] == [f"line {index}" for index in range(1, 12, 2)]
    assert second["total"] == 6
    combined = await api.get(
        f"executions/{seeded['execution_id']}/logs", params={"attempt": 1, "stepId": "store", "level": "WARN"}
    )
    assert [log["message"] for log in combined.json()["logs"]] == ["line 10"]
    task = (await api.get(f"tasks/{seeded['tasks']['fetch']}/logs", params={"attempt": 1})).json()
    assert [log["message"] for log in task["logs"]] == ["line 0", "line 2", "line 4", "line 6"]


async def test_a_search_answers_each_match_with_its_context_in_groups_of_one_task(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    later = BASE + timedelta(hours=1)
    messages = [f"step {n}" for n in range(30)]
    messages[5] = "Disk FULL on /var"
    messages[8] = "disk full again"
    messages[20] = "retrying\n  caused by: DISK FULL\n  at write()"
    await _insert_messages(pool, seeded, "fetch", messages, start=later)
    # The other task logs at the same times: none of its records is context of the fetch task's matches.
    await _insert_messages(pool, seeded, "store", [f"store {n}" for n in range(30)], start=later)
    path = f"executions/{seeded['execution_id']}/logs"

    plain = (await api.get(path, params={"q": "disk full"})).json()
    assert [log["message"] for log in plain["logs"]] == [messages[5], messages[8], messages[20]]
    assert plain["total"] is None and plain["nextCursor"] is None
    assert {log["matched"] for log in plain["logs"]} == {True}
    assert [log["group"] for log in plain["logs"]] == [0, 1, 2]

    with_context = (await api.get(path, params={"q": "disk full", "context": 2})).json()
    shown = [(log["message"], log["matched"], log["group"]) for log in with_context["logs"]]
    # The contexts of 5 (3 to 7) and 8 (6 to 10) share records: they make one group, each record once.
    assert shown == [
        ("step 3", False, 0),
        ("step 4", False, 0),
        (messages[5], True, 0),
        ("step 6", False, 0),
        ("step 7", False, 0),
        (messages[8], True, 0),
        ("step 9", False, 0),
        ("step 10", False, 0),
        ("step 18", False, 1),
        ("step 19", False, 1),
        (messages[20], True, 1),  # a multi-line record is one record, whole
        ("step 21", False, 1),
        ("step 22", False, 1),
    ]
    ids = [log["id"] for log in with_context["logs"]]
    assert len(ids) == len(set(ids))

    # Context comes from the records the other filters keep, and a task's search reads that task only.
    task_search = await api.get(f"tasks/{seeded['tasks']['store']}/logs", params={"q": "STORE 2", "context": 1})
    assert [log["message"] for log in task_search.json()["logs"]] == [
        "store 1",
        "store 2",
        "store 3",
        "store 19",
        "store 20",
        "store 21",
        "store 22",
        "store 23",
        "store 24",
        "store 25",
        "store 26",
        "store 27",
        "store 28",
        "store 29",
    ]
    errors_only = await api.get(path, params={"q": "line", "level": "ERROR", "context": 1})
    assert [log["message"] for log in errors_only.json()["logs"]] == ["line 3", "line 7", "line 11"]
    # Records without search keep their shape.
    assert set((await api.get(path, params={"limit": 1})).json()["logs"][0]) == {
        "id",
        "level",
        "message",
        "timestamp",
        "stepId",
        "attempt",
    }


async def test_a_search_takes_percent_underscore_and_backslash_as_they_are(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    messages = ["100% done", "1000 done", "a_b", "axb", "C:\\temp", "C:temp"]
    await _insert_messages(pool, seeded, "store", messages, start=BASE + timedelta(hours=1))
    path = f"executions/{seeded['execution_id']}/logs"

    async def found(text: str) -> list[str]:
        return [log["message"] for log in (await api.get(path, params={"q": text})).json()["logs"]]

    assert await found("0%") == ["100% done"]
    assert await found("A_B") == ["a_b"]
    assert await found("C:\\t") == ["C:\\temp"]
    assert await found("%") == ["100% done"]
    assert await found("nothing like it") == []


async def test_keyset_pages_keep_their_filters(api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings) -> None:
    seeded = await _seed(pool, settings)
    path = f"executions/{seeded['execution_id']}/logs"

    async def every_page(params: dict[str, Any]) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor = None
        while True:
            page = (await api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})).json()
            pages.append([log["message"] for log in page["logs"]])
            cursor = page["nextCursor"]
            if cursor is None:
                return pages

    assert await every_page({"level": "INFO", "attempt": 2, "limit": 2}) == [
        ["line 1", "line 3"],
        ["line 5", "line 7"],
        ["line 9", "line 11"],
    ]
    assert await every_page({"q": "LINE 1", "limit": 2}) == [["line 1", "line 10"], ["line 11"]]
    # A record stored after a page was read, later than it, is on the next page.
    first = (await api.get(path, params={"limit": 12})).json()
    assert first["nextCursor"] is None
    second_page = (await api.get(path, params={"limit": 11})).json()
    await _insert_messages(pool, seeded, "store", ["late"], start=BASE + timedelta(hours=2))
    rest = (await api.get(path, params={"cursor": second_page["nextCursor"]})).json()
    assert [log["message"] for log in rest["logs"]] == ["line 11", "late"]


async def test_a_search_reads_a_bounded_number_of_records_a_page(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    await bulk_fill(
        pool,
        "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
        "SELECT gen_random_uuid(), $1, $2, $3, 'store', 1, 'INFO', "
        "CASE WHEN n = $4 THEN 'the needle' ELSE 'hay ' || n END, "
        "'2026-02-01T00:00:00Z'::timestamptz + n * interval '1 millisecond' FROM generate_series(1, $4) n",
        seeded["tenant_id"],
        uuid.UUID(seeded["execution_id"]),
        seeded["tasks"]["store"],
        SEARCH_SCAN_RECORDS + 100,
    )
    path = f"executions/{seeded['execution_id']}/logs"

    first = (await api.get(path, params={"q": "needle"})).json()
    assert first["logs"] == [] and first["nextCursor"] is not None
    second = (await api.get(path, params={"q": "needle", "cursor": first["nextCursor"]})).json()
    assert [log["message"] for log in second["logs"]] == ["the needle"]
    assert second["nextCursor"] is None


async def test_bad_search_attempt_context_and_cursor_are_refused_naming_the_field(
    api: AsyncTestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    seeded = await _seed(pool, settings)
    path = f"executions/{seeded['execution_id']}/logs"
    cursor = (await api.get(path, params={"limit": 1})).json()["nextCursor"]

    for params, field in [
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "x", "context": 21}, "context"),
        ({"q": "x", "context": -1}, "context"),
        ({"context": 2}, "context"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": "first"}, "attempt"),
        ({"q": "x", "offset": 5}, "offset"),
        ({"q": "x", "context": 1, "limit": 1001}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": cursor, "offset": 1}, "offset"),
    ]:
        response = await api.get(path, params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.json()["detail"], (params, response.json())
    task_path = f"tasks/{seeded['tasks']['fetch']}/logs"
    assert (await api.get(task_path, params={"q": "x" * 201})).status_code == 400
    assert (await api.get(path, params={"q": "x" * 200})).status_code == 200
