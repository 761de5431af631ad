"""Who is calling, and may they: Litestar's authentication middleware and one guard for every route.

Credentials come as ``Authorization: Bearer <token>``: an API key (``fl_<id>_<secret>``) or a JWT with the
claims ``sub``, ``tenant``, ``roles`` and ``exp``. Every tenant route declares the role it needs in its
``opt`` (``opt=VIEWER`` and so on); ``require_role`` enforces it, and refuses to serve a route that forgot.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import jwt
from flowline.domain.credentials import (
    API_KEY_SUBJECT_PREFIX,
    ROLES,
    Principal,
    authenticate_key,
    parse_key,
    role_allows,
)
from flowline.errors import NotFound
from flowline.settings import Settings
from flowline_schemas.api_keys import Role
from litestar.connection import ASGIConnection, Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.security.jwt import Token

VIEWER: dict[str, Role] = {"role": "viewer"}
OPERATOR: dict[str, Role] = {"role": "operator"}
ADMIN: dict[str, Role] = {"role": "admin"}

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowline"'}


class JwtVerifier:
    """Checks JWTs against the configured HS256 secret or RS256 public keys, issuer, audience and lifetime."""

    def __init__(self, settings: Settings) -> None:
        self._keys: list[tuple[str, str]] = []
        if settings.jwt_hs256_secret:
            self._keys.append((settings.jwt_hs256_secret, "HS256"))
        end = "-----END PUBLIC KEY-----"
        for block in settings.jwt_rs256_public_keys.split(end):
            if block.strip():
                self._keys.append((block.strip() + "\n" + end + "\n", "RS256"))
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._max_lifetime = settings.jwt_max_lifetime_seconds
        required = ["exp", "sub", "tenant", "roles"]
        if self._issuer:
            required.append("iss")
        if self._audience:
            required.append("aud")
        if self._max_lifetime > 0:
            required.append("iat")  # PyJWT also refuses an iat in the future
        # decode_payload, not Token.decode: the latter demands an `iat` claim even when no lifetime is checked.
        # Without a configured audience, PyJWT would refuse any token that carries one: not checked means that.
        self._options: dict[str, Any] = {"require": required, "verify_aud": self._audience is not None}

    def principal(self, token: str) -> Principal | None:
        """The principal of a valid token (signature, expiry, issuer, audience, lifetime, claims), or None."""
        for key, algorithm in self._keys:
            try:
                claims = Token.decode_payload(
                    token,
                    key,
                    [algorithm],
                    issuer=self._issuer,
                    audience=self._audience,
                    options=self._options,  # type: ignore[arg-type]
                )
            except jwt.InvalidTokenError:
                continue
            tenant, roles, subject = claims.get("tenant"), claims.get("roles"), claims.get("sub")
            if not isinstance(tenant, str) or not isinstance(roles, list) or not isinstance(subject, str):
                return None
            if self._max_lifetime > 0 and int(claims["exp"]) - int(claims["iat"]) > self._max_lifetime:
                return None
            granted = [role for role in ROLES if role in roles]
            # An API key's principal is "api-key:<id>": a JWT naming one would own that key's executions.
            if not subject or subject.startswith(API_KEY_SUBJECT_PREFIX) or not granted:
                return None
            return Principal(subject=subject, tenant=tenant, role=granted[-1])
        return None


class ApiKeyCache:
    """The principals of API keys verified in PostgreSQL in the last ``ttl`` seconds.

    Most requests thus authenticate without a database round trip. An entry holds the SHA-256 of the whole
    key, so only the very key that was verified matches it. A key revoked through this process is dropped at
    once (``forget``); another api process refuses it once its own entry expires, at most ``ttl`` seconds
    later. Failed verifications are not kept. ``ttl`` 0 turns it off.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[uuid.UUID, tuple[bytes, Principal, float]] = {}  # key id → (digest, principal, expiry)
        self.forgotten = 0  # counts ``forget`` calls: a verification that began before one is not kept

    def get(self, token: str) -> Principal | None:
        """The cached principal of ``token``, or None when it is not an API key verified within ``ttl``."""
        parsed = parse_key(token) if self._entries else None
        if parsed is None or (entry := self._entries.get(parsed[0])) is None:
            return None
        digest, principal, expires = entry
        if self._clock() >= expires:
            del self._entries[parsed[0]]
            return None
        return principal if hmac.compare_digest(digest, _digest(token)) else None

    def put(self, token: str, principal: Principal, *, forgotten: int) -> None:
        """Keep the principal of a key just verified, unless a key was forgotten since.

        ``forgotten`` is the count read before the verification began: it may have read a key revoked meanwhile.
        """
        parsed = parse_key(token)
        if parsed is None or self._ttl <= 0 or forgotten != self.forgotten:
            return
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            self._entries = {key: entry for key, entry in self._entries.items() if entry[2] > now}
            while len(self._entries) >= self._max_entries:  # all fresh: drop the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[parsed[0]] = (_digest(token), principal, self._clock() + self._ttl)

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a key (it was revoked): its next request is verified in PostgreSQL again."""
        self.forgotten += 1
        self._entries.pop(key_id, None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, if it has one."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class BearerAuthentication(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to the caller's :class:`Principal`, or to None for missing or bad credentials.

    The 401 for None comes from ``require_role``, not from here: the rate limiters run between the two, so
    that unauthenticated requests are limited (per client address) and answer with rate-limit headers too.
    """

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """Find the principal of the request's bearer token, if it has a valid one."""
        token = bearer_token(connection)
        if token is None:
            return AuthenticationResult(user=None, auth=None)
        principal = await find_principal(connection.app.state, token)
        return AuthenticationResult(user=principal, auth=token if principal else None)


