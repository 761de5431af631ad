"""Signing in to the console with an API key or a JWT, and signing out."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import MultiFernet
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from flowline_api.auth import find_principal
from flowline_api.console.session import PATH, SECURITY_HEADERS, seal, session_cookie
from flowline_api.console.views import page_context


def _next_page(value: Any) -> str:
    """Where to go after signing in: a console page, never another site (``//host`` or a scheme)."""
    target = str(value or "")
    if not target.startswith(PATH + "/") or target.startswith("//") or "\\" in target:
        return PATH + "/executions"
    return target


class ConsoleLoginController(Controller):
    """``/ui/login`` and ``/ui/logout``."""

    path = "/"
    response_headers = SECURITY_HEADERS

    @get("/login", name="console:login")
    async def login_form(self, request: Request[Any, Any, State]) -> Template:
        """The sign-in form."""
        context = page_context(None, next=_next_page(request.query_params.get("next")), error=None)
        return Template("login.html", context=context)

    @post("/login", name="console:sign-in")
    async def sign_in(self, request: Request[Any, Any, State]) -> Redirect | Template:
        """Check the credential as the API would; keep it, sealed, in the session cookie."""
        form = await request.form()
        credential = str(form.get("credential") or "").strip()
        principal = await find_principal(request.app.state, credential) if credential else None
        if principal is None:
            context = page_context(
                None, next=_next_page(form.get("next")), error="that API key or token is unknown, revoked or expired"
            )
            return Template("login.html", context=context, status_code=401)
        cipher: MultiFernet = request.app.state.auth_cipher
        return Redirect(
            _next_page(form.get("next")),
            status_code=303,
            cookies=[session_cookie(request, seal(cipher, credential))],
        )

    @post("/logout", name="console:sign-out")
    async def sign_out(self, request: Request[Any, Any, State]) -> Redirect:
        """Forget the credential (the cookie is emptied and expires at once)."""
        return Redirect(f"{PATH}/login", status_code=303, cookies=[session_cookie(request, "", max_age=0)])
