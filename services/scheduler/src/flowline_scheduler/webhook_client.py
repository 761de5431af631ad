"""The HTTP client of webhook deliveries: aiohttp, with the outbound address policy checked on every connection.

aiohttp rather than httpx here (docs/performance.md §8): httpx's connection pool does work for every request in
flight on every request, so a delivery's CPU grew with the deliveries in flight, and the delivery loop keeps
dozens in flight by design. aiohttp's pool hands out a keep-alive connection per origin without looking at the
others, and parses answers in C.

The policy is checked as ``flowline.runtime.outbound.guarded_client`` checks it: a name is resolved by this
client's resolver, every address it resolves to is checked, and aiohttp connects to those very addresses (no
gap for DNS rebinding; the name still goes into ``Host`` and TLS); an IP literal, which aiohttp connects to
without asking the resolver, is checked before every request. No redirects are followed and no proxy from the
environment is used.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from flowline.runtime.outbound import OutboundPolicy, OutboundRefused, resolve
from yarl import URL

# How much of an answer is read: its start goes into lastError; a receiver has nothing else to tell.
MAX_ANSWER_BYTES = 64 * 1024
ERROR_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: a status code, or an error, or both (a non-2xx answer)."""

    status_code: int | None
    error: str | None
    kind: str  # the attempts metric's label: success, http_error, timeout, connection_error, refused

    @property
    def delivered(self) -> bool:
        """Whether the receiver took it: any 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


class GuardedResolver(AbstractResolver):
    """Resolves a name and refuses it unless every address it resolves to passes the policy."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses to connect to, in the resolver's order.

        Raises:
            OutboundRefused: ``host`` resolves to an address the policy refuses.
        """
        addresses = await resolve(host, port)
        self._policy.check(addresses, host)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: resolving goes through the event loop's ``getaddrinfo``."""


class WebhookClient:
    """Pooled keep-alive connections for deliveries (at most ``max_connections``), each attempt bounded in time."""

    def __init__(self, policy: OutboundPolicy, *, max_connections: int, timeout: float) -> None:
        self._policy = policy
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    def _open(self) -> aiohttp.ClientSession:
        # Made at the first delivery, inside the running event loop aiohttp binds it to.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, resolver=GuardedResolver(self._policy), use_dns_cache=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._timeout), trust_env=False
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST one attempt within the timeout in all, reading at most ``MAX_ANSWER_BYTES`` of the answer."""
        try:
            async with asyncio.timeout(self._timeout):
                self._policy.check_literal_host(URL(url).raw_host or "")
                async with self._open().post(url, data=body, headers=headers, allow_redirects=False) as response:
                    answer = bytearray()
                    while len(answer) < MAX_ANSWER_BYTES and (
                        chunk := await response.content.read(MAX_ANSWER_BYTES - len(answer))
                    ):
                        answer += chunk
                    status = response.status
        except TimeoutError:
            return Outcome(None, f"POST {url}: no answer within {self._timeout:g} s", "timeout")
        except OutboundRefused as err:
            return Outcome(None, err.detail, "refused")
        except (aiohttp.ClientError, ValueError) as err:  # ValueError: a URL aiohttp cannot use
            error = f"POST {url}: {type(err).__name__}: {err}"
            return Outcome(None, error[: ERROR_EXCERPT_CHARS * 2], "connection_error")
        if 200 <= status < 300:
            return Outcome(status, None, "success")
        excerpt = bytes(answer[:ERROR_EXCERPT_CHARS]).decode(errors="replace")
        return Outcome(status, f"POST {url} answered {status}: {excerpt}", "http_error")

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
