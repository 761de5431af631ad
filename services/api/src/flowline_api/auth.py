"""Who is calling, and may they: Litestar's authentication middleware and one guard for every route.

Credentials come as ``Authorization: Bearer <token>``: an API key (``fl_<id>_<secret>``) or a JWT with the
claims ``sub``, ``tenant``, ``roles`` and ``exp``. Every tenant route declares the role it needs in its
``opt`` (``opt=VIEWER`` and so on); ``require_role`` enforces it, and refuses to serve a route that forgot.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from flowline.credentials import ROLES, Principal, Role, authenticate_key, role_allows
from flowline.settings import Settings
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.security.jwt import Token

VIEWER: dict[str, Role] = {"role": "viewer"}
OPERATOR: dict[str, Role] = {"role": "operator"}
ADMIN: dict[str, Role] = {"role": "admin"}

# Routes anyone may call: liveness, readiness, metrics and the API's own documentation.
PUBLIC_PATHS = ("^/health", "^/metrics$", "^/docs", "^/swagger")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowline"'}


class JwtVerifier:
    """Checks JWTs against the configured HS256 secret or RS256 public keys."""

    def __init__(self, settings: Settings) -> None:
        self._keys: list[tuple[str, str]] = []
        if settings.jwt_hs256_secret:
            self._keys.append((settings.jwt_hs256_secret, "HS256"))
        end = "-----END PUBLIC KEY-----"
        for block in settings.jwt_rs256_public_keys.split(end):
            if block.strip():
                self._keys.append((block.strip() + "\n" + end + "\n", "RS256"))

    def principal(self, token: str) -> Principal | None:
        """The principal of a valid token (signature, expiry, claims), or None."""
        for key, algorithm in self._keys:
            try:
                decoded = Token.decode(token, key, algorithm, require_claims=["exp", "sub", "tenant", "roles"])
            except NotAuthorizedException:
                continue
            tenant, roles = decoded.extras.get("tenant"), decoded.extras.get("roles")
            if not isinstance(tenant, str) or not isinstance(roles, list):
                return None
            granted = [role for role in ROLES if role in roles]
            if not granted:
                return None
            return Principal(subject=decoded.sub, tenant=tenant, role=granted[-1])
        return None


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
        pool: asyncpg.Pool = connection.app.state.pool
        verifier: JwtVerifier = connection.app.state.jwt_verifier
        principal = await authenticate_key(pool, token) or verifier.principal(token)
        return AuthenticationResult(user=principal, auth=token if principal else None)


def require_role(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The one guard: there must be a caller, and its role must allow what the route declares in ``opt["role"]``.

    Raises:
        NotAuthorizedException: no credentials, or credentials that are unknown, revoked or expired.
        PermissionDeniedException: the role does not allow it.
        RuntimeError: the route declares no role (a mistake: refusing is safer than guessing).
    """
    if connection.scope["method"] == "OPTIONS":
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


def sees_everything(principal: Principal) -> bool:
    """Whether the principal sees and controls every execution of its tenant, not only its own."""
    return principal.role == "admin"


def owner_filter(principal: Principal) -> str | None:
    """The ``started_by`` that executions must have to be visible, or None when all are."""
    return None if sees_everything(principal) else principal.subject
