"""The PostgreSQL store: Litestar's Store interface over one table, namespaces apart, expired entries absent."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from flowline.db.store import PostgresStore

EXPIRED = timedelta(seconds=-1)  # set in the past: expired already, without waiting for a clock


async def test_a_value_is_read_back_until_deleted(pool: asyncpg.Pool) -> None:
    store = PostgresStore(pool, namespace="test")

    await store.set("a", "one")
    await store.set("b", b"two", expires_in=60)

    assert await store.get("a") == b"one"
    assert await store.get("b") == b"two"
    assert await store.exists("a")
    assert await store.expires_in("a") is None
    assert 0 < (await store.expires_in("b") or 0) <= 60
    await store.delete("a")
    assert await store.get("a") is None
    assert not await store.exists("a")
    await store.delete("a")  # an absent key is no error


async def test_set_replaces_the_value_and_its_expiry(pool: asyncpg.Pool) -> None:
    store = PostgresStore(pool, namespace="test")

    await store.set("a", b"one", expires_in=EXPIRED)
    await store.set("a", b"two")

    assert await store.get("a") == b"two"
    assert await store.expires_in("a") is None


async def test_an_expired_entry_is_absent_and_delete_expired_removes_it(pool: asyncpg.Pool) -> None:
    store = PostgresStore(pool, namespace="test")

    await store.set("gone", b"x", expires_in=EXPIRED)
    await store.set("kept", b"y", expires_in=60)

    assert await store.get("gone") is None
    assert await store.get("gone", renew_for=60) is None
    assert not await store.exists("gone")
    assert await store.expires_in("gone") is None
    await store.delete_expired()
    assert await pool.fetchval("SELECT count(*) FROM store_entries WHERE namespace = 'test'") == 1


async def test_renew_for_restarts_the_clock_of_an_expiring_entry_only(pool: asyncpg.Pool) -> None:
    store = PostgresStore(pool, namespace="test")
    await store.set("expiring", b"x", expires_in=5)
    await store.set("forever", b"y")

    assert await store.get("expiring", renew_for=timedelta(hours=1)) == b"x"
    assert await store.get("forever", renew_for=3600) == b"y"

    assert (await store.expires_in("expiring") or 0) > 60
    assert await store.expires_in("forever") is None


async def test_namespaces_keep_their_keys_apart(pool: asyncpg.Pool) -> None:
    first, second = PostgresStore(pool, namespace="first"), PostgresStore(pool, namespace="second")
    await first.set("key", b"1")
    await second.set("key", b"2")

    assert await first.get("key") == b"1"
    await first.delete_all()

    assert await first.get("key") is None
    assert await second.get("key") == b"2"
