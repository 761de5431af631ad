"""Which addresses agent and http steps (and agent health checks) may connect to, and the client enforcing it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence

import httpcore
import httpx

from flowline.errors import FlowlineError
from flowline.settings import env_name, parse_networks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOWED_NETWORKS_SETTING = env_name("outbound_allowed_networks")
# What the local stack and the test suite allow: their agents and test servers listen on this machine.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1"
# Names that mean this machine without asking DNS (RFC 6761): checked like the loopback address they are.
LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain"})


class OutboundRefused(FlowlineError):
    """A request would reach an address the outbound policy refuses; retrying cannot help."""

    status_code = 422
    title = "Validation failed"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``) or 6to4 address, else ``address``.

    Such an address reaches the IPv4 host, so it is judged as that host.
    """
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour or address
    return address


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (``"private"``, ``"loopback"``…), or None when it is."""
    address = _embedded_ipv4(address)
    # Most specific first, so that the message names what the operator will recognise.
    for kind, refused in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        # What is left and still not globally routable: shared address space (100.64.0.0/10) and the like.
        ("non-public", not address.is_global),
    ):
        if refused:
            return kind
    return None


class OutboundPolicy:
    """Refuses non-public addresses, except those in explicitly allowed networks."""

    def __init__(self, allowed_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()) -> None:
        self.allowed_networks = tuple(allowed_networks)

    @classmethod
    def from_setting(cls, value: str) -> OutboundPolicy:
        """The policy of ``FLOWLINE_OUTBOUND_ALLOWED_NETWORKS``.

        Raises:
            ConfigurationError: the setting holds something that is not an address or CIDR.
        """
        return cls(parse_networks(value, ALLOWED_NETWORKS_SETTING))

    def refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """The message refusing ``address`` (reached through the name ``host``, if any), or None when allowed."""
        kind = address_kind(address)
        candidates = {address, _embedded_ipv4(address)}
        if kind is None or any(ip in network for ip in candidates for network in self.allowed_networks):
            return None
        article = "an" if kind[0] in "aeiou" else "a"
        reached = (
            f"{host} resolves to {address}, {article} {kind} address"
            if host
            else f"{address} is {article} {kind} address"
        )
        return f"refused: {reached}; allow it with {ALLOWED_NETWORKS_SETTING}"

    def check(self, addresses: Iterable[IPAddress], host: str | None = None) -> None:
        """Refuse when any of ``addresses`` is refused: a name is trusted only if everything it resolves to is.

        Raises:
            OutboundRefused: naming the first refused address.
        """
        for address in addresses:
            if (message := self.refusal(address, host)) is not None:
                raise OutboundRefused(message)

    def check_literal_host(self, host: str) -> None:
        """Check a URL's host without resolving it: an IP literal or ``localhost``; other names pass.

        For where a request must not wait on DNS (the api checking an agent URL); the name is checked
        again, resolved, when a connection is made.

        Raises:
            OutboundRefused: the host is a refused address.
        """
        name = host.strip("[]").rstrip(".").lower()
        if name in LOCALHOST_NAMES or name.endswith(".localhost"):
            self.check([ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")], host)
            return
        try:
            address = ipaddress.ip_address(name.partition("%")[0])  # an IPv6 zone id does not change the address
        except ValueError:
            return
        self.check([address])


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonical, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, then connects to a checked address.

    Connecting to the very address that was checked (rather than checking a name and letting the connect
    resolve it again) leaves no gap for DNS rebinding. httpcore still uses the URL's host name for the
    ``Host`` header, TLS SNI and certificate checks, so only the TCP connect sees the IP.
    """

    def __init__(self, policy: OutboundPolicy, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A connection to ``host`` after every address it resolves to passed the policy."""
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError as err:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from err
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from err
        self._policy.check(addresses, None if _is_ip(host) else host)
        failure: Exception | None = None
        for address in addresses:  # as a browser would: the next address when one does not answer
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                failure = err
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a Unix socket is this machine."""
        raise OutboundRefused(f"refused: the Unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self._backend.sleep(seconds)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def guarded_client(
    policy: OutboundPolicy, *, limits: httpx.Limits, timeout: httpx.Timeout | float = 5.0
) -> httpx.AsyncClient:
    """A pooled client that connects only where ``policy`` allows and never follows redirects.

    A redirect is an answer like any other (a step's expected status, or a failure): following one would
    be a second request the step definition never named. Proxies from the environment are not used
    (passing a transport turns them off), since a proxy would hide the real destination from the check.
    """
    transport = _transport_through(GuardedNetworkBackend(policy), limits)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)


def _transport_through(backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections ``backend`` makes.

    httpx (0.28) has no parameter for httpcore's network backend: this replaces the transport's private
    connection pool by the same one built with ``backend``. tests/unit/shared/test_outbound.py fails if an
    upgrade of httpx stops sending through it.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport
