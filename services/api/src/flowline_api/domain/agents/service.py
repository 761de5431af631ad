"""Agent use cases: register, read, list, change, delete, health check; every change audited."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
from cryptography.fernet import MultiFernet
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.sql import bind
from flowline.domain.agents import (
    agent_from_record,
    auth_headers,
    decrypt_auth_config,
    encrypt_auth_config,
    redact,
    validate_auth_config,
)
from flowline.errors import ClientError, Conflict, NotFound, ValidationFailed
from flowline.runtime.ids import uuid7
from flowline.runtime.outbound import OutboundPolicy, OutboundRefused
from flowline_schemas.agents import Agent, AgentHealth, RetryConfig
from flowline_schemas.pagination import Page
from litestar.datastructures import State
from litestar.di import NamedDependency

from flowline_api.domain.agents.schemas import AgentCreate, AgentUpdate
from flowline_api.pagination import decode_cursor, encode_cursor

ENTITY_TYPE = "agent"
SECRET_FIELDS = frozenset({"authConfig"})
# A health check waits at most this long (or the agent's own timeout, if shorter).
HEALTH_TIMEOUT_SECONDS = 5.0
CREDENTIALS_ADVICE = "use authType basic with authConfig instead"
AGENT_COLUMNS = (
    "id, tenant_id, name, description, url, health_path, auth_type, auth_config_encrypted, timeout_ms, "
    "retry_config, status, created_at, updated_at"
)
_INSERT_AGENT = f"""
    INSERT INTO agents (id, tenant_id, name, description, url, health_path, auth_type, auth_config_encrypted,
                        timeout_ms, retry_config, status)
    VALUES (:id, :tenant_id, :name, :description, :url, :health_path, :auth_type, :auth_config_encrypted,
            :timeout_ms, :retry_config, :status)
    RETURNING {AGENT_COLUMNS}
    """
_UPDATE_AGENT = f"""
    UPDATE agents SET name = :name, description = :description, url = :url, health_path = :health_path,
        auth_type = :auth_type, auth_config_encrypted = :auth_config_encrypted, timeout_ms = :timeout_ms,
        retry_config = :retry_config, status = :status, updated_at = now()
    WHERE tenant_id = :tenant_id AND id = :id
    RETURNING {AGENT_COLUMNS}
    """


def check_url(url: str, policy: OutboundPolicy, *, credentials_advice: str = CREDENTIALS_ADVICE) -> str:
    """``url`` when it is an absolute http(s) URL without embedded credentials, to a host ``policy`` allows.

    ``credentials_advice`` ends the message refusing a URL with credentials in it: where they belong instead.

    Only an IP literal or ``localhost`` is judged here: resolving a name would make the request wait on DNS,
    and what a name resolves to can change, so every connection checks the addresses it resolves to.

    Raises:
        ValidationFailed: anything else (pointer ``/url``).
    """
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decoded on access: an invalid IDNA label (`xn--`) raises only here
    except (httpx.InvalidURL, ValueError, TypeError) as err:
        raise ValidationFailed("url: not a valid URL", pointer="/url") from err
    if parsed.scheme not in ("http", "https") or not host:
        raise ValidationFailed("url: must be an absolute http or https URL", pointer="/url")
    if parsed.userinfo:
        # The URL is not a secret field: credentials in it would be stored and shown in the clear.
        raise ValidationFailed(f"url: must not hold credentials; {credentials_advice}", pointer="/url")
    try:
        policy.check_literal_host(host)
    except OutboundRefused as err:
        raise ValidationFailed(f"url: {err.detail}", pointer="/url") from err
    return url


def health_url(url: str, health_path: str | None) -> str:
    """Where the health check goes: ``health_path`` resolved against the agent's URL, like a link."""
    return str(httpx.URL(url).join(health_path)) if health_path else url


def check_health_path(url: str, health_path: str | None) -> None:
    """Check that ``health_path`` resolves against ``url`` (a checked URL) to a URL a health check can GET.

    Raises:
        ValidationFailed: it does not, e.g. it holds a control character (pointer ``/healthPath``).
    """
    try:
        health_url(url, health_path)
    except (httpx.InvalidURL, ValueError) as err:
        raise ValidationFailed(f"healthPath: not a valid URL path: {err}", pointer="/healthPath") from err


