from __future__ import annotations

from pathlib import Path

from flowline_devstack.broker import tansu_command
from flowline_devstack.processes import SERVICE_NAMES, connect_host, http_url, prefix_for, read_tail


def test_wildcard_binds_are_reached_on_loopback() -> None:
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("10.1.2.3") == "10.1.2.3"


def test_urls_put_ipv6_hosts_in_brackets() -> None:
    assert http_url("127.0.0.1", 8000, "/health") == "http://127.0.0.1:8000/health"
    assert http_url("::", 8000) == "http://[::1]:8000"


def test_prefixes_are_padded_to_the_longest_name() -> None:
    width = max(map(len, SERVICE_NAMES))
    prefixes = {prefix_for(name, width) for name in SERVICE_NAMES}
    assert {len(prefix) for prefix in prefixes} == {width + 3}
    assert prefix_for("api", width) == "api        | "
    assert prefix_for("api", 3, color="36") == "\033[36mapi\033[0m | "


def test_read_tail_keeps_the_last_lines_after_an_offset(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("old run\n")
    offset = log.stat().st_size
    with log.open("a") as file:
        file.writelines(f"line {n}\n" for n in range(100))
    assert read_tail(log, lines=2, start=offset) == "line 98\nline 99"
    assert read_tail(log, lines=1000, start=offset).splitlines()[0] == "line 0"
    assert read_tail(tmp_path / "missing.log") == ""


def test_tansu_listens_and_advertises_the_same_loopback_address() -> None:
    assert tansu_command("/bin/tansu", 19092) == [
        "/bin/tansu",
        "broker",
        "--listener-url",
        "tcp://127.0.0.1:19092",
        "--advertised-listener-url",
        "tcp://127.0.0.1:19092",
        "--storage-engine",
        "memory://tansu/",
    ]