async def find_principal(state: State, token: str) -> Principal | None:
    """The principal of a credential (an API key, else a JWT), or None when it is unknown, revoked or expired.

    The console authenticates the credential it keeps in its cookie with this too: same keys, same rules.
    """
    keys: ApiKeyCache = state.api_keys
    principal = keys.get(token)
    if principal is None:
        forgotten = keys.forgotten
        principal = await authenticate_key(state.pool, token)
        if principal is not None:
            keys.put(token, principal, forgotten=forgotten)
        else:
            verifier: JwtVerifier = state.jwt_verifier
            principal = verifier.principal(token)
    return principal


async def require_role(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The one guard: there must be a caller, and its role must allow what the route declares in ``opt["role"]``.

    A coroutine although it never waits: Litestar runs a plain function guard in a worker thread, a thread
    hand-off on every request.

    Raises:
        NotAuthorizedException: no credentials, or credentials that are unknown, revoked or expired.
        PermissionDeniedException: the role does not allow it.
        RuntimeError: the route declares no role (a mistake: refusing is safer than guessing).
    """
    if isinstance(connection, Request) and connection.method == "OPTIONS":
        return  # Litestar's own OPTIONS answer (CORS preflight): no credentials, like the middleware
    if connection.user is None:
        if bearer_token(connection):
            raise NotAuthorizedException("the credentials are invalid, revoked or expired", headers=CHALLENGE)
        raise NotAuthorizedException("credentials are required: Authorization: Bearer <key>", headers=CHALLENGE)
    needed = handler.opt.get("role")
    if needed not in ROLES:
        raise RuntimeError(f"route {handler} declares no role in its opt")
    principal: Principal = connection.user
    if not role_allows(principal.role, needed):
        raise PermissionDeniedException(f"this needs the {needed} role; the credentials have {principal.role}")


async def require_visible(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Ownership: an execution and its tasks are for the principal that owns it, or anyone when public.

    Admins see all. Another's answers 404, exactly like an id that does not exist.

    Raises:
        NotFound: the route names an execution or task the caller may not see.
    """
    principal: Principal | None = connection.scope.get("user")
    if principal is None or principal.role == "admin":
        return  # an OPTIONS answer (no credentials) or an admin
    params = connection.path_params
    pool: asyncpg.Pool = connection.app.state.pool
    if (execution_id := _as_uuid(params.get("execution_id"))) is not None:
        kind, found_id = "execution", execution_id
        visible = await pool.fetchval(
            "SELECT e.owned_by IS NOT DISTINCT FROM $3 OR w.public FROM executions e "
            "JOIN workflows w ON w.id = e.workflow_id JOIN tenants t ON t.id = e.tenant_id "
            "WHERE e.id = $1 AND t.slug = $2",
            execution_id,
            principal.tenant,
            principal.subject,
        )
    elif (task_id := _as_uuid(params.get("task_id"))) is not None:
        kind, found_id = "task", task_id
        visible = await pool.fetchval(
            "SELECT e.owned_by IS NOT DISTINCT FROM $3 OR w.public FROM step_executions s "
            "JOIN executions e ON e.id = s.execution_id JOIN workflows w ON w.id = e.workflow_id "
            "JOIN tenants t ON t.id = e.tenant_id WHERE s.id = $1 AND t.slug = $2",
            task_id,
            principal.tenant,
            principal.subject,
        )
    else:
        return
    if visible is False:  # None: no such row, and the route answers its own 404
        raise NotFound(f"{kind} {found_id} does not exist")


def _as_uuid(value: Any) -> uuid.UUID | None:
    """A path parameter as a UUID; None when absent or malformed (the route answers 400 for that)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