def credential_origins(url: str, health_path: str | None) -> frozenset[tuple[str, str, int | None]]:
    """Where an agent's credentials go: the origins (scheme, host, port) of its URL and of its health URL."""
    origins = set()
    for target in (url, health_url(url, health_path)):
        parsed = httpx.URL(target)
        origins.add((parsed.scheme, parsed.host, parsed.port))
    return frozenset(origins)


def to_agent(record: Mapping[str, Any], auth_config: Mapping[str, str]) -> Agent:
    """The response body for an ``agents`` row; only the names of its credentials' fields."""
    retry = record["retry_config"]
    return Agent(
        id=str(record["id"]),
        name=record["name"],
        description=record["description"],
        url=record["url"],
        health_path=record["health_path"],
        auth_type=record["auth_type"],
        auth_config_fields=sorted(auth_config),
        timeout_ms=record["timeout_ms"],
        retry_config=None if retry is None else msgspec.convert(retry, RetryConfig),
        status=record["status"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def audit_snapshot(record: Mapping[str, Any], auth_config: Mapping[str, str]) -> dict[str, Any]:
    """The audited fields of an agent, named as in the API; ``authConfig`` is masked by ``field_changes``."""
    return {
        "name": record["name"],
        "description": record["description"],
        "url": record["url"],
        "healthPath": record["health_path"],
        "authType": record["auth_type"],
        "authConfig": dict(auth_config) or None,
        "timeoutMs": record["timeout_ms"],
        "retryConfig": record["retry_config"],
        "status": record["status"],
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _updated_auth_config(
    data: AgentUpdate, current: Mapping[str, Any], current_config: dict[str, str], auth_type: str
) -> dict[str, str]:
    """The credentials an update leaves: those sent, the stored ones while the auth type stays, or none for ``none``.

    Raises:
        ValidationFailed: a bad auth config, or a new auth type (other than ``none``) without one.
    """
    if data.auth_config is not msgspec.UNSET:
        return validate_auth_config(auth_type, data.auth_config)
    if auth_type == current["auth_type"]:
        return current_config
    if auth_type == "none":
        return {}
    # Credentials of one auth type never silently serve another.
    raise ValidationFailed(f"authConfig: required when authType changes to {auth_type}", pointer="/authConfig")


def _updated_values(data: AgentUpdate, current: Mapping[str, Any], auth_type: str) -> dict[str, Any]:
    """The agent's columns after an update (credentials aside): each sent field, else the stored value."""
    return {
        "name": current["name"] if data.name is msgspec.UNSET else data.name,
        "description": current["description"] if data.description is msgspec.UNSET else data.description,
        "url": current["url"] if data.url is msgspec.UNSET else data.url,
        "health_path": current["health_path"] if data.health_path is msgspec.UNSET else data.health_path,
        "auth_type": auth_type,
        "timeout_ms": current["timeout_ms"] if data.timeout_ms is msgspec.UNSET else data.timeout_ms,
        "retry_config": current["retry_config"]
        if data.retry_config is msgspec.UNSET
        else msgspec.to_builtins(data.retry_config),
        "status": current["status"] if data.status is msgspec.UNSET else data.status,
    }


def _check_credentials_stay(
    data: AgentUpdate, current: Mapping[str, Any], values: Mapping[str, Any], auth_config: Mapping[str, str]
) -> None:
    """Refuse to keep stored credentials for an agent whose ``url`` or ``healthPath`` sends them to a new origin.

    Raises:
        ValidationFailed: stored credentials kept for another origin.
    """
    if (
        data.auth_config is msgspec.UNSET
        and auth_config
        and not credential_origins(values["url"], values["health_path"])
        <= credential_origins(current["url"], current["health_path"])
    ):
        # Stored credentials never follow the agent somewhere new unseen: whoever moves them must know them.
        raise ValidationFailed(
            "authConfig: required when url or healthPath sends the credentials to another origin "
            "(scheme, host and port); send them again",
            pointer="/authConfig",
        )


class AgentService:
    """Stores agents with sealed credentials and checks their health."""

    def __init__(
        self, pool: asyncpg.Pool, cipher: MultiFernet, http: httpx.AsyncClient, outbound: OutboundPolicy
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self._http = http
        self._outbound = outbound

    async def create(self, tenant_id: uuid.UUID, data: AgentCreate, actor: Actor) -> Agent:
        """Register an agent; its credentials are validated for its auth type and stored encrypted.

        Raises:
            ValidationFailed: a bad URL or auth config (the pointer names the field).
            Conflict: a live agent of the tenant has this name.
        """
        check_url(data.url, self._outbound)
        check_health_path(data.url, data.health_path)
        auth_config = validate_auth_config(data.auth_type, data.auth_config)
        async with self._pool.acquire() as connection, connection.transaction():
            try:
                record = await connection.fetchrow(
                    *bind(
                        _INSERT_AGENT,
                        id=uuid7(),
                        tenant_id=tenant_id,
                        name=data.name,
                        description=data.description,
                        url=data.url,
                        health_path=data.health_path,
                        auth_type=data.auth_type,
                        auth_config_encrypted=encrypt_auth_config(self._cipher, auth_config),
                        timeout_ms=data.timeout_ms,
                        retry_config=None if data.retry_config is None else msgspec.to_builtins(data.retry_config),
                        status=data.status,
                    )
                )
            except asyncpg.UniqueViolationError as err:
                raise Conflict(f"agent {data.name!r} already exists") from err
            assert record is not None
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type=ENTITY_TYPE,
                entity_id=str(record["id"]),
                action="create",
                actor=actor,
                changes=field_changes(None, audit_snapshot(record, auth_config), secret_fields=SECRET_FIELDS),
            )
        return to_agent(record, auth_config)

    async def _read_record(
        self, connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, agent_id: uuid.UUID, lock: str = ""
    ) -> asyncpg.Record:
        record = await connection.fetchrow(
            f"SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL {lock}",
            tenant_id,
            agent_id,
        )
        if record is None:
            raise NotFound(f"agent {agent_id} does not exist")
        return record

    async def read(self, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
        """One live agent.

        Raises:
            NotFound: no such agent in this tenant, or it was deleted.
        """
        return self._to_agent(await self._read_record(self._pool, tenant_id, agent_id))

    def _to_agent(self, record: asyncpg.Record) -> Agent:
        return to_agent(record, decrypt_auth_config(self._cipher, record["auth_config_encrypted"]))

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        status: str | None,
        search: str | None,
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> Page[Agent]:
        """One page of live agents ordered by name.

        Args:
            tenant_id: whose agents.
            status: only agents with this status.
            search: only agents whose name or description contains it (case-insensitive).
            limit: items per page.
            offset: items to skip (not with ``cursor``).
            cursor: the ``nextCursor`` of the previous page.

        Raises:
            ClientError: a cursor this list did not write, or a cursor together with an offset.
        """
        where = ["tenant_id = $1", "deleted_at IS NULL"]
        args: list[Any] = [tenant_id]
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        if search:
            args.append(f"%{_escape_like(search)}%")
            where.append(f"(name ILIKE ${len(args)} OR description ILIKE ${len(args)})")
        count_sql = f"SELECT count(*) FROM agents WHERE {' AND '.join(where)}"
        count_args = list(args)
        if cursor is not None:
            if offset:
                raise ClientError("give either offset or cursor, not both")
            try:
                after_name, after_id = decode_cursor(cursor, 2)
                after = (str(after_name), uuid.UUID(str(after_id)))
            except ValueError as err:
                raise ClientError("cursor: not a cursor returned by this list") from err
            args.extend(after)
            where.append(f"(name, id) > (${len(args) - 1}, ${len(args)})")
        args.extend([limit + 1, offset])
        async with self._pool.acquire() as connection:
            total = await connection.fetchval(count_sql, *count_args)
            records = await connection.fetch(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE {' AND '.join(where)} "
                f"ORDER BY name, id LIMIT ${len(args) - 1} OFFSET ${len(args)}",
                *args,
            )
        page = records[:limit]
        items = [
            to_agent(record, decrypt_auth_config(self._cipher, record["auth_config_encrypted"])) for record in page
        ]
        next_cursor = encode_cursor([page[-1]["name"], str(page[-1]["id"])]) if len(records) > limit and page else None
        return Page(items=items, total=total, limit=limit, offset=offset, next_cursor=next_cursor)

    async def update(self, tenant_id: uuid.UUID, agent_id: uuid.UUID, data: AgentUpdate, actor: Actor) -> Agent:
        """Change an agent's fields; omitted fields keep their value.

        Stored credentials are kept only while they keep going to the same origins: a ``url`` or ``healthPath``
        pointing elsewhere needs ``authConfig`` again (or ``authType`` ``none``).

        Raises:
            NotFound: no such live agent.
            ValidationFailed: a bad URL or auth config, a new auth type without credentials, or credentials
                kept for another origin.
            Conflict: another live agent has the new name.
        """
        if data.url is not msgspec.UNSET:
            check_url(data.url, self._outbound)
        async with self._pool.acquire() as connection, connection.transaction():
            current = await self._read_record(connection, tenant_id, agent_id, lock="FOR UPDATE")
            current_config = decrypt_auth_config(self._cipher, current["auth_config_encrypted"])
            auth_type = current["auth_type"] if data.auth_type is msgspec.UNSET else data.auth_type
            auth_config = _updated_auth_config(data, current, current_config, auth_type)
            values = _updated_values(data, current, auth_type)
            check_health_path(values["url"], values["health_path"])
            _check_credentials_stay(data, current, values, auth_config)
            changes = field_changes(
                audit_snapshot(current, current_config),
                audit_snapshot(values, auth_config),
                secret_fields=SECRET_FIELDS,
            )
            if not changes:
                return to_agent(current, current_config)
            sealed = (
                current["auth_config_encrypted"]
                if auth_config == current_config
                else encrypt_auth_config(self._cipher, auth_config)
            )
            try:
                record = await connection.fetchrow(
                    *bind(
                        _UPDATE_AGENT,
                        tenant_id=tenant_id,
                        id=agent_id,
                        name=values["name"],
                        description=values["description"],
                        url=values["url"],
                        health_path=values["health_path"],
                        auth_type=auth_type,
                        auth_config_encrypted=sealed,
                        timeout_ms=values["timeout_ms"],
                        retry_config=values["retry_config"],
                        status=values["status"],
                    )
                )
            except asyncpg.UniqueViolationError as err:
                raise Conflict(f"agent {values['name']!r} already exists") from err
            assert record is not None
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type=ENTITY_TYPE,
                entity_id=str(agent_id),
                action="update",
                actor=actor,
                changes=changes,
            )
        return to_agent(record, auth_config)

    async def delete(self, tenant_id: uuid.UUID, agent_id: uuid.UUID, actor: Actor) -> None:
        """Soft-delete an agent: it leaves lists and reads, its name can be registered again.

        Raises:
            NotFound: no such live agent.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            record = await connection.fetchrow(
                "UPDATE agents SET deleted_at = now(), updated_at = now() "
                f"WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {AGENT_COLUMNS}",
                tenant_id,
                agent_id,
            )
            if record is None:
                raise NotFound(f"agent {agent_id} does not exist")
            auth_config = decrypt_auth_config(self._cipher, record["auth_config_encrypted"])
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type=ENTITY_TYPE,
                entity_id=str(agent_id),
                action="delete",
                actor=actor,
                changes=field_changes(audit_snapshot(record, auth_config), None, secret_fields=SECRET_FIELDS),
            )

    async def check_health(self, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> AgentHealth:
        """GET the agent's health URL with its auth, bounded by a short timeout; never raises for the agent's sake.

        Raises:
            NotFound: no such live agent.
        """
        record = await self._read_record(self._pool, tenant_id, agent_id)
        agent = agent_from_record(record, self._cipher)
        timeout = min(agent.timeout_ms / 1000, HEALTH_TIMEOUT_SECONDS)
        url = health_url(agent.url, record["health_path"])
        started = time.perf_counter()
        status, http_status, error = "unreachable", None, None
        try:
            # httpx bounds each phase; the outer bound also caps a server that trickles its answer.
            async with asyncio.timeout(timeout):
                response = await self._http.get(url, headers=auth_headers(agent, b""), timeout=timeout)
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {timeout:g} s"
        except OutboundRefused as err:  # e.g. its name now resolves to a private address
            error = err.detail
        except httpx.HTTPError as err:
            error = redact(f"{type(err).__name__}: {err}", agent)
        else:
            http_status = response.status_code
            if 200 <= http_status < 300:
                status = "healthy"
            else:
                status, error = "unhealthy", f"GET {url} answered {http_status}"
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return AgentHealth(
            status=status,  # type: ignore[arg-type]
            latency_ms=latency_ms,
            http_status=http_status,
            checked_at=datetime.now(UTC),
            error=error,
        )


def provide_agent_service(pool: NamedDependency[asyncpg.Pool], state: State) -> AgentService:
    """An agent service for this request, sharing the app's cipher, HTTP client and outbound policy."""
    cipher: MultiFernet = state.auth_cipher
    http: httpx.AsyncClient = state.http
    outbound: OutboundPolicy = state.outbound
    return AgentService(pool, cipher, http, outbound)
