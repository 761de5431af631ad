"""The HTTP plumbing every route of the client uses: the connection, errors as ``FlowlineApiError``, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import httpx
import msgspec

from flowline_client._requests import ParamValue, query
from flowline_client.errors import FlowlineApiError

Response = TypeVar("Response")
Item = TypeVar("Item")


class _Listing(Protocol[Item]):
    """A page of a list: a ``Page``, or an ``ExecutionPage`` (which adds ``totalExact``)."""

    @property
    def items(self) -> list[Item]: ...

    @property
    def next_cursor(self) -> str | None: ...


class Transport:
    """One tenant's routes of the api over one HTTP connection pool (the route groups build on it)."""

    def __init__(
        self,
        api_url: str,
        tenant: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tenant = tenant
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=f"{self.api_url}/api/v1/tenants/{tenant}",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                params=query(params or {}),
                content=None if body is None else msgspec.json.encode(body),
                headers={"content-type": "application/json", **(headers or {})} if body is not None else headers,
            )
        except httpx.TransportError as err:
            raise FlowlineApiError.unreachable(self.api_url, err) from err
        if response.is_error:
            raise FlowlineApiError.from_response(response)
        return response

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[Response],
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        response = await self._send(method, path, params=params, body=body, headers=headers)
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.DecodeError as err:
            raise FlowlineApiError.unexpected(response, err) from err

    async def _pages(self, fetch: Callable[[str | None], Awaitable[_Listing[Item]]]) -> AsyncIterator[Item]:
        """Every item of a list, following ``nextCursor`` until the last page."""
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None or not page.items:
                return
            cursor = page.next_cursor
