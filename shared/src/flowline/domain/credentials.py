"""API keys and roles: what a principal is, how a key is made, stored (as a hash), found and revoked.

A key reads ``fl_<id>_<secret>``: the id finds the row, the secret (32 random bytes) is checked against its
SHA-256. A fast hash is right here: the secret is random, not a password, so there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

import asyncpg
from flowline_schemas.api_keys import Role

from flowline.db.audit import Actor, record_audit
from flowline.db.pool import connect
from flowline.db.tenants import read_tenant_id
from flowline.errors import ClientError, NotFound
from flowline.runtime.ids import uuid7

ROLES: tuple[Role, ...] = get_args(Role)  # each role may do what the ones before it may
KEY_PREFIX = "fl_"
API_KEY_SUBJECT_PREFIX = "api-key:"  # an API key's principal; no JWT may claim a subject starting so


def role_allows(role: Role, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: an API key or a JWT subject, in one tenant, with one role."""

    subject: str  # "api-key:<id>" or the JWT's sub: what audit rows and execution ownership record
    tenant: str
    role: Role


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's row, never its secret."""

    id: uuid.UUID
    name: str
    role: Role
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[uuid.UUID, str] | None:
    """The id and secret of a key, or None when ``token`` is not shaped like one."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, _, secret = token.removeprefix(KEY_PREFIX).partition("_")
    try:
        return uuid.UUID(hex=key_id), secret
    except ValueError:
        return None


def key_subject(key_id: uuid.UUID) -> str:
    """The principal name of an API key."""
    return f"{API_KEY_SUBJECT_PREFIX}{key_id}"


_KEY_COLUMNS = "id, name, role, created_at, created_by, last_used_at, revoked_at"


def _api_key(record: asyncpg.Record) -> ApiKey:
    return ApiKey(**dict(record))


async def create_api_key(
    connection: asyncpg.Connection, *, tenant_id: uuid.UUID, name: str, role: str, actor: Actor
) -> tuple[ApiKey, str]:
    """Store a new key and audit it inside the caller's transaction.

    Returns:
        The key's row and the key itself, which is shown this once and never stored.

    Raises:
        ClientError: ``role`` is not a role.
    """
    if role not in ROLES:
        raise ClientError(f"role {role!r} is not one of {', '.join(ROLES)}")
    key_id, secret = uuid7(), secrets.token_urlsafe(32)
    record = await connection.fetchrow(
        f"INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, created_by) VALUES ($1, $2, $3, $4, $5, $6) "
        f"RETURNING {_KEY_COLUMNS}",
        key_id,
        tenant_id,
        name,
        role,
        _hash(secret),
        actor.principal,
    )
    await record_audit(
        connection,
        tenant_id=tenant_id,
        entity_type="api_key",
        entity_id=str(key_id),
        action="create",
        actor=actor,
        changes={"name": {"before": None, "after": name}, "role": {"before": None, "after": role}},
    )
    return _api_key(record), f"{KEY_PREFIX}{key_id.hex}_{secret}"


async def revoke_api_key(
    connection: asyncpg.Connection, *, tenant_id: uuid.UUID, key_id: uuid.UUID, actor: Actor
) -> ApiKey:
    """Revoke a key (at once: it is checked on every request) and audit it; revoking twice changes nothing.

    Raises:
        NotFound: the tenant has no such key.
    """
    record = await connection.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND tenant_id = $2 FOR UPDATE", key_id, tenant_id
    )
    if record is None:
        raise NotFound(f"API key {key_id} does not exist")
    if record["revoked_at"] is not None:
        return _api_key(record)
    record = await connection.fetchrow(
        f"UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING {_KEY_COLUMNS}", key_id
    )
    await record_audit(
        connection,
        tenant_id=tenant_id,
        entity_type="api_key",
        entity_id=str(key_id),
        action="revoke",
        actor=actor,
        changes=None,
    )
    return _api_key(record)


async def list_api_keys(connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID) -> list[ApiKey]:
    """The tenant's keys, newest first, revoked ones included."""
    records = await connection.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC", tenant_id
    )
    return [_api_key(record) for record in records]


async def authenticate_key(connection: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal | None:
    """The principal of a valid, unrevoked key, or None; notes when it was last used (at most once a minute)."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    record = await connection.fetchrow(
        "SELECT k.role, k.secret_hash, k.revoked_at, k.last_used_at < now() - interval '1 minute' "
        "OR k.last_used_at IS NULL AS stale, t.slug "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1",
        key_id,
    )
    if record is None or record["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(record["secret_hash"], _hash(secret)):
        return None
    if record["stale"]:
        await connection.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id)
    return Principal(subject=key_subject(key_id), tenant=record["slug"], role=record["role"])


async def issue_api_key(database_url: str, *, tenant: str, role: str, name: str, actor: Actor) -> str:
    """Make a key for the tenant ``tenant`` over a connection of its own (admin command, dev stack, tests).

    Raises:
        NotFound: no such tenant.
        ClientError: ``role`` is not a role.
    """
    connection = await connect(database_url)
    try:
        async with connection.transaction():
            tenant_id = await read_tenant_id(connection, tenant)
            _, key = await create_api_key(connection, tenant_id=tenant_id, name=name, role=role, actor=actor)
    finally:
        await connection.close()
    return key
