"""The console's webhooks pages in this process (real PostgreSQL and broker): the list, a delivery log with its
status filter, a retry and its refusal, the operator role they need as the API does, and CSRF."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.integration.api.test_console_pages import sign_in
from tests.support import api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]
API = "/api/v1/tenants/dev"


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
async def webhook(console: Client, settings: Settings) -> dict[str, Any]:
    """A webhook of the failures of ``demo.tick``, with one test delivery waiting (no scheduler sends it here)."""
    admin = bearer(await api_key(settings.database_url, "dev", "admin"))
    body = {
        "url": "http://127.0.0.1:9/hooks",
        "events": ["WORKFLOW_FAILED"],
        "workflows": ["demo.tick"],
        "description": "pager",
    }
    created = await console.post(f"{API}/webhooks", json=body, headers=admin)
    assert created.status_code == 201, created.text
    queued = await console.post(f"{API}/webhooks/{created.json()['id']}/test", headers=admin)
    assert queued.status_code == 202, queued.text
    return {**created.json(), "delivery": queued.json()["id"]}


async def test_an_operator_reads_the_webhooks_and_a_delivery_log_filtered_by_status(
    console: Client, settings: Settings, webhook: dict[str, Any]
) -> None:
    await sign_in(console, await api_key(settings.database_url, "dev", "operator"))
    listed = await console.get("/ui/webhooks")
    assert listed.status_code == 200 and 'href="/ui/webhooks"' in listed.text  # in the navigation
    row = listed.text.split(f'data-webhook="{webhook["id"]}"')[1].split("</tr>")[0]
    assert "http://127.0.0.1:9/hooks" in row and "WORKFLOW_FAILED" in row and 'href="/ui/workflows/demo.tick"' in row
    assert ">enabled<" in row and "pager" in row

    log = await console.get(f"/ui/webhooks/{webhook['id']}")
    delivery = log.text.split(f'data-delivery="{webhook["delivery"]}"')[1].split("</tr>")[0]
    assert "webhook.test" in delivery and ">pending<" in delivery
    assert "Retry" not in delivery  # a pending delivery is sent anyway
    failed = await console.get(f"/ui/webhooks/{webhook['id']}?status=failed")
    assert failed.status_code == 200 and webhook["delivery"] not in failed.text and "No delivery failed." in failed.text
    bad = await console.get(f"/ui/webhooks/{webhook['id']}?status=lost")
    assert bad.status_code == 400 and "status: &#39;lost&#39; is not a delivery status" in bad.text
    assert (await console.get(f"/ui/webhooks/{uuid.uuid4()}")).status_code == 404


async def test_a_retry_comes_back_to_the_log_and_a_refused_one_with_the_apis_message(
    console: Client, settings: Settings, webhook: dict[str, Any]
) -> None:
    token = await sign_in(console, await api_key(settings.database_url, "dev", "operator"))
    path = f"/ui/webhooks/{webhook['id']}/deliveries"
    retried = await console.post(f"{path}/{webhook['delivery']}/retry", data={"_csrf_token": token})
    assert retried.status_code == 200 and f"Delivery <code>{webhook['delivery']}</code> is due again" in retried.text
    assert str(retried.url).endswith(f"/ui/webhooks/{webhook['id']}?retried={webhook['delivery']}")

    missing = uuid.uuid4()
    refused = await console.post(f"{path}/{missing}/retry", data={"_csrf_token": token})
    assert refused.status_code == 404 and f"delivery {missing} does not exist" in refused.text
    assert 'id="action-error"' in refused.text and webhook["delivery"] in refused.text  # the log, shown again
    assert (await console.post(f"{path}/{webhook['delivery']}/retry")).status_code == 403  # no CSRF token


async def test_a_viewer_neither_reads_webhooks_nor_retries_a_delivery(
    console: Client, settings: Settings, webhook: dict[str, Any]
) -> None:
    token = await sign_in(console, await api_key(settings.database_url, "dev", "viewer"))
    assert 'href="/ui/webhooks"' not in (await console.get("/ui/executions")).text
    listed = await console.get("/ui/webhooks")
    assert listed.status_code == 403 and "http://127.0.0.1:9/hooks" not in listed.text
    assert (await console.get(f"/ui/webhooks/{webhook['id']}")).status_code == 403
    path = f"/ui/webhooks/{webhook['id']}/deliveries/{webhook['delivery']}/retry"
    assert (await console.post(path, data={"_csrf_token": token})).status_code == 403
