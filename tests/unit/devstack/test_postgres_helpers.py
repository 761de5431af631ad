from __future__ import annotations

import stat
from pathlib import Path

import pytest
from flowline_devstack.errors import PostgresError
from flowline_devstack.postgres import (
    can_traverse,
    candidate_bindirs,
    debian_bindirs,
    server_major_version,
    server_options,
)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", "15"),
        ("postgres (PostgreSQL) 17.2\n", "17"),
        ("postgres (PostgreSQL) 9.6.24\n", "9.6"),
    ],
)
def test_the_major_version_is_read_from_postgres_version(output: str, major: str) -> None:
    assert server_major_version(output) == major


def test_an_unreadable_version_is_an_error() -> None:
    with pytest.raises(PostgresError):
        server_major_version("command not found")


def _bindir(root: Path, version: str) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    (bindir / "initdb").touch()
    return bindir


def test_debian_bindirs_come_newest_first(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "13"):
        _bindir(tmp_path, version)
    (tmp_path / "14" / "bin").mkdir(parents=True)  # client only: no initdb
    assert [b.parent.name for b in debian_bindirs(str(tmp_path))] == ["16", "15", "13", "9.6"]


def test_pg_config_comes_first_only_when_it_has_a_server(tmp_path: Path) -> None:
    v15, v16 = _bindir(tmp_path, "15"), _bindir(tmp_path, "16")
    client_only = tmp_path / "17" / "bin"
    client_only.mkdir(parents=True)
    assert candidate_bindirs(v15, [v16, v15], None) == [v15, v16]
    assert candidate_bindirs(client_only, [v16, v15], None) == [v16, v15]
    assert candidate_bindirs(None, [], v15) == [v15]
    assert candidate_bindirs(None, [], None) == []


def test_traversal_follows_owner_then_group_then_others() -> None:
    assert can_traverse(0o700, owner=5, group=5, uid=5, gids=[5])
    assert not can_traverse(0o700, owner=0, group=0, uid=5, gids=[5])
    assert can_traverse(0o710, owner=0, group=5, uid=7, gids=[5])
    assert not can_traverse(0o701, owner=0, group=5, uid=7, gids=[5])  # group bits win over others
    assert can_traverse(0o701, owner=0, group=0, uid=7, gids=[7])
    assert can_traverse(stat.S_IFDIR | 0o700, owner=9, group=9, uid=0, gids=[0])


def test_server_options_listen_on_loopback_with_room_for_connections(tmp_path: Path) -> None:
    options = server_options(5433, tmp_path, durable=True)
    assert options[:2] == ["-p", "5433"]
    assert "listen_addresses=127.0.0.1" in options
    assert f"unix_socket_directories={tmp_path}" in options
    assert "max_connections=200" in options
    assert "fsync=off" not in options


def test_a_durable_cluster_compresses_its_wal_and_spaces_its_checkpoints() -> None:
    options = server_options(5433, None, durable=True)
    assert {"wal_compression=lz4", "max_wal_size=4GB"} <= set(options)
    assert not any(option.startswith(("fsync=", "synchronous_commit=", "full_page_writes=")) for option in options)


def test_only_a_test_cluster_turns_fsync_off() -> None:
    options = server_options(5433, None, durable=False)
    assert {"fsync=off", "synchronous_commit=off", "full_page_writes=off"} <= set(options)
    assert not any(option.startswith(("wal_compression=", "max_wal_size=")) for option in options)
    assert "unix_socket_directories=" in options
