"""The api's cache of verified API keys: only the very key, only for its time, dropped when revoked."""

from __future__ import annotations

import uuid

from flowline.domain.credentials import Principal, key_subject
from flowline_api.auth import ApiKeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _key(secret: str = "s3cr3t") -> tuple[uuid.UUID, str, Principal]:
    key_id = uuid.uuid4()
    return key_id, f"fl_{key_id.hex}_{secret}", Principal(key_subject(key_id), "dev", "operator")


def test_a_verified_key_is_known_until_its_time_is_up() -> None:
    clock = Clock()
    cache = ApiKeyCache(5.0, clock=clock)
    _, key, principal = _key()
    assert cache.get(key) is None
    cache.put(key, principal, forgotten=cache.forgotten)
    assert cache.get(key) == principal
    clock.now += 4.9
    assert cache.get(key) == principal
    clock.now += 0.1
    assert cache.get(key) is None  # expired: the next request looks it up again


def test_only_the_very_key_matches_not_its_id_with_another_secret() -> None:
    cache = ApiKeyCache(5.0)
    key_id, key, principal = _key()
    cache.put(key, principal, forgotten=cache.forgotten)
    assert cache.get(f"fl_{key_id.hex}_guessed") is None
    assert cache.get("not-a-key") is None


def test_a_forgotten_key_is_gone_and_a_lookup_that_began_before_is_not_kept() -> None:
    cache = ApiKeyCache(5.0)
    key_id, key, principal = _key()
    cache.put(key, principal, forgotten=cache.forgotten)
    began = cache.forgotten  # a lookup of the key starts (it may read the row before the revocation commits)
    cache.forget(key_id)
    assert cache.get(key) is None
    cache.put(key, principal, forgotten=began)
    assert cache.get(key) is None
    cache.put(key, principal, forgotten=cache.forgotten)  # a lookup begun after the revocation may be kept
    assert cache.get(key) == principal


def test_the_cache_stays_within_its_size_dropping_expired_then_oldest_entries() -> None:
    clock = Clock()
    cache = ApiKeyCache(5.0, max_entries=3, clock=clock)
    keys = [_key() for _ in range(5)]
    for _, key, principal in keys[:2]:
        cache.put(key, principal, forgotten=0)
    clock.now += 10  # the first two expire
    for _, key, principal in keys[2:]:
        cache.put(key, principal, forgotten=0)
    assert [cache.get(key) for _, key, _ in keys] == [None, None, *(principal for _, _, principal in keys[2:])]
    extra = _key()
    cache.put(extra[1], extra[2], forgotten=0)
    assert cache.get(keys[2][1]) is None  # the oldest live entry made room
    assert cache.get(extra[1]) == extra[2]


def test_a_time_of_zero_keeps_nothing() -> None:
    cache = ApiKeyCache(0)
    _, key, principal = _key()
    cache.put(key, principal, forgotten=0)
    assert cache.get(key) is None
