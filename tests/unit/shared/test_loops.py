"""How long a background loop waits: its interval, a fallback (the wake-ups' while heard), its next due work."""

from __future__ import annotations

import pytest
from flowline.runtime import loops
from flowline.runtime.loops import LoopService
from flowline.runtime.wakeups import Wakeups


class Heard(Wakeups):
    """Wake-ups whose listening is set by the test."""

    def __init__(self, listening: bool) -> None:
        super().__init__("postgresql://unused", fallback_seconds=60.0)
        self.heard = listening

    @property
    def listening(self) -> bool:
        return self.heard


class Idle(LoopService):
    async def run_once(self) -> None:
        """Nothing to do."""


def test_a_loop_without_wake_ups_waits_its_interval() -> None:
    assert Idle("idle", 0.5).wait_seconds() == 0.5


def test_a_loop_its_own_process_wakes_waits_for_its_fallback() -> None:
    assert Idle("idle", 0.5, fallback_seconds=10.0).wait_seconds() == 10.0


@pytest.mark.parametrize(("listening", "waits"), [(True, 60.0), (False, 0.5)])
def test_a_woken_loop_waits_for_the_fallback_only_while_it_is_heard(listening: bool, waits: float) -> None:
    wakeups = Heard(listening)
    assert Idle("idle", 0.5, wakeups=wakeups, channels=["work"]).wait_seconds() == waits


def test_work_due_sooner_shortens_the_wait_and_the_earliest_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops.time, "monotonic", lambda: 1_000.0)  # a clock that stands still: no time passes
    loop = Idle("idle", 0.5, wakeups=Heard(True))
    loop.due_in(30.0)
    loop.due_in(20.0)
    loop.due_in(40.0)
    assert loop.wait_seconds() == 20.0


def test_a_notification_calls_its_channels_subscribers_only() -> None:
    wakeups = Heard(True)
    woken, other = Idle("woken", 0.5, wakeups=wakeups, channels=["work"]), Idle("other", 0.5, wakeups=wakeups)
    wakeups._notified(None, 0, "work", "")
    assert woken._wake.is_set() and not other._wake.is_set()
