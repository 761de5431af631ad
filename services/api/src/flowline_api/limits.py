"""Limits on request bodies, all decoded as JSON: how deep they nest and how long a string may be (400 past them)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from flowline.errors import ClientError, TooLarge
from flowline.settings import Settings
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

# A JSON token: a string (group 1), a structural character (group 2), or a run of anything else (a scalar).
_TOKEN = re.compile(rb'\s*(?:("(?:[^"\\]|\\.)*")|([\[\]{}:,])|([^\s\[\]{}:,"]+))')


class JsonLimitExceeded(ClientError):
    """A JSON body nests too deep or holds too long a string."""

    def __init__(self, detail: str, pointer: str) -> None:
        super().__init__(f"{pointer or 'body'}: {detail}", extra={"pointer": pointer})


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _pointer(parts: list[str]) -> str:
    return "".join(f"/{_escape(part)}" for part in parts)


def check_json_limits(body: bytes, *, max_depth: int, max_string_length: int) -> None:
    """Refuse a JSON document nested deeper than ``max_depth`` or with a string (or key) longer than allowed.

    A body that is not JSON passes: the route reports it the way it reports any malformed body.

    Raises:
        JsonLimitExceeded: naming the limit and the JSON pointer where it is first exceeded.
    """
    # Most bodies cannot break either limit, which two byte counts show without decoding them: a string (or key)
    # of n characters takes at least n + 2 bytes, and a container nested too deep needs max_depth + 1 brackets.
    if len(body) <= max_string_length + 1 and body.count(b"[") + body.count(b"{") <= max_depth:
        return
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return
    except RecursionError:  # deeper than the decoder goes, so far past the limit: find where it is crossed
        _check_tokens(body, max_depth)
        return
    # Depth-first without recursion; each entry keeps its parent so that a pointer is built only when needed.
    pending: list[tuple[Any, int, Any, tuple[Any, ...] | None]] = [(document, 0, None, None)]
    while pending:
        entry = pending.pop()
        value, depth = entry[0], entry[1]
        if isinstance(value, dict | list):
            if depth >= max_depth:
                raise JsonLimitExceeded(f"nested deeper than {max_depth} levels", _pointer_of(entry))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and len(key) > max_string_length:
                    raise JsonLimitExceeded(f"a key is longer than {max_string_length} characters", _pointer_of(entry))
                pending.append((item, depth + 1, key, entry))
        elif isinstance(value, str) and len(value) > max_string_length:
            raise JsonLimitExceeded(f"a string is longer than {max_string_length} characters", _pointer_of(entry))


def _pointer_of(entry: tuple[Any, int, Any, Any]) -> str:
    parts: list[str] = []
    while entry[3] is not None:
        parts.append(str(entry[2]))
        entry = entry[3]
    return _pointer(parts[::-1])


def _check_tokens(body: bytes, max_depth: int) -> None:
    """Find where a document too deep to decode crosses ``max_depth``, by scanning its tokens."""
    path: list[str] = []  # per open container: the current key or index
    kinds: list[bytes] = []
    key = ""
    for match in _TOKEN.finditer(body):
        string, structural = match.group(1), match.group(2)
        if string is not None:
            key = string[1:-1].decode(errors="replace")
        elif structural in (b"[", b"{"):
            if len(kinds) >= max_depth:
                raise JsonLimitExceeded(f"nested deeper than {max_depth} levels", _pointer(path))
            kinds.append(structural)
            path.append("0")
        elif structural in (b"]", b"}") and kinds:
            kinds.pop()
            path.pop()
        elif structural == b":" and kinds:
            path[-1] = key
        elif structural == b"," and kinds and kinds[-1] == b"[":
            path[-1] = str(int(path[-1]) + 1)
    raise JsonLimitExceeded("nested deeper than the api can decode", "")


# No route of these methods reads a body: one sent is never decoded.
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class JsonLimitsMiddleware(ASGIMiddleware):
    """Checks request bodies before a handler decodes them; reading the body enforces the route's size limit (413).

    The body read here is kept in the connection state, so the handler does not read it again.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings) -> None:
        self._max_depth = settings.max_json_depth
        self._max_string_length = settings.max_json_string_length

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Refuse a body past the limits, whatever its content type; pass everything else on untouched.

        Every route that takes a body decodes it as JSON whatever its ``Content-Type`` says (text/plain, none, a
        form type): the limits must not depend on the header. A body that is not JSON passes (the route refuses
        it as malformed), so checking them all costs little: see ``check_json_limits``'s fast path.
        """
        request: Request[Any, Any, Any] = Request(scope, receive)
        if request.method not in BODILESS_METHODS:
            try:
                body = await request.body()
            except RequestEntityTooLarge as err:
                limit = request.route_handler.resolve_request_max_body_size()
                raise TooLarge(f"the request body is larger than {limit} bytes") from err
            check_json_limits(body, max_depth=self._max_depth, max_string_length=self._max_string_length)
        await next_app(scope, receive, send)
