"""Caches bounded by the bytes they hold as well as by their entries (cachetools' LRU cache underneath).

A cache bounded by its count alone holds as much memory as its largest entries allow: 4,096 compiled templates
of a megabyte each are 4 GiB. These caches measure each entry as it is kept (the size of what it was made
from, such as a template's text or a workflow's JSON) and drop the least recently used past either bound.
They are not thread-safe: Flowline's services use them from their event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
P = ParamSpec("P")
R = TypeVar("R")


class BoundedCache(cachetools.LRUCache[K, V]):
    """At most ``max_entries`` entries of at most ``max_bytes`` in all, as ``size_of`` measures each value.

    A value larger than ``max_bytes`` on its own is not kept (and evicts nothing): it is made again when asked.
    """

    def __init__(self, *, max_entries: int, max_bytes: int, size_of: Callable[[V], int]) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=size_of)
        self.max_entries = max_entries

    def __setitem__(self, key: K, value: V) -> None:
        try:
            super().__setitem__(key, value)
        except ValueError:  # cachetools: "value too large"
            return
        while len(self) > self.max_entries:
            self.popitem()


def memoize(
    *, max_entries: int, max_bytes: int, size_of: Callable[..., int]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like ``functools.lru_cache``, bounded also by the bytes of the arguments results were made from.

    ``size_of`` takes the function's arguments (of a function of one text: ``len``). Exceptions are not kept.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        cache: BoundedCache[Any, tuple[int, R]] = BoundedCache(
            max_entries=max_entries, max_bytes=max_bytes, size_of=lambda entry: entry[0]
        )

        @functools.wraps(function)
        def memoized(*args: P.args, **kwargs: P.kwargs) -> R:
            key = (args, tuple(sorted(kwargs.items())))
            entry = cache.get(key)
            if entry is None:
                entry = (size_of(*args, **kwargs), function(*args, **kwargs))
                cache[key] = entry
            return entry[1]

        return memoized

    return decorate
