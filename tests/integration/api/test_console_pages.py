"""The console's schedules pages and its answers at large, in this process (real PostgreSQL and broker): roles and
CSRF of the schedule actions, a backfill's progress, compression, static files' caching, unknown paths and methods."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_api.app import create_app
from flowline_scheduler.bulk import BulkOperationLoop
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer, define, define_and_start

Client = AsyncTestClient  # type: ignore[type-arg]
API = "/api/v1/tenants/dev"
WORKFLOW = {
    "ref": "demo.tick",
    "public": True,
    "definition": {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]},
}


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
async def admin(settings: Settings) -> dict[str, str]:
    return bearer(await api_key(settings.database_url, "dev", "admin"))


@pytest.fixture
async def schedule(console: Client, admin: dict[str, str]) -> dict[str, Any]:
    """A paused schedule of a public workflow, every 15 minutes from the start of 2026."""
    assert (await define(_Api(console, admin), WORKFLOW)).status_code == 201
    body = {"name": "tick", "workflowRef": "demo.tick", "interval": "15m", "startAt": "2026-01-01T00:00:00Z"}
    created = await console.post(f"{API}/schedules", json=body, headers=admin)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


class _Api:
    """The API of tenant ``dev`` through the console's client, as ``tests.support.define`` calls it."""

    def __init__(self, client: Client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.client.post(f"{API}{path}", headers=self.headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(f"{API}{path}", headers=self.headers, **kwargs)


async def sign_in(client: Client, key: str) -> str:
    """Sign ``client`` in with ``key``; the CSRF token its forms carry."""
    await client.get("/ui/login")
    token = client.cookies["flowline_console_csrf"]
    signed = await client.post("/ui/login", data={"credential": key, "_csrf_token": token}, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    return token


async def test_the_schedules_list_filters_and_shows_next_and_last_runs(
    console: Client, settings: Settings, schedule: dict[str, Any], admin: dict[str, str]
) -> None:
    await sign_in(console, await api_key(settings.database_url, "dev", "viewer"))
    listed = await console.get("/ui/schedules")
    assert listed.status_code == 200 and 'href="/ui/schedules"' in listed.text  # in the navigation
    assert f'href="/ui/schedules/{schedule["id"]}"' in listed.text and "never run" in listed.text
    assert len(re.findall(r"<li><time datetime=", listed.text)) == 5
    assert "every 15m" in listed.text
    assert schedule["id"] not in (await console.get("/ui/schedules?paused=yes")).text
    assert schedule["id"] not in (await console.get("/ui/schedules?workflow=demo.other")).text

    triggered = await console.post(f"{API}/schedules/{schedule['id']}/trigger", headers=admin)
    assert triggered.status_code == 201, triggered.text
    execution_id = triggered.json()["executionId"]
    listed = await console.get("/ui/schedules?paused=no&workflow=demo.tick")
    assert f'data-last-run="{execution_id}"' in listed.text


async def test_a_viewer_sees_a_schedule_without_actions_and_cannot_post_them(
    console: Client, settings: Settings, schedule: dict[str, Any], admin: dict[str, str]
) -> None:
    token = await sign_in(console, await api_key(settings.database_url, "dev", "viewer"))
    page = await console.get(f"/ui/schedules/{schedule['id']}")
    assert page.status_code == 200 and "<h1>tick " in page.text
    assert 'details class="action"' not in page.text and "Confirm trigger" not in page.text

    refused = await console.post(
        f"/ui/schedules/{schedule['id']}/paused", data={"paused": "true", "_csrf_token": token}
    )
    assert refused.status_code == 403 and "needs the operator role" in refused.text
    assert (await console.get(f"{API}/schedules/{schedule['id']}", headers=admin)).json()["paused"] is False
    assert (await console.get(f"/ui/schedules/{uuid.uuid4()}")).status_code == 404


async def test_an_operator_pauses_triggers_and_backfills_with_live_progress(
    console: Client, settings: Settings, runtime: Runtime, schedule: dict[str, Any], admin: dict[str, str]
) -> None:
    token = await sign_in(console, await api_key(settings.database_url, "dev", "operator"))
    path = f"/ui/schedules/{schedule['id']}"
    forged = await console.post(f"{path}/paused", data={"paused": "true"})
    assert forged.status_code == 403
    paused = await console.post(f"{path}/paused", data={"paused": "true", "_csrf_token": token})
    assert paused.status_code == 200 and 'data-paused="true"' in paused.text  # followed the redirect
    assert "Resume…" in paused.text and "none while paused" in paused.text

    started = await console.post(f"{path}/trigger", data={"_csrf_token": token})
    execution_id = (await console.get(f"{API}/executions?scheduleId={schedule['id']}", headers=admin)).json()["items"][
        0
    ]["id"]
    assert f'<a id="started-execution" href="/ui/executions/{execution_id}">' in started.text
    assert f'data-execution="{execution_id}"' in started.text  # among its recent executions
    runs = await console.get(f"/ui/executions?scheduleId={schedule['id']}")
    assert runs.status_code == 200 and f'data-execution="{execution_id}"' in runs.text
    assert "1 matching" in runs.text
    other = await console.get(f"/ui/executions?scheduleId={uuid.uuid4()}")
    assert execution_id not in other.text and "0 matching" in other.text
    assert (await console.get("/ui/executions?scheduleId=nope")).status_code == 400

    window = {"start": "2026-03-01T00:00", "end": "2026-03-01T01:00", "_csrf_token": token}
    backfilled = await console.post(f"{path}/backfill", data=window, follow_redirects=False)
    assert backfilled.status_code == 303
    operation_id = backfilled.headers["location"].partition("backfill=")[2]
    following = await console.get(backfilled.headers["location"])
    assert f'sse-connect="/ui/bulk/{operation_id}/live"' in following.text
    assert '<dd data-count="total">4</dd>' in following.text
    someone_else = await console.get(f"{path}?backfill={uuid.uuid4()}")
    assert someone_else.status_code == 200 and "is not one of yours, or no longer exists" in someone_else.text

    worker = BulkOperationLoop(runtime.pool, runtime.outbox, settings.topics, 0.05, backfill_runs_per_second=1000)
    await worker.run_once()
    stream = await console.get(f"/ui/bulk/{operation_id}/live")  # a finished operation's stream ends at once
    assert 'data-count="succeeded">4<' in stream.text and "event: end" in stream.text
    assert "content-encoding" not in stream.headers  # event streams go out as they are

    reversed_window = {"start": "2026-03-02T00:00", "end": "2026-03-01T00:00", "_csrf_token": token}
    refused = await console.post(f"{path}/backfill", data=reversed_window)
    assert refused.status_code == 422 and "end: must be after start" in refused.text
    assert 'value="2026-03-02T00:00"' in refused.text  # the form keeps what was typed
    garbled = await console.post(f"{path}/backfill", data={**window, "start": "yesterday"})
    assert garbled.status_code == 422 and "start: &#39;yesterday&#39; is not a date and time" in garbled.text


async def test_pages_are_gzipd_when_asked_and_vendored_scripts_are_cached_for_good(
    console: Client, settings: Settings
) -> None:
    await sign_in(console, await api_key(settings.database_url, "dev", "admin"))
    page = await console.get("/ui/executions", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
    assert "<h1>Executions</h1>" in page.text  # decoded by the client
    assert "Accept-Encoding" in page.headers["vary"]
    plain = await console.get("/ui/executions", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and "<h1>Executions</h1>" in plain.text

    script = await console.get("/ui/static/htmx.org-2.0.11/htmx.min.js", headers={"Accept-Encoding": "gzip"})
    assert script.status_code == 200 and script.headers["content-encoding"] == "gzip"
    cache = script.headers["cache-control"]
    assert "immutable" in cache and "max-age=31536000" in cache and "public" in cache
    stylesheet = await console.get("/ui/static/console.css")
    assert stylesheet.status_code == 200 and "max-age=3600" in stylesheet.headers["cache-control"]
    assert "immutable" not in stylesheet.headers["cache-control"]


async def test_an_unknown_console_path_is_a_page_and_an_unknown_api_path_a_problem(
    console: Client, settings: Settings
) -> None:
    missing = await console.get("/ui/no/such/page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in missing.text
    assert missing.headers["content-security-policy"].startswith("default-src 'none'")

    await sign_in(console, await api_key(settings.database_url, "dev", "admin"))
    deeper = await console.get("/ui/executions/not-a-page/at-all")
    assert deeper.status_code == 404 and "<h1>Not Found</h1>" in deeper.text
    missing_static = await console.get("/ui/static/no-such-file.js")
    assert missing_static.status_code == 404 and missing_static.headers["content-type"].startswith("text/html")

    api = await console.get("/api/v1/no/such/route")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


async def test_a_method_a_console_route_does_not_take_is_a_page_and_an_api_one_a_problem(
    console: Client, settings: Settings, admin: dict[str, str]
) -> None:
    await sign_in(console, await api_key(settings.database_url, "dev", "admin"))
    refused = await console.delete("/ui/executions")
    assert refused.status_code == 405 and refused.headers["content-type"].startswith("text/html")
    assert "<h1>Method Not Allowed</h1>" in refused.text
    assert refused.headers["content-security-policy"].startswith("default-src 'none'")

    api = await console.delete(f"{API}/executions", headers=admin)
    assert api.status_code == 405 and api.headers["content-type"] == "application/problem+json"


async def test_the_step_logs_and_the_logs_page_search_mark_matches_and_filter_by_attempt(
    console: Client, settings: Settings, pool: asyncpg.Pool
) -> None:
    started = await define_and_start(pool, settings, "demo.searched", WORKFLOW["definition"], {})
    tenant_id = await pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", started.id)
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, attempts) "
        "VALUES ($1, $2, $3, 'only', 0, 'action', 'failed', 2)",
        task_id,
        tenant_id,
        started.id,
    )
    messages = ["connecting", "<b>disk</b> FULL & more", "giving up", "connecting", "disk full again", "giving up"]
    await pool.executemany(
        "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
        "VALUES ($1, $2, $3, $4, 'only', $5, 'INFO', $6, $7)",
        [
            (uuid.uuid4(), tenant_id, started.id, task_id, 1 + n // 3, message, datetime(2026, 1, 1, 10, n, tzinfo=UTC))
            for n, message in enumerate(messages)
        ],
    )
    await sign_in(console, await api_key(settings.database_url, "dev", "admin"))  # it sees executions of any owner

    pane = (await console.get(f"/ui/executions/{started.id}?step=only&q=full&context=1")).text
    assert "&lt;b&gt;disk&lt;/b&gt; <mark>FULL</mark> &amp; more" in pane  # escaped, then marked
    assert "disk <mark>full</mark> again" in pane
    assert pane.count('class="log level-INFO context"') == 4  # the records around the two matches, dimmed
    assert pane.count('class="log gap"') == 1  # between the two groups
    assert 'value="full"' in pane and "q=full" in pane  # the search stays in the form and the links
    second = (await console.get(f"/ui/executions/{started.id}?step=only&q=DISK&attempt=2")).text
    assert "<mark>disk</mark> full again" in second and "giving up" in second and "&lt;b&gt;" not in second
    assert second.count("<mark>") == 1
    markup = (await console.get(f"/ui/executions/{started.id}/logs?q=%3Cb%3E&context=0")).text
    assert "<mark>&lt;b&gt;</mark>disk&lt;/b&gt; FULL &amp; more" in markup and "<b>" not in markup
    assert "connecting" not in markup

    for query, field in (("attempt=0", "attempt"), ("q=" + "x" * 201, "q"), ("q=x&context=21", "context")):
        refused = await console.get(f"/ui/executions/{started.id}/logs?{query}")
        assert refused.status_code == 400 and f"{field}:" in refused.text, query
