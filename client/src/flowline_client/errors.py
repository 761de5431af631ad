"""The one error the client raises: an RFC 9457 problem from the api, or a failure to reach it."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec


class FlowlineApiError(Exception):
    """The api refused a request (its problem+json fields), or could not be reached (``status`` 0)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        instance: str | None = None,
        pointer: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.instance = instance
        self.pointer = pointer
        self.extra = extra or {}

    def __str__(self) -> str:
        prefix = f"{self.status} {self.title}" if self.status else self.title
        return f"{prefix}: {self.detail}" if self.detail and self.detail != self.title else prefix

    @classmethod
    def from_response(cls, response: httpx.Response) -> FlowlineApiError:
        """The problem in ``response``; a body that is not a problem (a proxy's page) becomes its detail."""
        try:
            body = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, response.reason_phrase, response.text.strip()[:500])
        known = {"status", "title", "detail", "type", "instance", "pointer"}
        return cls(
            response.status_code,
            str(body.get("title") or response.reason_phrase),
            str(body.get("detail") or ""),
            type=str(body.get("type") or "about:blank"),
            instance=body.get("instance"),
            pointer=body.get("pointer"),
            extra={key: value for key, value in body.items() if key not in known},
        )

    @classmethod
    def unexpected(cls, response: httpx.Response, err: msgspec.DecodeError) -> FlowlineApiError:
        """A success answer this client cannot read (a proxy's page, or an api of another version)."""
        request = response.request
        detail = f"the answer to {request.method} {request.url.path} is not what this client reads: {err}"
        return cls(response.status_code, "Unexpected response", detail)

    @classmethod
    def unreachable(cls, url: str, err: httpx.TransportError) -> FlowlineApiError:
        """The api at ``url`` did not answer."""
        return cls(0, "Unreachable", f"cannot reach the api at {url}: {err}")
