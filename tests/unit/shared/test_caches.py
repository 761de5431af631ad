"""Caches bounded by bytes as well as entries: the least recently used go first, and nothing oversized is kept."""

from __future__ import annotations

import uuid

from flowline.domain.starting import WorkflowCache
from flowline.runtime.caches import BoundedCache, memoize


def test_a_cache_drops_its_least_recently_used_entries_past_its_bytes() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(max_entries=100, max_bytes=10, size_of=len)
    cache["a"] = b"aaaa"
    cache["b"] = b"bbbb"
    assert cache["a"] == b"aaaa"  # now the most recently used
    cache["c"] = b"cccc"  # 12 bytes in all: "b" goes
    assert set(cache) == {"a", "c"} and cache.currsize == 8


def test_a_cache_drops_entries_past_its_count_however_small() -> None:
    cache: BoundedCache[int, bytes] = BoundedCache(max_entries=3, max_bytes=1_000, size_of=len)
    for key in range(5):
        cache[key] = b"x"
    assert set(cache) == {2, 3, 4}


def test_a_value_larger_than_the_whole_cache_is_not_kept_and_evicts_nothing() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(max_entries=10, max_bytes=10, size_of=len)
    cache["small"] = b"x"
    cache["huge"] = b"y" * 11
    assert set(cache) == {"small"}


def test_memoize_computes_once_per_arguments_within_its_bounds() -> None:
    calls: list[str] = []

    @memoize(max_entries=10, max_bytes=8, size_of=len)
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert shout("abc") == "ABC" and shout("abc") == "ABC"
    assert calls == ["abc"]
    assert shout("defgh") == "DEFGH"  # 8 bytes of arguments: both kept
    assert shout("abc") == "ABC" and calls == ["abc", "defgh"]
    assert shout("ijk") == "IJK"  # 11 bytes: the least recently used ("defgh") goes
    assert shout("defgh") == "DEFGH" and calls == ["abc", "defgh", "ijk", "defgh"]
    assert shout("a too long argument") == "A TOO LONG ARGUMENT"  # never kept
    assert shout("a too long argument") == "A TOO LONG ARGUMENT"
    assert calls[-2:] == ["a too long argument", "a too long argument"]


def test_the_workflow_cache_is_bounded_by_the_json_size_of_the_workflows_it_keeps() -> None:
    tenant = uuid.uuid4()
    workflows = WorkflowCache(max_entries=100, max_bytes=2_500)
    for ref in ("demo.a", "demo.b", "demo.c"):  # each about 1 KB as JSON
        workflows.keep(tenant, ref, None, {"ref": ref, "definition": {"steps": [{"id": "x" * 1_000}]}})
    assert workflows.get(tenant, "demo.a", None) is None
    kept = workflows.get(tenant, "demo.c", None)
    assert kept is not None and kept["ref"] == "demo.c"
    assert workflows.get(tenant, "demo.b", None) is not None
