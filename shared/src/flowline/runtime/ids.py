"""Time-ordered UUIDv7 identifiers (RFC 9562) for rows and messages."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RANDOM_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) together
# Random bytes are drawn from the OS this many at a time: an execution makes some 35 ids, and each os.urandom
# is a system call (getrandom), which cost the executor a twentieth of its CPU when drawn one id at a time.
_RANDOM_POOL_BYTES = 4096
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random bits) of the last id made in this process
_pool = b""  # random bytes from the OS not used yet, from ``_pool_offset`` on
_pool_offset = 0


def _random_int(size: int) -> int:
    """An integer of ``size`` random bytes from the OS, taken from the pool (call with ``_lock`` held)."""
    global _pool, _pool_offset
    if _pool_offset + size > len(_pool):
        _pool, _pool_offset = os.urandom(_RANDOM_POOL_BYTES), 0
    start, _pool_offset = _pool_offset, _pool_offset + size
    return int.from_bytes(_pool[start:_pool_offset], "big")


def _forget_pool() -> None:
    """A forked child must not reuse its parent's pool, or both would make the same ids."""
    global _pool, _pool_offset
    _pool, _pool_offset = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48 bits of Unix milliseconds, then 74 random bits, so ids sort by creation time.

    Ids made by this process in one millisecond stay in creation order too (RFC 9562 §6.2, method 2):
    the random bits of the previous id grow by a random step instead of being drawn afresh.
    """
    global _last
    milliseconds = time.time_ns() // 1_000_000
    with _lock:
        last_milliseconds, last_random = _last
        if milliseconds > last_milliseconds:
            random_bits = _random_int(10) >> (80 - _RANDOM_BITS)
        else:  # the same millisecond, or the clock stepped back: keep counting from the last id
            milliseconds = last_milliseconds
            random_bits = last_random + 1 + (_random_int(4) >> 8)
            if random_bits >> _RANDOM_BITS:  # the millisecond is used up: borrow the next one
                milliseconds, random_bits = milliseconds + 1, _random_int(8) >> 16
        _last = (milliseconds, random_bits)
    rand_a, rand_b = random_bits >> 62, random_bits & (2**62 - 1)
    value = (milliseconds & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b
    return uuid.UUID(int=value)
