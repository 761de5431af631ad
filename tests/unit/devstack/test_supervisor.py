from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from flowline_devstack.errors import ServiceError
from flowline_devstack.state import ProcessRecord
from flowline_devstack.supervisor import RestartPolicy, Restarts, Supervisor

POLICY = RestartPolicy()
NO_SUCH_PID = 5_000_000  # above the largest pid Linux hands out


def _delays(restarts: Restarts, exits_at: list[float]) -> list[float | None]:
    return [restarts.exited(now) for now in exits_at]


def test_the_delay_doubles_from_half_a_second_to_ten() -> None:
    restarts = Restarts(POLICY, healthy_since=0.0)

    # 20 s apart, never 5 exits within 60 s; never healthy in between, so the backoff never resets.
    assert _delays(restarts, [20.0 * n for n in range(1, 8)]) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert restarts.count == 7


def test_sixty_seconds_of_health_start_the_backoff_again() -> None:
    restarts = Restarts(POLICY, healthy_since=0.0)
    assert _delays(restarts, [10.0, 30.0, 50.0]) == [0.5, 1.0, 2.0]

    restarts.healthy(52.0)
    assert restarts.exited(52.0 + 59.0) == 4.0  # not long enough
    restarts.healthy(112.0)
    assert restarts.exited(112.0 + 60.0) == 0.5
    assert restarts.exited(173.0) == 1.0


def test_a_process_that_ran_sixty_seconds_since_the_start_gets_the_first_delay() -> None:
    restarts = Restarts(POLICY, healthy_since=100.0)
    assert restarts.exited(500.0) == 0.5


def test_five_exits_within_sixty_seconds_are_a_crash_loop() -> None:
    restarts = Restarts(POLICY, healthy_since=0.0)

    assert _delays(restarts, [1.0, 2.0, 4.0, 8.0]) == [0.5, 1.0, 2.0, 4.0]
    assert restarts.exited(60.5) is None


def test_five_exits_spread_over_more_than_sixty_seconds_are_not() -> None:
    restarts = Restarts(POLICY, healthy_since=0.0)

    assert None not in _delays(restarts, [1.0, 2.0, 4.0, 8.0, 61.0, 62.0])
    assert restarts.exited(63.0) is None  # 2, 4, 8, 61, 62 and 63 fall within 60 s


@dataclass
class FakeChild:
    name: str = "executor"
    pid: int | None = NO_SUCH_PID
    returncode: int | None = None
    exited: bool = False
    healthy: bool = True
    start_fails: bool = False
    starts: int = 0
    tail: str = "the last words"

    def has_exited(self) -> bool:
        return self.exited

    def restart(self) -> None:
        if self.start_fails:
            raise ServiceError("cannot start")
        self.starts += 1
        self.exited, self.returncode, self.healthy = False, None, False

    def is_healthy(self) -> bool:
        return self.healthy

    def output_tail(self) -> str:
        return self.tail

    def crash(self, code: int | None = -9) -> None:
        self.exited, self.returncode = True, code


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    snapshots: list[list[ProcessRecord]] = field(default_factory=list)

    def __call__(self, records: list[ProcessRecord]) -> None:
        self.snapshots.append(records)

    @property
    def states(self) -> dict[str, str]:
        return {record.name: record.state for record in self.snapshots[-1]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def supervisor(clock: Clock, recorder: Recorder) -> Supervisor:
    return Supervisor(clock=clock, on_change=recorder)


def test_an_exited_process_is_restarted_after_its_delay_while_the_others_run(
    supervisor: Supervisor, clock: Clock, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    executor, api = FakeChild("executor"), FakeChild("api")
    supervisor.add(api)
    supervisor.add(executor)
    assert recorder.states == {"api": "running", "executor": "running"}

    executor.crash(-9)
    with caplog.at_level(logging.INFO, logger="flowline_devstack"):
        assert supervisor.check() is None
    assert "executor exited with code -9; restarting (1)" in caplog.messages
    assert recorder.states == {"api": "running", "executor": "restarting"}

    clock.now += 0.4
    supervisor.check()
    assert executor.starts == 0
    clock.now += 0.1
    supervisor.check()
    assert executor.starts == 1
    assert recorder.states == {"api": "running", "executor": "starting"}

    executor.healthy = True
    supervisor.check()
    assert recorder.states == {"api": "running", "executor": "running"}
    assert api.starts == 0


def test_a_process_that_keeps_exiting_ends_supervision_with_its_output(
    supervisor: Supervisor, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FakeChild("broker")
    supervisor.add(broker)

    with caplog.at_level(logging.INFO, logger="flowline_devstack"):
        for _ in range(4):
            broker.crash(1)
            assert supervisor.check() is None
            clock.now += 10.0
            assert supervisor.check() is None
        broker.crash(1)
        assert supervisor.check() is broker

    assert [message for message in caplog.messages if "restarting" in message][
        -1
    ] == "broker exited with code 1; restarting (4)"
    assert "a crash loop" in caplog.messages[-1]
    assert "the last words" in caplog.messages[-1]


def test_a_failed_restart_counts_as_an_exit(
    supervisor: Supervisor, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    postgres = FakeChild("postgresql")
    supervisor.add(postgres)
    postgres.crash(None)
    postgres.start_fails = True

    with caplog.at_level(logging.INFO, logger="flowline_devstack"):
        supervisor.check()
        clock.now += 0.5
        supervisor.check()

    assert caplog.messages == ["postgresql exited; restarting (1)", "postgresql did not start; restarting (2)"]
    postgres.start_fails = False
    clock.now += 1.0
    supervisor.check()
    assert postgres.starts == 1


def test_run_checks_until_a_crash_loop(supervisor: Supervisor, clock: Clock) -> None:
    executor = FakeChild("executor")
    supervisor.add(executor)

    def sleep(seconds: float) -> None:
        clock.now += seconds
        executor.crash(-9)

    assert supervisor.run(interval=0.5, sleep=sleep) is executor
    assert executor.starts == 4
