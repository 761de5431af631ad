"""What the idle stack costs: SQL statements per second by statement, and each process's share of a core.

`uv run python -m bench.idle` (`--seconds`, default 30) starts the private stack with PostgreSQL counting
statements (pg_stat_statements), lets it settle with no execution at all, then counts for that long. The
statements are the background loops' (the scheduler's, the outbox relays'); their count does not depend on the
machine, the CPU shares do. `make bench` measures idle CPU for 5 s right after its runs; this is the longer,
quieter look.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import asyncpg

from bench.per_execution import STATEMENTS, STATS_DELAY_SECONDS
from bench.stack import private_stack

SETTLE_SECONDS = 8.0


async def statements(database_url: str) -> Counter[str]:
    """Every statement's calls so far."""
    connection = await asyncpg.connect(database_url)
    try:
        return Counter({row["query"]: row["calls"] for row in await connection.fetch(STATEMENTS)})
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the idle stack is watched")
    args = parser.parse_args()
    with private_stack(statement_stats=True) as stack:
        time.sleep(SETTLE_SECONDS)
        url = stack.env["FLOWLINE_DATABASE_URL"]
        before, cpu_before, started = asyncio.run(statements(url)), stack.cpu_seconds(), time.monotonic()
        time.sleep(args.seconds)
        cpu_after, wall = stack.cpu_seconds(), time.monotonic() - started
        time.sleep(STATS_DELAY_SECONDS)
        grown = asyncio.run(statements(url)) - before
    print(f"SQL statements per idle second: {sum(grown.values()) / args.seconds:.2f}")
    for query, calls in grown.most_common():
        print(f"{calls / args.seconds:8.2f}  {' '.join(query.split())[:110]}")
    shares = {name: (cpu_after[name] - used) * 100 / wall for name, used in cpu_before.items()}
    for name, share in shares.items():
        print(f"{name:<12}{share:6.2f} % of a core")
    print(f"{'all':<12}{sum(shares.values()):6.2f} % of a core")


if __name__ == "__main__":
    main()
