"""Who is signed in to the console: the credential kept in an encrypted cookie, and what follows from it.

The console takes the same credentials as the API (an API key or a JWT) and checks them with the API's own
authentication (``find_principal``), so keys, roles, revocation and expiry behave alike. The credential is sealed
with the app's cipher (``FLOWLINE_SECRET_KEY``) into an HttpOnly, SameSite=Strict cookie scoped to ``/ui``
(Secure when the console is reached over https): never in a URL, never readable by a script.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote

from cryptography.fernet import InvalidToken, MultiFernet
from flowline.db.tenants import read_tenant_id
from flowline.domain.credentials import Principal
from flowline.errors import FlowlineError
from flowline.settings import Settings
from litestar import Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, ResponseHeader, State
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.csrf import CSRFMiddleware
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Receive, Scope, Send

from flowline_api.auth import find_principal
from flowline_api.console.views import page_context

logger = logging.getLogger(__name__)

COOKIE: Final = "flowline_console"
CSRF_COOKIE: Final = "flowline_console_csrf"
PATH: Final = "/ui"
# A sign-in lasts a working day at most; the credential itself may expire or be revoked sooner.
SESSION_SECONDS: Final = 12 * 3600
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = [
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]


def csrf_config(settings: Settings, *, secure: bool) -> CSRFConfig:
    """The console's CSRF tokens: a cookie and a hidden field of every form that changes something, which must agree.

    The secret is derived from FLOWLINE_SECRET_KEY, so every api process accepts the others' tokens. ``secure``
    marks the cookie Secure, for a console reached over https.
    """
    secret = hashlib.sha256(b"flowline console csrf\0" + settings.secret_key.encode()).hexdigest()
    return CSRFConfig(
        secret=secret,
        cookie_name=CSRF_COOKIE,
        cookie_path=PATH,
        cookie_samesite="strict",
        cookie_httponly=True,
        cookie_secure=secure,
    )


class ConsoleCSRFMiddleware:
    """Litestar's CSRF check, whose cookie is Secure when the request came over https, like the session cookie.

    Litestar's CSRF configuration fixes the cookie's flags for every request; the console is reached over http in
    development and over https behind a proxy, so this picks one of two checks (same secret) by the scheme.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._plain = CSRFMiddleware(app, csrf_config(settings, secure=False))
        self._secure = CSRFMiddleware(app, csrf_config(settings, secure=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request (or set its cookie) with the check for its scheme."""
        check = self._secure if scope.get("scheme") == "https" else self._plain
        await check(scope, receive, send)


def seal(cipher: MultiFernet, credential: str) -> str:
    """The cookie value holding ``credential``."""
    return cipher.encrypt(credential.encode()).decode()


def session_cookie(request: Request[Any, Any, Any], value: str, *, max_age: int = SESSION_SECONDS) -> Cookie:
    """The console's session cookie (``max_age`` 0 removes it)."""
    return Cookie(
        key=COOKIE,
        value=value,
        path=PATH,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


class ConsoleAuthentication(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to the principal of the credential in the session cookie, or None.

    As with the API, the guards decide what None means: the console's exception handler sends it to sign-in.
    """

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """Open the cookie and check the credential in it."""
        sealed = connection.cookies.get(COOKIE)
        if not sealed:
            return AuthenticationResult(user=None, auth=None)
        cipher: MultiFernet = connection.app.state.auth_cipher
        try:
            credential = cipher.decrypt(sealed.encode(), ttl=SESSION_SECONDS).decode()
        except InvalidToken:
            return AuthenticationResult(user=None, auth=None)
        principal = await find_principal(connection.app.state, credential)
        return AuthenticationResult(user=principal, auth=credential if principal else None)


async def provide_console_tenant_id(state: State, request: Request[Principal, Any, Any]) -> uuid.UUID:
    """The id of the signed-in principal's tenant (the console only ever shows the caller's own tenant)."""
    cache: dict[str, uuid.UUID] = state.tenant_ids
    tenant = request.user.tenant
    tenant_id = cache.get(tenant)
    if tenant_id is None:
        tenant_id = cache[tenant] = await read_tenant_id(state.pool, tenant)
    return tenant_id


def to_sign_in(request: Request[Any, Any, Any], _: NotAuthorizedException) -> Response[Any]:
    """A signed-out request goes to the sign-in form, which brings the person back here afterwards."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET" or not target.startswith(PATH + "/"):
        target = PATH + "/"
    if request.headers.get("hx-request"):  # htmx follows redirects inside the page: load the sign-in page whole
        return Response(None, status_code=204, headers={"HX-Redirect": f"{PATH}/login"})
    return Redirect(f"{PATH}/login?next={quote(target, safe='/')}")


def problem_page(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """A refused or failed request as a page saying why (404 for what the caller may not see, 403, 409, …)."""
    if isinstance(error, FlowlineError):
        status, title, detail = error.status_code, error.title, error.detail
    elif isinstance(error, PermissionDeniedException):
        status, title, detail = 403, "Not allowed", str(error.detail)
    elif isinstance(error, HTTPException) and error.status_code < 500:
        status, title, detail = error.status_code, HTTPStatus(error.status_code).phrase, str(error.detail)
    else:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        status, title, detail = 500, "Internal error", "the console could not answer; the api's log has the details"
    user = request.scope.get("user")
    headers = dict(error.headers or {}) if isinstance(error, HTTPException) else {}  # a 429's RateLimit-*
    if "RateLimit-Reset" in headers:
        headers["Retry-After"] = headers["RateLimit-Reset"]  # as the API's 429 says it
    return Template(
        "problem.html",
        context=page_context(user, title=title, detail=detail, status=status),
        status_code=status,
        headers=headers,
    )
