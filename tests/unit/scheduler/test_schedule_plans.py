"""What a pass over a due schedule decides: catch-up within the window, and each overlap policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flowline_scheduler.schedules import MAX_RUNS_PER_PASS, due_times, plan

NOW = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
ANCHOR = datetime(2026, 5, 1, tzinfo=UTC)


def _schedule(**fields: Any) -> dict[str, Any]:
    return {
        "cron": None,
        "interval_ms": 60_000,
        "timezone": "UTC",
        "start_at": None,
        "end_at": None,
        "created_at": ANCHOR,
        "catchup_window_ms": 60_000,
        "overlap": "skip",
        "buffered_for": None,
        "next_run_at": NOW - timedelta(minutes=10, seconds=30),
        **fields,
    }


def _minutes_ago(*minutes: float) -> list[datetime]:
    return [NOW - timedelta(seconds=30) - timedelta(minutes=m) for m in minutes]


def test_only_the_times_within_the_catch_up_window_are_due() -> None:
    due, missed, following = due_times(_schedule(catchup_window_ms=150_000), NOW)

    assert due == _minutes_ago(2, 1, 0)  # 2m30s, 1m30s and 30s ago
    assert missed == 8
    assert following == NOW + timedelta(seconds=30)


def test_a_window_of_zero_still_starts_a_run_that_is_only_a_little_late() -> None:
    due, missed, _ = due_times(_schedule(catchup_window_ms=0, next_run_at=NOW - timedelta(seconds=2)), NOW)
    assert (due, missed) == ([], 0)  # 12:00:28 is no fire time: nothing due
    schedule = _schedule(catchup_window_ms=0, next_run_at=NOW - timedelta(minutes=3), interval_ms=1000)
    due, missed, following = due_times(schedule, NOW)
    assert due == [NOW - timedelta(seconds=s) for s in range(5, -1, -1)]
    assert missed == 175
    assert following == NOW + timedelta(seconds=1)


def test_a_pass_starts_at_most_so_many_runs_and_goes_on_from_there() -> None:
    schedule = _schedule(interval_ms=100, catchup_window_ms=3_600_000, next_run_at=NOW - timedelta(minutes=1))
    due, _, following = due_times(schedule, NOW)
    assert len(due) == MAX_RUNS_PER_PASS
    assert following == due[-1] + timedelta(milliseconds=100)


DUE = _minutes_ago(2, 1, 0)


@pytest.mark.parametrize(
    ("overlap", "busy", "start", "skipped", "buffered_for"),
    [
        ("allow", True, DUE, 0, None),
        ("skip", False, DUE[:1], 2, None),
        ("skip", True, [], 3, None),
        ("buffer_one", False, DUE[:1], 1, DUE[1]),
        ("buffer_one", True, [], 2, DUE[0]),
        ("cancel_previous", True, DUE[-1:], 2, None),
    ],
)
def test_overlap_policies(
    overlap: str, busy: bool, start: list[datetime], skipped: int, buffered_for: datetime | None
) -> None:
    decided = plan(_schedule(overlap=overlap), DUE, busy)

    assert (decided.start, decided.skipped, decided.buffered_for) == (start, skipped, buffered_for)
    assert decided.cancel_active == (overlap == "cancel_previous")


def test_a_waiting_run_goes_first_once_the_running_one_finished() -> None:
    waiting = NOW - timedelta(minutes=5)

    decided = plan(_schedule(overlap="buffer_one", buffered_for=waiting), DUE, busy=False)

    assert decided.start == [waiting] and decided.buffered_for == DUE[0] and decided.skipped == 2
