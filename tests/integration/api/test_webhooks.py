"""The webhook routes over a real database: secrets shown once and sealed, validation, audit, the delivery log."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
from flowline.settings import Settings
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client
from tests.support import api_key, bearer

Client = AsyncTestClient  # type: ignore[type-arg]
URL = "https://hooks.example.com/flowline"


async def create(api: Client, **fields: Any) -> dict[str, Any]:
    response = await api.post("webhooks", json={"url": URL, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_answers_the_secret_once_and_stores_it_sealed(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api, description="page billing")

    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert uuid.UUID(created["id"]).version == 7
    assert created["events"] == ["WORKFLOW_CANCELLED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED"]
    assert created["workflows"] is None and created["enabled"] is True and created["description"] == "page billing"
    read = await api.get(f"webhooks/{created['id']}")
    assert read.status_code == 200 and read.json() == created  # the secret never again
    stored = await pool.fetchval("SELECT secret_sealed FROM webhooks")
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    listed = (await api.get("webhooks")).json()
    assert listed["items"] == [created] and listed["total"] == 1 and "whsec_" not in str(listed)


async def test_filters_are_kept_sorted_and_without_repeats(api: Client) -> None:
    created = await create(
        api, events=["TASK_FAILED", "WORKFLOW_FAILED", "TASK_FAILED"], workflows=["b.flow", "a.flow"]
    )

    assert created["events"] == ["TASK_FAILED", "WORKFLOW_FAILED"]
    assert created["workflows"] == ["a.flow", "b.flow"]


async def test_bad_bodies_are_422_naming_the_field_and_store_nothing(api: Client, pool: asyncpg.Pool) -> None:
    cases = [
        ({"url": URL, "events": ["WORKFLOW_EXPLODED"]}, "events"),
        ({"url": URL, "events": []}, "events"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "webhook-signature"),
        ({"url": URL, "workflows": ["Not A Ref"]}, "workflows"),
        ({"url": URL, "colour": "red"}, "colour"),
        ({"events": ["WORKFLOW_FAILED"]}, "url"),
    ]
    for body, field in cases:
        response = await api.post("webhooks", json=body)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.text, (body, response.text)
    assert await pool.fetchval("SELECT count(*) FROM webhooks") == 0


async def test_an_address_the_outbound_policy_refuses_is_422_naming_url(api: Client, pool: asyncpg.Pool) -> None:
    for url in ("http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data", "http://[fd00::1]/hook"):
        response = await api.post("webhooks", json={"url": url})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["pointer"] == "/url" and "refused" in problem["detail"]
    created = await create(api)
    response = await api.patch(f"webhooks/{created['id']}", json={"url": "http://192.168.1.10/"})
    assert response.status_code == 422 and response.json()["pointer"] == "/url"
    assert await pool.fetchval("SELECT url FROM webhooks") == URL


async def test_patch_changes_only_the_fields_given_and_audits(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    path = f"webhooks/{created['id']}"

    response = await api.patch(path, json={"enabled": False, "workflows": ["billing.invoice"]})

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["enabled"] is False and changed["workflows"] == ["billing.invoice"]
    assert changed["url"] == URL and changed["events"] == created["events"]
    assert (await api.patch(path, json={"workflows": None})).json()["workflows"] is None
    assert (await api.patch(path, json={})).status_code in (400, 422)
    rows = await pool.fetch("SELECT action, changes FROM audit_logs WHERE entity_type = 'webhook' ORDER BY occurred_at")
    assert [row["action"] for row in rows] == ["create", "update", "update"]
    assert rows[0]["changes"]["secret"] == {"before": None, "after": "***"}
    assert rows[1]["changes"]["enabled"] == {"before": True, "after": False}


async def test_enabling_again_clears_the_automatic_disabling(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    await pool.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = 'disabled automatically', failing_since = now()"
    )
    assert (await api.get(f"webhooks/{created['id']}")).json()["disabledReason"] == "disabled automatically"

    enabled = (await api.patch(f"webhooks/{created['id']}", json={"enabled": True})).json()

    assert enabled["enabled"] is True and enabled["disabledReason"] is None
    assert await pool.fetchval("SELECT failing_since FROM webhooks") is None


async def test_a_disabled_webhooks_deliveries_wait_until_it_is_enabled(api: Client) -> None:
    created = await create(api)
    path = f"webhooks/{created['id']}"
    await api.post(f"{path}/test")

    await api.patch(path, json={"enabled": False})
    [waiting] = (await api.get(f"{path}/deliveries")).json()["items"]
    await api.post(f"{path}/test")  # a test of a disabled webhook waits too
    await api.patch(path, json={"enabled": True})
    due = (await api.get(f"{path}/deliveries")).json()["items"]

    assert waiting["status"] == "pending" and waiting["nextAttemptAt"] is None
    assert [item["status"] for item in due] == ["pending", "pending"]
    assert all(item["nextAttemptAt"] is not None for item in due)


async def test_rotation_answers_a_new_secret_and_keeps_the_old_one_for_a_while(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    old_sealed = await pool.fetchval("SELECT secret_sealed FROM webhooks")

    response = await api.post(f"webhooks/{created['id']}/rotate-secret")

    assert response.status_code == 201, response.text
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"] is not None
    row = await pool.fetchrow("SELECT secret_sealed, previous_secret_sealed FROM webhooks")
    assert row["previous_secret_sealed"] == old_sealed and row["secret_sealed"] != old_sealed
    action = await pool.fetchval(
        "SELECT action FROM audit_logs WHERE entity_type = 'webhook' ORDER BY occurred_at DESC"
    )
    assert action == "rotate_secret"


async def test_a_test_delivery_is_queued_and_shows_in_the_log(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)

    response = await api.post(f"webhooks/{created['id']}/test")

    assert response.status_code == 202, response.text
    delivery = response.json()
    assert delivery["event"] == "webhook.test" and delivery["status"] == "pending"
    assert delivery["executionId"] is None and delivery["attempts"] == 0
    log = (await api.get(f"webhooks/{created['id']}/deliveries")).json()
    assert log["items"] == [delivery] and log["total"] == 1
    assert (await api.get(f"webhooks/{created['id']}/deliveries", params={"status": "failed"})).json()["total"] == 0
    bad_status = await api.get(f"webhooks/{created['id']}/deliveries", params={"status": "lost"})
    assert bad_status.status_code == 400
    payload = await pool.fetchval("SELECT payload FROM webhook_deliveries")
    assert payload["type"] == "webhook.test" and payload["data"]["webhookId"] == created["id"]


async def test_retry_makes_a_failed_delivery_due_now(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    delivery = (await api.post(f"webhooks/{created['id']}/test")).json()
    await pool.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = 11, next_attempt_at = NULL")

    response = await api.post(f"webhooks/{created['id']}/deliveries/{delivery['id']}/retry")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending" and response.json()["nextAttemptAt"] is not None
    missing = await api.post(f"webhooks/{created['id']}/deliveries/{uuid.uuid4()}/retry")
    assert missing.status_code == 404
    audited = await pool.fetch("SELECT changes FROM audit_logs WHERE action = 'retry_delivery'")
    assert [row["changes"] for row in audited] == [{"delivery": {"after": delivery["id"]}}]


async def test_delete_removes_the_webhook_and_its_deliveries(api: Client, pool: asyncpg.Pool) -> None:
    created = await create(api)
    await api.post(f"webhooks/{created['id']}/test")

    assert (await api.delete(f"webhooks/{created['id']}")).status_code == 204

    assert (await api.get(f"webhooks/{created['id']}")).status_code == 404
    assert (await api.delete(f"webhooks/{created['id']}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0
    assert await pool.fetchval(
        "SELECT action FROM audit_logs WHERE entity_type = 'webhook' ORDER BY occurred_at DESC"
    ) == ("delete")


async def test_unknown_and_malformed_ids(api: Client) -> None:
    for path in (f"webhooks/{uuid.uuid4()}", f"webhooks/{uuid.uuid4()}/deliveries"):
        response = await api.get(path)
        assert response.status_code == 404, path
    assert (await api.post(f"webhooks/{uuid.uuid4()}/test")).status_code == 404
    assert (await api.get("webhooks/not-a-uuid")).status_code == 400


async def test_pages_follow_the_cursor(api: Client) -> None:
    made = [await create(api, description=str(index)) for index in range(3)]

    first = (await api.get("webhooks", params={"limit": 2})).json()
    second = (await api.get("webhooks", params={"limit": 2, "cursor": first["nextCursor"]})).json()

    assert [item["id"] for item in first["items"] + second["items"]] == [item["id"] for item in made]
    assert second["nextCursor"] is None and first["total"] == 3


async def test_viewers_may_not_see_or_change_webhooks(api: Client, settings: Settings) -> None:
    created = await create(api)
    viewer = bearer(await api_key(settings.database_url, role="viewer"))
    async with admin_client(settings) as client:
        client.headers.update(viewer)
        assert (await client.get("webhooks")).status_code == 403
        assert (await client.get(f"webhooks/{created['id']}")).status_code == 403
        assert (await client.post("webhooks", json={"url": URL})).status_code == 403
