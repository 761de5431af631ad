"""Routes of API keys: admins make, list and revoke their tenant's keys."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from flowline.db.audit import Actor
from flowline.domain.credentials import create_api_key, list_api_keys, revoke_api_key
from flowline_schemas.api_keys import ApiKey, ApiKeyList, CreatedApiKey
from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from flowline_api.auth import ADMIN, ApiKeyCache
from flowline_api.domain.api_keys.examples import KEY_ID, PATH
from flowline_api.domain.api_keys.schemas import ApiKeyCreate, api_key_body
from flowline_api.domain.openapi import NO_TENANT, problems
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, ApiKeyId


class ApiKeyController(Controller):
    """``/api/v1/tenants/{tenant}/api-keys``."""

    path = "/api-keys"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["api-keys"]

    @post(
        "/",
        opt=ADMIN,
        status_code=HTTP_201_CREATED,
        summary="Make an API key",
        responses=problems(
            PATH,
            bad_request=("/name: nested deeper than 64 levels", "/name"),  # FLOWLINE_MAX_JSON_DEPTH
            not_found=NO_TENANT,
            invalid=("/role: Invalid enum value 'owner'", "/role"),
        ),
    )
    async def create(
        self,
        data: JSONBody[ApiKeyCreate],
        tenant_id: NamedDependency[uuid.UUID],
        pool: NamedDependency[asyncpg.Pool],
        actor: NamedDependency[Actor],
    ) -> CreatedApiKey:
        """Make a key; the response holds the key itself, which cannot be read again."""
        async with pool.acquire() as connection, connection.transaction():
            stored, key = await create_api_key(
                connection, tenant_id=tenant_id, name=data.name, role=data.role, actor=actor
            )
        return CreatedApiKey(**msgspec.structs.asdict(api_key_body(stored)), key=key)

    @get("/", opt=ADMIN, summary="List API keys", responses=problems(PATH, not_found=NO_TENANT))
    async def list_keys(self, tenant_id: NamedDependency[uuid.UUID], pool: NamedDependency[asyncpg.Pool]) -> ApiKeyList:
        """Every key of the tenant, without secrets."""
        return ApiKeyList(items=[api_key_body(key) for key in await list_api_keys(pool, tenant_id)])

    @delete(
        "/{key_id:str}",
        opt=ADMIN,
        status_code=200,
        summary="Revoke an API key",
        responses=problems(f"{PATH}/{KEY_ID}", not_found=f"API key {KEY_ID} does not exist"),
    )
    async def revoke(
        self,
        key_id: ApiKeyId,
        tenant_id: NamedDependency[uuid.UUID],
        pool: NamedDependency[asyncpg.Pool],
        actor: NamedDependency[Actor],
        state: State,
    ) -> ApiKey:
        """Revoke a key: requests with it are refused from now on. Revoking twice changes nothing."""
        async with pool.acquire() as connection, connection.transaction():
            revoked = await revoke_api_key(connection, tenant_id=tenant_id, key_id=key_id, actor=actor)
        # After the commit: a lookup that began before it may still have found the key valid, and ``forget``
        # also keeps such a lookup from caching it.
        keys: ApiKeyCache = state.api_keys
        keys.forget(key_id)
        return api_key_body(revoked)
