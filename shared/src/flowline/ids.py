"""Time-ordered UUIDv7 identifiers (RFC 9562) for rows and messages."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RANDOM_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) together
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random bits) of the last id made in this process


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
            random_bits = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS)
        else:  # the same millisecond, or the clock stepped back: keep counting from the last id
            milliseconds = last_milliseconds
            random_bits = last_random + 1 + (int.from_bytes(os.urandom(4), "big") >> 8)
            if random_bits >> _RANDOM_BITS:  # the millisecond is used up: borrow the next one
                milliseconds, random_bits = milliseconds + 1, int.from_bytes(os.urandom(8), "big") >> 16
        _last = (milliseconds, random_bits)
    rand_a, rand_b = random_bits >> 62, random_bits & (2**62 - 1)
    value = (milliseconds & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b
    return uuid.UUID(int=value)
