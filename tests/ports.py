"""Ports for the suite's servers, each xdist worker's from a block of its own below the kernel's ephemeral range.

A port picked by binding port 0 is free only until the socket closes: before the server meant for it binds it,
another worker's server picked the same way (or any socket bound to port 0) can take it, and the test then talks
to the wrong server (an executor's health endpoint answering for the api). Ports from a worker's own block,
outside the range the kernel hands out, are chosen by no one else.
"""

from __future__ import annotations

import itertools
import os
from typing import Final

from flowline_devstack.ports import port_is_free

FIRST_PORT: Final = 20_000  # Linux hands out 32768 to 60999 for port 0
BLOCK: Final = 1_000  # ports per xdist worker


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


_first = FIRST_PORT + _worker_index() * BLOCK
_candidates = itertools.cycle(range(_first, _first + BLOCK))


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, from this worker's block (the next free one, round and round)."""
    for port in itertools.islice(_candidates, BLOCK):
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {_first}-{_first + BLOCK - 1}")
