"""A fan-out in a real browser: its branches are one group node whose counts follow the run live, and expand into
the branches on demand (the services as real processes)."""

from __future__ import annotations

import re

import httpx
import pytest
from flowline_api.console.graph import FAN_OUT_AT
from playwright.async_api import expect

from tests.support import define
from tests.ui.conftest import Console

pytestmark = pytest.mark.e2e

BRANCHES = FAN_OUT_AT + 2
SPREAD = {
    "ref": "demo.spread",
    "public": True,
    "definition": {
        "steps": [
            {"id": "start", "type": "action", "action": "core.noop"},
            *(
                {"id": f"fetch-{n}", "type": "action", "action": "core.echo", "input": n, "needs": ["start"]}
                for n in range(BRANCHES)
            ),
            {"id": "join", "type": "action", "action": "core.noop", "needs": [f"fetch-{n}" for n in range(BRANCHES)]},
        ]
    },
}


async def test_a_fan_out_is_one_node_that_completes_live_and_expands_into_its_branches(
    console: Console, keys: dict[str, str], api: httpx.AsyncClient
) -> None:
    assert (await define(api, SPREAD)).status_code == 201
    page = await console.sign_in(keys["viewer"])
    started = await api.post("/workflows/demo.spread/execute", json={"input": {}})
    assert started.status_code == 202, started.text
    await page.goto(f"/ui/executions/{started.json()['executionId']}")
    await page.evaluate("window.consoleMarker = 'still the same page'")  # gone if anything reloads the page

    group = page.locator('.node[data-group="fetch"]')
    await expect(page.locator("#execution-status")).to_have_attribute("data-status", "completed", timeout=60_000)
    await expect(group).to_have_attribute("data-status", "completed")
    await expect(group.locator("title")).to_have_text(f"{BRANCHES} \N{MULTIPLICATION SIGN} fetch: {BRANCHES} completed")
    await expect(page.locator("svg.graph .node")).to_have_count(3)  # start, the fan-out, join
    assert await page.evaluate("window.consoleMarker") == "still the same page"

    await group.click()
    await page.wait_for_url(re.compile(r"\?expand=fetch$"))
    await expect(page.locator("svg.graph .node")).to_have_count(BRANCHES + 2)
    await page.click('.node[data-step="fetch-3"]')
    await page.wait_for_url(re.compile(r"\?expand=fetch&step=fetch-3$"))  # the branches stay drawn
    await expect(page.locator("svg.graph .node")).to_have_count(BRANCHES + 2)
    await page.click('[data-fan-out="fetch"] >> text=fold')
    await expect(page.locator("svg.graph .node")).to_have_count(3)
    assert page.url.endswith("?step=fetch-3")
