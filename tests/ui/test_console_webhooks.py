"""The console's webhooks page in a real browser: a local receiver that refuses, deliveries that end failed, and
a retry from the page that gets through (the services as real processes, the scheduler sending)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support import CountingServer, define, eventually
from tests.ui.conftest import Console

pytestmark = pytest.mark.e2e

HOOKED = {
    "ref": "demo.hooked",
    "definition": {"steps": [{"id": "only", "type": "action", "action": "core.echo", "input": "{{ input.n }}"}]},
}
REFUSALS = 2  # the receiver answers 503 twice to each delivery: its first attempt and the one retry the stack allows


@pytest.fixture
def receiver() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def _failed_deliveries(api: httpx.AsyncClient, receiver: CountingServer, executions: int) -> dict[str, Any]:
    """A webhook of ``demo.hooked`` whose deliveries of ``executions`` completed executions all ended failed."""
    assert (await define(api, HOOKED)).status_code == 201
    body = {"url": f"{receiver.url}/flaky/{REFUSALS}", "workflows": ["demo.hooked"], "description": "billing sync"}
    created = await api.post("/webhooks", json=body)
    assert created.status_code == 201, created.text
    webhook: dict[str, Any] = created.json()
    for n in range(executions):
        started = await api.post("/workflows/demo.hooked/execute", json={"input": {"n": n}})
        assert started.status_code == 202, started.text

    async def all_failed() -> bool:
        page = await api.get(f"/webhooks/{webhook['id']}/deliveries", params={"status": "failed"})
        return bool(page.json()["total"] == executions)

    await eventually(all_failed, timeout=60)
    deliveries = await api.get(f"/webhooks/{webhook['id']}/deliveries")
    return {**webhook, "deliveries": [item["id"] for item in deliveries.json()["items"]]}


async def _csrf_token(page: Page) -> str:
    token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
    assert token
    return token


async def test_an_operator_retries_a_failed_delivery_from_the_webhooks_page_and_a_viewer_cannot(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient, receiver: CountingServer, screenshots: Path
) -> None:
    webhook = await _failed_deliveries(api, receiver, executions=2)
    retried, left = webhook["deliveries"]
    page = await console.sign_in(keys["operator"])
    await page.click("nav >> text=Webhooks")
    await page.locator(f'tr[data-webhook="{webhook["id"]}"]').locator("a").first.click()
    await page.wait_for_url(f"**/ui/webhooks/{webhook['id']}")
    row = page.locator(f'tr[data-delivery="{retried}"]')
    await expect(row).to_have_attribute("data-status", "failed")
    await expect(row.locator(".badge")).to_have_text("failed")
    await expect(row).to_contain_text("WORKFLOW_COMPLETED")
    await expect(row.locator("td").nth(3)).to_have_text(str(REFUSALS))  # attempts
    await expect(row.locator("td").nth(4)).to_have_text("503")  # the last status code

    await row.locator("button:has-text('Retry')").click()
    await page.wait_for_url(f"**/ui/webhooks/{webhook['id']}?retried={retried}")
    await expect(page.locator(".notice")).to_contain_text("is due again")

    async def succeeded() -> bool:
        await page.reload()
        return await row.get_attribute("data-status") == "succeeded"

    await eventually(succeeded, timeout=60)
    await expect(row.locator("td").nth(4)).to_have_text("200")
    await expect(row.locator("button:has-text('Retry')")).to_have_count(0)
    await expect(page.locator(f'tr[data-delivery="{left}"] button:has-text("Retry")')).to_have_count(1)
    sent = [headers for _, _, headers, _ in receiver.requests if headers.get("webhook-id") == retried]
    assert len(sent) == REFUSALS + 1  # the same delivery each time, signed with the same webhook-id
    await page.goto(f"/ui/webhooks/{webhook['id']}?status=failed")
    await expect(page.locator("tr[data-delivery]")).to_have_count(1)
    await page.goto(f"/ui/webhooks/{webhook['id']}")
    await page.screenshot(path=screenshots / "console-webhooks.png", full_page=True)

    viewer = await console.sign_in(keys["viewer"])
    await expect(viewer.locator("nav >> text=Webhooks")).to_have_count(0)
    token = await _csrf_token(viewer)
    refused = await viewer.request.post(
        f"/ui/webhooks/{webhook['id']}/deliveries/{left}/retry", form={"_csrf_token": token}
    )
    assert refused.status == 403
    shown = await viewer.goto(f"/ui/webhooks/{webhook['id']}")
    assert shown is not None and shown.status == 403
    await expect(viewer.locator("button:has-text('Retry')")).to_have_count(0)
