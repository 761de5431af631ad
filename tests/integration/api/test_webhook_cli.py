"""``flowline webhooks …`` and the client's webhook routes against the api served on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from flowline.settings import Settings
from flowline_client import FlowlineClient
from flowline_client.cli import main

from tests.integration.api.clients import served_api


async def test_every_webhook_command_reaches_the_api(settings: Settings, tmp_path: Path) -> None:
    async with served_api(settings) as (url, key):
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

        def document(*argv: str) -> Any:
            code, printed = flowline(*argv, "--output", "json")
            assert code == 0, printed
            return json.loads(printed)

        def session() -> None:
            created = document(
                "webhooks", "create", "https://hooks.example.com/x", "--event", "TASK_FAILED", "--workflow", "demo.a"
            )
            assert created["secret"].startswith("whsec_") and created["events"] == ["TASK_FAILED"]
            hook = created["id"]
            code, table = flowline("webhooks", "create", "https://hooks.example.com/y", "--description", "second")
            assert code == 0 and "Secret:       whsec_" in table  # the hint to keep it goes to stderr
            listed = flowline("webhooks", "list")[1]
            assert hook in listed and "https://hooks.example.com/y" in listed
            assert "whsec_" not in flowline("webhooks", "get", hook)[1]
            rotated = document("webhooks", "rotate-secret", hook)
            assert rotated["secret"] != created["secret"] and rotated["previousSecretExpiresAt"]
            delivery = document("webhooks", "test", hook)
            assert delivery["event"] == "webhook.test" and delivery["status"] == "pending"
            log = flowline("webhooks", "deliveries", hook, "--status", "pending")[1]
            assert delivery["id"] in log and "webhook.test" in log
            assert document("webhooks", "deliveries", hook, "--all")["total"] == 1
            assert document("webhooks", "retry", hook, delivery["id"])["status"] == "pending"
            assert flowline("webhooks", "delete", hook) == (0, f"Webhook {hook} deleted.\n")
            assert flowline("webhooks", "get", hook)[0] == 1
            assert flowline("webhooks", "create", "http://10.1.2.3/")[0] == 1  # refused by the outbound policy

        await asyncio.to_thread(session)


async def test_the_blocking_client_has_the_webhook_routes(settings: Settings) -> None:
    async with served_api(settings) as (url, key):

        def session() -> None:
            with FlowlineClient(url, "dev", key) as client:
                created = client.create_webhook("https://hooks.example.com/z", events=["WORKFLOW_FAILED"])
                changed = client.update_webhook(created.id, {"enabled": False, "description": "paused"})
                assert (changed.enabled, changed.description) == (False, "paused")
                assert [hook.id for hook in client.iter_webhooks()] == [created.id]
                client.test_webhook(created.id)
                [delivery] = list(client.iter_webhook_deliveries(created.id))
                assert delivery.event == "webhook.test"
                client.delete_webhook(created.id)
                assert client.list_webhooks().total == 0

        await asyncio.to_thread(session)
