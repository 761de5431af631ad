"""The outbound policy: which addresses agent and http steps may reach."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest
from flowline.runtime.outbound import LOOPBACK_NETWORKS, OutboundPolicy, OutboundRefused, address_kind, guarded_client
from flowline.settings import ConfigurationError, parse_networks

REFUSED = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # cloud metadata services
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("192.0.2.1", "private"),  # documentation ranges count as private in the standard library
    ("2001:db8::1", "private"),
    ("fec0::1", "site-local"),
    ("100.64.0.1", "non-public"),  # shared address space (carrier-grade NAT)
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 host it reaches
    ("::ffff:10.0.0.5", "private"),
    ("2002:a00:5::1", "private"),  # 6to4 of 10.0.0.5
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_every_non_public_range_is_refused_by_default(address: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)

    assert address_kind(ip) == kind
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check([ip])
    assert refused.value.detail.startswith(f"refused: {ip} is ")
    assert refused.value.detail.endswith("; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is None
    OutboundPolicy().check([ipaddress.ip_address(address)])


def test_the_message_names_the_address_and_its_kind() -> None:
    assert OutboundPolicy().refusal(ipaddress.ip_address("10.0.0.5")) == (
        "refused: 10.0.0.5 is a private address; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"
    )
    assert OutboundPolicy().refusal(ipaddress.ip_address("127.0.0.1"), "db.internal") == (
        "refused: db.internal resolves to 127.0.0.1, a loopback address; "
        "allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"
    )


def test_allowed_networks_let_their_addresses_through_and_nothing_else() -> None:
    policy = OutboundPolicy.from_setting("10.1.0.0/16, fd00::/8")

    policy.check([ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("fd00::5")])
    with pytest.raises(OutboundRefused):
        policy.check([ipaddress.ip_address("10.2.0.1")])
    with pytest.raises(OutboundRefused):
        policy.check([ipaddress.ip_address("127.0.0.1")])


def test_the_local_stack_allows_loopback_only() -> None:
    policy = OutboundPolicy.from_setting(LOOPBACK_NETWORKS)

    policy.check(
        [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"), ipaddress.ip_address("::ffff:127.0.0.2")]
    )
    with pytest.raises(OutboundRefused):
        policy.check([ipaddress.ip_address("192.168.0.1")])


def test_a_name_passes_only_if_every_address_it_resolves_to_does() -> None:
    with pytest.raises(OutboundRefused, match=r"10\.0\.0\.5"):
        OutboundPolicy().check([ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.5")], "mixed.example")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::1]", "localhost", "LOCALHOST.", "api.localhost", "10.0.0.5", "[fe80::1%eth0]"]
)
def test_literal_hosts_are_checked_without_dns(host: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy().check_literal_host(host)


@pytest.mark.parametrize("host", ["example.com", "internal.corp", "8.8.8.8"])
def test_names_and_public_literals_pass_the_literal_check(host: str) -> None:
    OutboundPolicy().check_literal_host(host)


def test_a_bad_setting_names_the_variable_and_the_entry() -> None:
    with pytest.raises(ConfigurationError, match="FLOWLINE_OUTBOUND_ALLOWED_NETWORKS: 'nope'"):
        OutboundPolicy.from_setting("127.0.0.1, nope")
    assert parse_networks(" , ", "X") == ()
    assert parse_networks("10.0.0.1/8", "X") == (ipaddress.ip_network("10.0.0.0/8"),)


async def test_the_guarded_client_connects_only_through_the_policys_check() -> None:
    # guarded_client replaces httpx's private connection pool: if an upgrade of httpx stops sending through it,
    # the request reaches the listener (or fails otherwise) instead of being refused.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        async with guarded_client(OutboundPolicy(), limits=httpx.Limits(max_connections=1), timeout=1.0) as client:
            with pytest.raises(OutboundRefused, match=r"^refused: 127\.0\.0\.1 is a loopback address"):
                await client.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
