"""The Python client and the CLI against the api: how they send changes of workflows and agents."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import httpx
from flowline.settings import Settings
from flowline_client import AsyncFlowlineClient
from flowline_client.cli import main
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import served_api

DEFINITION = {"steps": [{"id": "greet", "type": "action", "action": "core.echo", "input": {"text": "hello"}}]}


class RecordingTransport(httpx.AsyncHTTPTransport):
    """An HTTP transport that remembers the method of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        return await super().handle_async_request(request)


async def test_requests_are_relative_to_the_dev_tenant(api: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await api.get("workflows/demo.missing")

    assert response.status_code == 404
    assert response.json()["detail"] == "workflow 'demo.missing' does not exist"


async def test_the_client_changes_workflows_and_agents_with_merge_patches(settings: Settings) -> None:
    transport = RecordingTransport()
    async with served_api(settings) as (url, key), AsyncFlowlineClient(url, "dev", key, transport=transport) as client:
        await client.create_pack("demo")
        created = await client.apply_workflow(
            {"ref": "demo.hello", "definition": DEFINITION, "description": "first", "tags": ["a"]}
        )
        disabled = await client.update_workflow("demo.hello", {"enabled": False})
        applied = await client.apply_workflow({"ref": "demo.hello", "definition": DEFINITION, "label": "Hello"})
        agent = await client.create_agent({"name": "summarizer", "url": "https://agents.example.com/summarize"})
        changed = await client.update_agent(agent.id, {"timeoutMs": 1000})

    assert created.version == 1
    assert (disabled.enabled, disabled.description, disabled.tags) == (False, "first", ["a"])
    # Applying a file again clears what it leaves out but keeps the workflow disabled.
    assert (applied.enabled, applied.label, applied.description, applied.tags) == (False, "Hello", None, [])
    assert applied.version == 1
    assert changed.timeout_ms == 1000
    # A first apply tries a change, then creates; every change after it is a PATCH, never a read and a PUT.
    assert transport.methods == ["POST", "PATCH", "POST", "PATCH", "PATCH", "POST", "PATCH"]


async def test_the_cli_disables_and_enables_a_workflow_keeping_its_other_fields(
    settings: Settings, tmp_path: Path
) -> None:
    async with served_api(settings) as (url, key), AsyncFlowlineClient(url, "dev", key) as client:
        await client.create_pack("demo")
        await client.create_workflow({"ref": "demo.hello", "definition": DEFINITION, "label": "Hello", "tags": ["a"]})
        env = {
            "FLOWLINE_API_URL": url,
            "FLOWLINE_TENANT": "dev",
            "FLOWLINE_API_KEY": key,
            "FLOWLINE_CONFIG": str(tmp_path / "absent.toml"),
        }

        def flowline(*argv: str) -> tuple[int, str]:
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                code = main(list(argv), env)
            return code, stdout.getvalue()

        disabled = await asyncio.to_thread(flowline, "workflows", "disable", "demo.hello")
        after_disable = await client.get_workflow("demo.hello")
        enabled = await asyncio.to_thread(flowline, "workflows", "enable", "demo.hello")
        after_enable = await client.get_workflow("demo.hello")

    assert disabled == (0, "Workflow demo.hello disabled.\n")
    assert enabled == (0, "Workflow demo.hello enabled.\n")
    assert (after_disable.enabled, after_enable.enabled) == (False, True)
    assert (after_enable.label, after_enable.tags, after_enable.version) == ("Hello", ["a"], 1)
