"""/health/ready tells the kind of each failure, never its text, and probes share one run of the checks."""

from __future__ import annotations

import asyncio

from flowline.runtime.ops import CachedReadiness, check_readiness


async def test_a_failed_check_is_named_by_its_kind_only() -> None:
    async def database() -> None:
        raise OSError('could not connect to db.internal:5432 as user "flowline_admin"')

    async def kafka() -> None:
        pass

    ok, results = await check_readiness({"database": database, "kafka": kafka})

    assert not ok
    assert results == {"database": "down: OSError", "kafka": "ok"}


async def test_probes_asking_together_or_soon_after_share_one_run_of_the_checks() -> None:
    runs = 0

    async def database() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)

    readiness = CachedReadiness({"database": database}, seconds=600)
    outcomes = await asyncio.gather(*(readiness() for _ in range(20)))
    outcomes.append(await readiness())

    assert runs == 1
    assert all(outcome == (True, {"database": "ok"}) for outcome in outcomes)
    assert (await CachedReadiness({"database": database}, seconds=0)()) == (True, {"database": "ok"})
    assert runs == 2
