"""``flowline-api admin …``: tenants and API keys made and revoked straight in the database, as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncpg
from flowline.domain.credentials import Principal, authenticate_key, parse_key
from flowline.settings import Settings


async def _admin(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWLINE_DATABASE_URL": settings.database_url}
    return await asyncio.to_thread(
        subprocess.run, ["flowline-api", "admin", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_tenant_and_its_first_key_exist_before_anyone_can_call_the_api(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    created = await _admin(settings, "create-tenant", "acme", "--name", "Acme Corp")
    assert created.returncode == 0, created.stderr
    assert await pool.fetchval("SELECT name FROM tenants WHERE slug = 'acme'") == "Acme Corp"

    made = await _admin(settings, "create-api-key", "--tenant", "acme", "--role", "operator", "--name", "ops")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    parsed = parse_key(key)
    assert parsed is not None
    assert await authenticate_key(pool, key) == Principal(f"api-key:{parsed[0]}", "acme", "operator")

    revoked = await _admin(settings, "revoke-api-key", "--tenant", "acme", str(parsed[0]))
    assert revoked.returncode == 0, revoked.stderr
    assert await authenticate_key(pool, key) is None
    actions = await pool.fetch(
        "SELECT action, principal FROM audit_logs WHERE entity_id = $1 ORDER BY occurred_at", str(parsed[0])
    )
    assert [(row["action"], row["principal"]) for row in actions] == [("create", "admin-cli"), ("revoke", "admin-cli")]


async def test_bad_input_is_refused_with_a_message(settings: Settings) -> None:
    unknown_tenant = await _admin(settings, "create-api-key", "--tenant", "nobody", "--role", "admin")
    bad_role = await _admin(settings, "create-api-key", "--tenant", "dev", "--role", "root")

    assert unknown_tenant.returncode == 1
    assert "tenant 'nobody' does not exist" in unknown_tenant.stderr
    assert bad_role.returncode == 2  # argparse: not one of the roles
    assert "invalid choice" in bad_role.stderr


async def test_a_tenants_default_retention_is_set_and_cleared_and_a_bad_one_refused(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    set_ = await _admin(settings, "set-tenant-retention", "dev", "90d")
    stored = await pool.fetchval("SELECT retention_seconds FROM tenants WHERE slug = 'dev'")
    bad = [await _admin(settings, "set-tenant-retention", "dev", value) for value in ("forever", "0d")]
    after_bad = await pool.fetchval("SELECT retention_seconds FROM tenants WHERE slug = 'dev'")
    unknown = await _admin(settings, "set-tenant-retention", "nobody", "30d")
    cleared = await _admin(settings, "set-tenant-retention", "dev", "default")

    assert set_.returncode == 0, set_.stderr
    assert "90d" in set_.stdout
    assert stored == 90 * 86_400
    for refused in bad:
        assert refused.returncode == 2  # argparse: the argument names itself
        assert "argument retention" in refused.stderr and "is not a retention" in refused.stderr
    assert after_bad == 90 * 86_400
    assert unknown.returncode == 1
    assert "tenant 'nobody' does not exist" in unknown.stderr
    assert cleared.returncode == 0, cleared.stderr
    assert await pool.fetchval("SELECT retention_seconds FROM tenants WHERE slug = 'dev'") is None
    changes = await pool.fetch(
        "SELECT changes FROM audit_logs WHERE entity_type = 'tenant' AND entity_id = 'dev' ORDER BY occurred_at"
    )
    assert [row["changes"]["retention_seconds"] for row in changes] == [
        {"before": None, "after": 90 * 86_400},
        {"before": 90 * 86_400, "after": None},
    ]
