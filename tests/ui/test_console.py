"""The operator console in a real browser: sign-in, the Run form, the live graph, steps' attempts and logs,
actions and their refusals, roles, ownership and tenants (the services as real processes)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from playwright.async_api import Page, expect

from tests.support import CountingServer, define
from tests.ui.conftest import JWT_SECRET, Console

pytestmark = pytest.mark.e2e

HELLO = {
    "ref": "demo.hello",
    "public": True,
    "inputSchema": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1, "description": "who to greet"}},
    },
    "definition": {
        "steps": [
            {"id": "greet", "type": "action", "action": "core.log", "input": {"message": "hello {{ input.name }}"}},
            {"id": "nap", "type": "sleep", "duration": "2s", "needs": ["greet"]},
            {"id": "done", "type": "action", "action": "core.echo", "input": "{{ input.name }}", "needs": ["nap"]},
        ]
    },
}
FLAKY = {
    "ref": "demo.flaky",
    "public": True,
    "definition": {
        "steps": [
            {
                "id": "note",
                "type": "action",
                "action": "core.log",
                "input": {"message": "charging the card", "level": "WARN"},
            },
            {
                "id": "charge",
                "type": "action",
                "action": "core.fail",
                "needs": ["note"],
                "input": {"message": "card declined", "retryable": True},
                "retry": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1},
            },
        ]
    },
}
APPROVAL = {"ref": "demo.approval", "definition": {"steps": [{"id": "approval", "type": "wait"}]}}
GATES = {
    "ref": "demo.gates",
    "definition": {"steps": [{"id": "first", "type": "wait"}, {"id": "second", "type": "wait", "needs": ["first"]}]},
}
NAP = {"ref": "demo.nap", "definition": {"steps": [{"id": "nap", "type": "sleep", "duration": "1h"}]}}


@pytest.fixture(scope="package")
async def workflows(base_url: str, tenant: str, keys: dict[str, str]) -> None:
    async with httpx.AsyncClient(
        base_url=f"{base_url}/api/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {keys['admin']}"}
    ) as client:
        for workflow in (HELLO, FLAKY, NAP, APPROVAL, GATES):
            created = await define(client, workflow)
            assert created.status_code == 201, created.text


@pytest.fixture(scope="package")
async def schedule(workflows: None, base_url: str, tenant: str, keys: dict[str, str]) -> str:
    """A schedule of the public ``demo.hello`` made through the API, hourly from now: it fires during no test."""
    async with httpx.AsyncClient(
        base_url=f"{base_url}/api/v1/tenants/{tenant}", headers={"Authorization": f"Bearer {keys['admin']}"}
    ) as client:
        body = {"name": "hourly-hello", "workflowRef": "demo.hello", "interval": "1h", "input": {"name": "Cron"}}
        created = await client.post("/schedules", json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


async def _start(api: httpx.AsyncClient, ref: str, execution_input: dict[str, Any] | None = None) -> str:
    started = await api.post(f"/workflows/{ref}/execute", json={"input": execution_input or {}})
    assert started.status_code == 202, started.text
    return str(started.json()["executionId"])


async def _until_status(api: httpx.AsyncClient, execution_id: str, status: str) -> None:
    async with asyncio.timeout(60):
        while (await api.get(f"/executions/{execution_id}")).json()["status"] != status:
            await asyncio.sleep(0.1)


async def _csrf_token(page: Page) -> str:
    token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
    assert token
    return token


async def test_a_signed_out_request_is_sent_to_sign_in(console: Console) -> None:
    page = await console.page()
    execution_id = uuid.uuid4()
    response = await page.goto(f"/ui/executions/{execution_id}?step=x")
    assert response is not None
    await expect(page.locator("h1")).to_have_text("Sign in")
    assert "/ui/login?next=" in page.url
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    await page.fill("#credential", "fl_not_a_key")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_contain_text("unknown, revoked or expired")


async def test_signing_in_with_a_jwt_and_out_again(console: Console, tenant: str) -> None:
    now = int(time.time())
    claims = {"sub": "ada", "tenant": tenant, "roles": ["viewer"], "iat": now, "exp": now + 600}
    page = await console.sign_in(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    await expect(page.locator(".who")).to_contain_text(f"ada · viewer · {tenant}")
    cookie = next(cookie for cookie in await console.context.cookies() if cookie["name"] == "flowline_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert "ada" not in cookie["value"]  # sealed, not the credential itself

    await page.click("text=Sign out")
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.goto("/ui/workflows")
    assert "/ui/login?next=/ui/workflows" in page.url


@pytest.mark.usefixtures("workflows")
async def test_run_form_starts_an_execution_whose_graph_turns_completed_live(
    console: Console, keys: dict[str, str], screenshots: Path
) -> None:
    page = await console.sign_in(keys["operator"])
    await page.goto("/ui/workflows/demo.hello")
    await expect(page.locator("svg.graph .node")).to_have_count(3)
    await page.screenshot(path=screenshots / "console-workflow.png", full_page=True)

    await page.click("form.run button[type=submit]")  # no name: the API's validation message beside the field
    await expect(page.locator("#error-name")).to_contain_text("is a required property")

    await page.fill("#field-name", "Ada")
    await page.click("form.run button[type=submit]")
    await page.wait_for_url(re.compile(r"/ui/executions/[0-9a-f-]{36}$"))
    await page.evaluate("window.consoleMarker = 'still the same page'")  # gone if anything reloads the page
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    for step in ("greet", "nap", "done"):
        await expect(page.locator(f'.node[data-step="{step}"]')).to_have_attribute("data-status", "completed")
    assert await page.evaluate("window.consoleMarker") == "still the same page"

    await page.click('.node[data-step="greet"]')
    await expect(page.locator(".logs")).to_contain_text("hello Ada")
    await page.screenshot(path=screenshots / "console-execution.png", full_page=True)


@pytest.mark.usefixtures("workflows")
async def test_a_failed_step_shows_its_attempts_and_logs_and_is_retried_with_a_note(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.flaky")
    await _until_status(api, execution_id, "failed")
    page = await console.sign_in(keys["admin"])
    await page.goto(f"/ui/executions/{execution_id}")
    await expect(page.locator('.node[data-step="charge"]')).to_have_attribute("data-status", "failed")

    await page.click('.node[data-step="charge"]')
    rows = page.locator("table.attempts tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(1)).to_contain_text("card declined")

    await page.click('.node[data-step="note"]')
    await expect(page.locator(".logs")).to_contain_text("charging the card")
    await page.select_option("select[name=level]", "ERROR")
    await page.click(".log-filter button[type=submit]")
    await expect(page.locator("#no-logs")).to_have_text("No log records at ERROR and above yet.")
    download = page.locator(".log-filter a[download]")
    await expect(download).to_have_attribute("href", f"/ui/executions/{execution_id}/logs.txt")
    text = await page.request.get(f"/ui/executions/{execution_id}/logs.txt")
    assert "charging the card" in await text.text()
    await page.click("text=All of this step's logs")
    await expect(page.locator("pre.logs")).to_contain_text("[note#1] charging the card")
    await page.select_option("select[name=step]", "charge")
    await page.click(".filters button[type=submit]")
    await expect(page.locator("pre.logs")).to_contain_text("[charge#2]")
    await expect(page.locator("pre.logs")).not_to_contain_text("charging the card")

    await page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    await page.goto(f"/ui/executions/{execution_id}?step=charge")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto(f"/ui/executions/{execution_id}")

    await page.click("summary:has-text('Retry…')")
    await page.fill("input[name=note]", "the card was renewed")
    await page.click("button:has-text('Confirm retry')")
    await expect(page.locator(".notice")).to_have_text("retry requested")
    events = (await api.get(f"/executions/{execution_id}/events", params={"limit": 1000})).json()["events"]
    retries = [event for event in events if event["event"] == "RETRY_REQUESTED"]
    assert [event["data"].get("note") for event in retries] == ["the card was renewed"]


@pytest.mark.usefixtures("workflows")
async def test_pausing_resuming_and_cancelling_a_sleeping_execution_and_the_409_of_cancelling_again(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.nap")
    await _until_status(api, execution_id, "running")
    page = await console.sign_in(keys["admin"])
    await page.goto(f"/ui/executions/{execution_id}")
    forged = await page.request.post(f"/ui/executions/{execution_id}/cancel", form={"reason": "no CSRF token"})
    assert forged.status == 403
    assert (await api.get(f"/executions/{execution_id}")).json()["status"] == "running"

    await page.click("summary:has-text('Pause…')")
    await page.click("button:has-text('Confirm pause')")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "paused")
    await page.click("summary:has-text('Resume…')")
    await page.click("button:has-text('Confirm resume')")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "running")

    await page.click("summary:has-text('Cancel…')")
    await page.fill("input[name=reason]", "not needed any more")
    await page.click("button:has-text('Confirm cancel')")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "cancelled", timeout=60_000)
    await expect(page.locator("summary:has-text('Cancel…')")).to_have_count(0)

    again = await page.request.post(
        f"/ui/executions/{execution_id}/cancel", form={"_csrf_token": await _csrf_token(page)}
    )
    assert again.status == 409
    assert "is already cancelled" in await again.text()


@pytest.mark.usefixtures("workflows")
async def test_open_forms_stay_open_and_filled_in_while_the_execution_moves_on(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.gates")
    page = await console.sign_in(keys["admin"])
    await page.goto(f"/ui/executions/{execution_id}?step=second")
    await expect(page.locator('.node[data-step="first"]')).to_have_attribute("data-status", "running")
    await page.click("summary:has-text('Cancel…')")
    await page.fill("#actions input[name=reason]", "half typed")
    rerun_version = page.locator("details:has-text('Rerun from this step') input[name=version]")
    await page.click("summary:has-text('Rerun from this step…')")
    await rerun_version.fill("1")

    resolved = await api.post(f"/executions/{execution_id}/promises/first/resolve", json={"value": 1})
    assert resolved.status_code == 200, resolved.text
    await expect(page.locator('.node[data-step="second"]')).to_have_attribute("data-status", "running")
    await expect(page.locator("#step")).to_contain_text("running")  # the pane of `second` was replaced
    await expect(rerun_version).to_be_visible()
    await expect(rerun_version).to_have_value("1")
    await expect(page.locator("#actions input[name=reason]")).to_be_visible()
    await expect(page.locator("#actions input[name=reason]")).to_have_value("half typed")
    await page.click("button:has-text('Confirm cancel')")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "cancelled", timeout=60_000)


@pytest.mark.usefixtures("workflows")
async def test_a_pages_live_stream_sends_only_what_changed_after_the_page_was_rendered(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.nap")
    await _until_status(api, execution_id, "running")
    page = await console.sign_in(keys["admin"])
    await page.add_init_script(
        "window.swapped = []; window.streaming = false;"
        "document.addEventListener('htmx:sseOpen', () => { window.streaming = true; });"
        "document.addEventListener('htmx:sseMessage', (e) => window.swapped.push(e.target.id));"
    )
    await page.goto(f"/ui/executions/{execution_id}")
    await page.wait_for_function("window.streaming")

    paused = await api.post(f"/executions/{execution_id}/pause")
    assert paused.status_code == 200, paused.text
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "paused")
    assert await page.evaluate("window.swapped.filter((id) => id === 'actions').length") == 1  # the pause's only
    await expect(page.locator("summary:has-text('Resume…')")).to_be_visible()


@pytest.mark.usefixtures("workflows")
async def test_a_viewer_sees_no_actions_and_cannot_post_them(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient, schedule: str
) -> None:
    execution_id = await _start(api, "demo.flaky")  # a public workflow's: the viewer may see it
    await _until_status(api, execution_id, "failed")
    page = await console.sign_in(keys["viewer"])
    await page.goto(f"/ui/executions/{execution_id}")
    await expect(page.locator(".node")).to_have_count(2)
    await expect(page.locator("details.action")).to_have_count(0)
    await page.goto("/ui/workflows/demo.hello")
    await expect(page.locator("svg.graph .node")).to_have_count(3)
    await expect(page.locator("form.run")).to_have_count(0)
    await page.goto(f"/ui/schedules/{schedule}")
    await expect(page.locator("h1")).to_contain_text("hourly-hello")
    await expect(page.locator("details.action")).to_have_count(0)

    refused = await page.request.post(
        f"/ui/executions/{execution_id}/retry", form={"_csrf_token": await _csrf_token(page)}
    )
    assert refused.status == 403
    assert "needs the operator role" in await refused.text()
    assert (await api.get(f"/executions/{execution_id}")).json()["status"] == "failed"

    steps = [{"id": "first", "type": "action", "action": "core.noop"}]
    assert (await define(api, {"ref": "demo.changing", "definition": {"steps": steps}})).status_code == 201
    steps = [*steps, {"id": "second", "type": "action", "action": "core.echo", "needs": ["first"]}]
    changed = await api.patch("/workflows/demo.changing", json={"definition": {"steps": steps}})
    assert changed.status_code == 200, changed.text
    await page.goto("/ui/workflows/demo.changing")
    await page.click("text=changes from v1")
    await expect(page.locator("h1")).to_contain_text("demo.changing: v1 → v2")
    added = await page.locator(".diff .added").all_inner_texts()
    assert '+        "id": "second",' in [line.rstrip() for line in added]


@pytest.mark.usefixtures("workflows")
async def test_another_tenants_or_principals_execution_is_not_found(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.nap")  # not public: the admin's own
    try:
        for key in ("other-tenant", "operator"):
            page = await console.sign_in(keys[key])
            response = await page.goto(f"/ui/executions/{execution_id}")
            assert response is not None and response.status == 404
            await expect(page.locator(".error")).to_contain_text(f"execution {execution_id} does not exist")
            await page.close()
    finally:
        await api.post(f"/executions/{execution_id}/cancel", json={})


@pytest.mark.usefixtures("workflows")
async def test_the_executions_list_filters_and_bulk_cancels_what_matches(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient, screenshots: Path
) -> None:
    sleeping = [await _start(api, "demo.nap") for _ in range(3)]
    page = await console.sign_in(keys["admin"])
    await page.goto("/ui/executions?workflow=demo.nap&status=pending&status=running")
    for execution_id in sleeping:
        await expect(page.locator(f'tr[data-execution="{execution_id}"]')).to_have_count(1)
    await expect(page.locator("tr[data-execution] .status-completed")).to_have_count(0)
    await page.screenshot(path=screenshots / "console-executions.png", full_page=True)

    await page.evaluate("window.consoleMarker = 'still the same page'")
    cancelled = await api.post(f"/executions/{sleeping[0]}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    await expect(page.locator(f'tr[data-execution="{sleeping[0]}"] .badge')).to_have_text("cancelled")
    assert await page.evaluate("window.consoleMarker") == "still the same page"

    await page.check(f'input[name=id][value="{sleeping[1]}"]')
    paused = await api.post(f"/executions/{sleeping[1]}/pause")  # its row is replaced: the tick stays
    assert paused.status_code == 200, paused.text
    await expect(page.locator(f'tr[data-execution="{sleeping[1]}"] .badge')).to_have_text("paused")
    await expect(page.locator(f'input[name=id][value="{sleeping[1]}"]')).to_be_checked()
    await page.click("summary:has-text('Cancel or retry the ticked executions')")
    await page.click("button:has-text('Confirm: cancel ticked')")
    await page.wait_for_url(re.compile(r"/ui/bulk/[0-9a-f-]{36}$"))
    await expect(page.locator("#bulk-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(page.locator('[data-count="total"]')).to_have_text("1")
    await _until_status(api, sleeping[1], "cancelled")
    assert (await api.get(f"/executions/{sleeping[2]}")).json()["status"] in ("pending", "running")

    await page.goto("/ui/executions?workflow=demo.nap&status=pending&status=running")
    await page.click("summary:has-text('Cancel or retry every execution')")
    await page.click("button:has-text('Confirm: cancel all matching')")
    await page.wait_for_url(re.compile(r"/ui/bulk/[0-9a-f-]{36}$"))
    await expect(page.locator("#bulk-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    for execution_id in sleeping:
        await _until_status(api, execution_id, "cancelled")
    assert int(await page.locator('[data-count="succeeded"]').inner_text()) >= 1  # not those cancelled before


@pytest.mark.usefixtures("workflows")
async def test_rerun_from_a_step_with_new_input_and_resolve_a_promise(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    execution_id = await _start(api, "demo.hello", {"name": "Ada"})
    await _until_status(api, execution_id, "completed")
    page = await console.sign_in(keys["admin"])
    await page.goto(f"/ui/executions/{execution_id}?step=done")
    await page.click("summary:has-text('Rerun from this step…')")
    await expect(page.locator("details.action[open]")).to_contain_text("runs again: done;")
    await page.fill("textarea[name=input]", '{"name": "Grace"}')
    await page.click("button:has-text('Confirm rerun')")
    await page.wait_for_url(re.compile(r"/ui/executions/[0-9a-f-]{36}\?notice="))
    rerun_id = page.url.split("/ui/executions/")[1].split("?")[0]
    assert rerun_id != execution_id
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    rerun = (await api.get(f"/executions/{rerun_id}")).json()
    assert (rerun["rerunOf"], rerun["output"]) == (execution_id, {"done": "Grace"})

    waiting = await _start(api, "demo.approval")
    await page.goto(f"/ui/executions/{waiting}?step=approval")
    await expect(page.locator('.node[data-step="approval"]')).to_have_attribute("data-status", "running")
    await page.click("summary:has-text('Resolve or reject promise')")
    await page.fill("textarea[name=value]", '{"approved": true}')
    await page.click("button:has-text('Confirm resolve')")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    assert (await api.get(f"/executions/{waiting}")).json()["output"] == {"approval": {"approved": True}}


async def test_agents_page_checks_health_and_the_audit_log_is_for_admins(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    server = CountingServer()
    try:
        agent = {"name": "summarizer", "url": f"{server.url}/ok", "healthPath": "/status/200"}
        created = await api.post("/agents", json=agent)
        assert created.status_code == 201, created.text
        page = await console.sign_in(keys["operator"])
        await page.goto("/ui/agents")
        await page.click("tr:has-text('summarizer') button:has-text('Check health')")
        await expect(page.locator("tr:has-text('summarizer') .badge")).to_have_text("healthy")
        assert any(path == "/status/200" for _, path, _, _ in server.requests)
        await expect(page.locator("nav >> text=Audit log")).to_have_count(0)
        refused = await page.goto("/ui/audit")
        assert refused is not None and refused.status == 403
    finally:
        server.close()

    page = await console.sign_in(keys["admin"])
    await page.click("nav >> text=Audit log")
    await expect(page.locator("table tbody tr:has-text('agent')").first).to_contain_text("summarizer")


async def test_an_operator_triggers_pauses_resumes_and_backfills_a_schedule_made_through_the_api(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient, schedule: str, screenshots: Path
) -> None:
    page = await console.sign_in(keys["operator"])
    await page.click("nav >> text=Schedules")
    row = page.locator(f'tr[data-schedule="{schedule}"]')
    await expect(row.locator(".next-runs li")).to_have_count(5)
    await row.locator("text=hourly-hello").click()
    await page.wait_for_url(f"**/ui/schedules/{schedule}")

    await page.click("summary:has-text('Trigger…')")
    await page.click("button:has-text('Confirm trigger')")
    started = page.locator("#started-execution")
    execution_id = (await started.inner_text()).removeprefix("execution ")
    assert (await api.get(f"/executions/{execution_id}")).json()["scheduleId"] == schedule
    await started.click()
    await page.wait_for_url(f"**/ui/executions/{execution_id}")
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed", timeout=60_000)

    await page.goto(f"/ui/schedules/{schedule}")
    await page.click("summary:has-text('Pause…')")
    await page.click("button:has-text('Confirm pause')")
    await expect(page.locator("#schedule-state")).to_have_attribute("data-paused", "true")
    assert (await api.get(f"/schedules/{schedule}")).json()["paused"] is True
    await page.click("summary:has-text('Resume…')")
    await page.click("button:has-text('Confirm resume')")
    await expect(page.locator("#schedule-state")).to_have_attribute("data-paused", "false")
    assert (await api.get(f"/schedules/{schedule}")).json()["paused"] is False

    await page.click("summary:has-text('Backfill…')")
    await page.fill("input[name=start]", "2026-03-01T00:00")
    await page.fill("input[name=end]", "2026-03-01T02:00")
    await page.click("button:has-text('Confirm backfill')")
    await expect(page.locator('[data-count="total"]')).to_have_text("2")
    await page.evaluate("window.consoleMarker = 'still the same page'")  # gone if anything reloads the page
    await expect(page.locator("#bulk-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(page.locator('[data-count="succeeded"]')).to_have_text("2")
    assert await page.evaluate("window.consoleMarker") == "still the same page"
    await page.screenshot(path=screenshots / "console-schedule.png", full_page=True)


DISK = {
    "ref": "demo.disk",
    "public": True,
    "definition": {
        "steps": [
            {
                "id": "write",
                "type": "action",
                "action": "core.fail",
                "input": {"message": "disk full on <b>sda1</b>", "retryable": True},
                "retry": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1},
            }
        ]
    },
}


async def test_a_steps_logs_are_searched_by_attempt_with_matches_marked_and_context_dimmed(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    assert (await define(api, DISK)).status_code == 201
    execution_id = await _start(api, "demo.disk")
    await _until_status(api, execution_id, "failed")
    async with asyncio.timeout(60):  # each attempt logs "started" and "failed": log-ingest stores them moments later
        path = f"/executions/{execution_id}/logs"
        while (await api.get(path, params={"stepId": "write"})).json()["total"] < 4:
            await asyncio.sleep(0.1)
    page = await console.sign_in(keys["admin"])
    await page.goto(f"/ui/executions/{execution_id}?step=write")
    logs = page.locator("#step-logs")
    await expect(logs.locator(".log")).to_have_count(4)

    await page.fill(".log-filter input[name=q]", "DISK FULL")
    await page.fill(".log-filter input[name=attempt]", "2")
    await page.click(".log-filter button[type=submit]")
    await page.wait_for_url(re.compile(r"attempt=2&q=DISK\+FULL"))  # a link to this view shows it again
    await expect(logs.locator("mark")).to_have_count(1)
    await expect(logs.locator("mark")).to_have_text("disk full")
    await expect(logs.locator(".log")).to_have_count(2)  # the match and the record before it, of attempt 2 only
    await expect(logs.locator(".context")).to_contain_text("attempt 2 started")
    assert await logs.locator(".context").evaluate("node => getComputedStyle(node).opacity") == "0.6"
    await expect(logs).to_contain_text("disk full on <b>sda1</b>")  # the message's markup is text
    await expect(logs.locator("b")).to_have_count(0)

    shared = await console.page()
    await shared.goto(f"{console.base_url}/ui/executions/{execution_id}?step=write&q=disk+full")
    await expect(shared.locator("#step-logs mark")).to_have_count(2)  # every attempt's failure, with its context
    await expect(shared.locator("#step-logs .context")).to_have_count(2)
    await expect(shared.locator(".log-filter input[name=q]")).to_have_value("disk full")
    await shared.click("text=Search all of this step's logs")
    await expect(shared.locator("pre.logs mark")).to_have_count(2)
    await expect(shared.locator("p.total")).to_contain_text("2 matching records")


@pytest.mark.usefixtures("workflows")
async def test_a_flaky_steps_attempts_are_diffed_and_it_is_retried_with_edited_input_after_a_preview(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    server = CountingServer()
    try:
        card = {
            "ref": "demo.card",
            "public": True,
            "inputSchema": {"type": "object", "required": ["code"], "properties": {"code": {"type": "integer"}}},
            "definition": {
                "steps": [
                    {"id": "note", "type": "action", "action": "core.echo", "input": "{{ input.code }}"},
                    {
                        "id": "charge",
                        "type": "http",
                        "needs": ["note"],
                        "request": {"url": server.url + "/status/{{ input.code }}"},
                        "retry": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1, "jitter": False},
                    },
                ]
            },
        }
        assert (await define(api, card)).status_code == 201
        execution_id = await _start(api, "demo.card", {"code": 503})
        await _until_status(api, execution_id, "failed")
        page = await console.sign_in(keys["operator"])
        await page.goto(f"/ui/executions/{execution_id}?step=charge")

        rows = page.locator("table.attempts tbody tr")
        await expect(rows).to_have_count(2)
        await rows.nth(0).locator("summary:has-text('Show')").click()
        await expect(rows.nth(0).locator(".attempt-io")).to_contain_text("/status/503")
        await page.click("button:has-text('Diff attempts A and B')")
        await expect(page.locator("#diff-input")).to_have_text("The two attempts have the same input.")
        await page.go_back()

        await page.click("summary:has-text('Retry…')")
        await expect(page.locator("form.retry textarea[name=input]")).to_have_value('{\n  "code": 503\n}')
        await page.fill("form.retry textarea[name=input]", '{"code": "ten"}')
        await page.click("form.retry button:has-text('Preview')")
        await expect(page.locator(".error")).to_contain_text("/input/code")
        await page.fill("form.retry textarea[name=input]", '{"code": 200}')
        await page.click("form.retry button:has-text('Preview')")
        preview = page.locator(".retry-preview")
        await expect(preview).to_contain_text("Will run again: charge.")
        await expect(preview).to_contain_text("Keep their output: note.")
        assert (await api.get(f"/executions/{execution_id}")).json()["status"] == "failed"  # a preview changes nothing

        await page.click("form.retry button:has-text('Confirm retry')")
        await expect(page.locator(".notice")).to_have_text("retry requested")
        await expect(page.locator('.node[data-step="charge"]')).to_have_attribute("data-status", "completed")
        execution = (await api.get(f"/executions/{execution_id}")).json()
        assert execution["input"] == {"code": 200}

        await page.goto(f"/ui/executions/{execution_id}?step=charge")
        await expect(rows).to_have_count(3)
        await page.click("button:has-text('Diff attempts A and B')")  # the first attempt and the last
        await expect(page.locator("#diff-input .removed")).to_contain_text(["/status/503"])
        await expect(page.locator("#diff-input .added")).to_contain_text(["/status/200"])
        await expect(page.locator("#diff-output .added")).to_contain_text(['"status": 200'])
    finally:
        server.close()
