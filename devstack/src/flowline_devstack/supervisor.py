"""Keeping the local stack's processes running: restart what exits, with backoff, until one crash-loops."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flowline_devstack.broker import TansuBroker
from flowline_devstack.errors import DevStackError
from flowline_devstack.postgres import PrivatePostgres
from flowline_devstack.processes import ServiceProcess, read_tail
from flowline_devstack.state import ProcessRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """When an exited process starts again, and when its exits count as a crash loop."""

    first_delay: float = 0.5
    max_delay: float = 10.0
    #: Healthy this many seconds, a process that exits is restarted after ``first_delay`` again.
    reset_after: float = 60.0
    #: This many exits of one process within ``loop_window`` seconds is a crash loop.
    loop_exits: int = 5
    loop_window: float = 60.0


class Restarts:
    """The exits and restarts of one process under a policy; times are passed in (monotonic seconds)."""

    def __init__(self, policy: RestartPolicy, healthy_since: float) -> None:
        """Start counting for a process that is healthy since ``healthy_since``."""
        self.policy = policy
        self.count = 0
        self._exits: collections.deque[float] = collections.deque()
        self._backoffs = 0  # exits since the process was last healthy for reset_after seconds
        self._healthy_since: float | None = healthy_since

    def healthy(self, now: float) -> None:
        """The restarted process answers its health check since ``now``."""
        self._healthy_since = now

    def exited(self, now: float) -> float | None:
        """Record an exit at ``now``.

        Returns:
            The seconds to wait before starting the process again, or ``None`` when
            this exit completes a crash loop and the process must not be restarted.
        """
        self._exits.append(now)
        while self._exits[0] <= now - self.policy.loop_window:
            self._exits.popleft()
        if len(self._exits) >= self.policy.loop_exits:
            return None
        if self._healthy_since is not None and now - self._healthy_since >= self.policy.reset_after:
            self._backoffs = 0
        self._healthy_since = None
        delay = min(self.policy.first_delay * 2.0**self._backoffs, self.policy.max_delay)
        self._backoffs += 1
        self.count += 1
        return delay


class Child(Protocol):
    """A process of the stack, as the supervisor sees it."""

    @property
    def name(self) -> str:
        """Its short name in messages and ``flowline-dev ps``."""
        ...

    @property
    def pid(self) -> int | None:
        """Its process id while it runs."""
        ...

    def has_exited(self) -> bool:
        """Whether it has stopped running."""
        ...

    @property
    def returncode(self) -> int | None:
        """Its exit code once it exited, when known (negative for a signal)."""
        ...

    def restart(self) -> None:
        """Start it again after it exited (a new process).

        Raises:
            DevStackError: it could not be started.
        """
        ...

    def is_healthy(self) -> bool:
        """Whether it serves again after a restart."""
        ...

    def output_tail(self) -> str:
        """The end of its output, for a crash loop's message."""
        ...


class ServiceChild:
    """A service process; healthy once ``GET /health`` answers 200."""

    def __init__(self, service: ServiceProcess) -> None:
        """Supervise ``service``, already started."""
        self.service = service

    @property
    def name(self) -> str:
        """The service's name."""
        return self.service.name

    @property
    def pid(self) -> int | None:
        """The service's process id."""
        return self.service.pid

    @property
    def returncode(self) -> int | None:
        """The service's exit code."""
        return self.service.returncode

    def has_exited(self) -> bool:
        """Whether the service's process has exited."""
        return self.service.returncode is not None

    def restart(self) -> None:
        """Collect the exited process and start a new one, without waiting for its health."""
        self.service.stop()
        self.service.start()

    def is_healthy(self) -> bool:
        """Whether ``GET /health`` answers 200."""
        return self.service.is_healthy()

    def output_tail(self) -> str:
        """The last lines of the service's output."""
        return self.service.output_tail()


class BrokerChild:
    """The Tansu broker; a restarted one is empty, and healthy once it listens."""

    name = "broker"

    def __init__(self, broker: TansuBroker) -> None:
        """Supervise ``broker``, already started."""
        self.broker = broker

    @property
    def pid(self) -> int | None:
        """The broker's process id."""
        return self.broker.pid

    @property
    def returncode(self) -> int | None:
        """The broker's exit code."""
        return self.broker.returncode

    def has_exited(self) -> bool:
        """Whether the broker's process has exited."""
        return not self.broker.is_running()

    def restart(self) -> None:
        """Start a fresh broker on the same port; returns once it listens."""
        self.broker.restart()

    def is_healthy(self) -> bool:
        """Whether the broker runs (``restart()`` returned only once it listened)."""
        return self.broker.is_running()

    def output_tail(self) -> str:
        """The end of the broker's log."""
        return read_tail(self.broker.log_path)


class PostgresChild:
    """The private PostgreSQL server; restarted on its kept data folder."""

    name = "postgresql"

    def __init__(self, postgres: PrivatePostgres) -> None:
        """Supervise ``postgres``, already started."""
        self.postgres = postgres

    @property
    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self.postgres.postmaster_pid()

    @property
    def returncode(self) -> int | None:
        """Unknown: pg_ctl started the server, so it is not this process's child."""
        return None

    def has_exited(self) -> bool:
        """Whether no server runs on the data folder any more."""
        return not self.postgres.is_running()

    def restart(self) -> None:
        """Start the server again on the same data; returns once it accepts connections."""
        self.postgres.start()

    def is_healthy(self) -> bool:
        """Whether the server runs (``restart()`` returned only once it accepted connections)."""
        return self.postgres.is_running()

    def output_tail(self) -> str:
        """The end of the server log."""
        return self.postgres.log_tail()


@dataclass
class _Watch:
    child: Child
    restarts: Restarts
    state: str = "running"  # running | restarting (waiting out its backoff) | starting (not healthy yet)
    restart_at: float = 0.0


class Supervisor:
    """Restarts the stack's processes that exit, with backoff, and gives up on a crash loop.

    ``on_change`` receives the processes' records whenever one starts, exits or
    becomes healthy (``flowline-dev ps`` reads them from the state folder).
    """

    def __init__(
        self,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[list[ProcessRecord]], None] = lambda records: None,
    ) -> None:
        """Supervise nothing yet: ``add()`` each process once it runs."""
        self.policy = policy or RestartPolicy()
        self._clock = clock
        self._on_change = on_change
        self._watches: list[_Watch] = []

    def add(self, child: Child) -> None:
        """Supervise ``child``, which runs and is healthy now."""
        self._watches.append(_Watch(child, Restarts(self.policy, self._clock())))
        self._changed()

    def records(self) -> list[ProcessRecord]:
        """Each process's name, pid and state."""
        return [ProcessRecord.of(watch.child.name, watch.child.pid, watch.state) for watch in self._watches]

    def check(self) -> Child | None:
        """Restart what is due, notice exits and recoveries.

        Returns:
            A process in a crash loop (then nothing was restarted), else ``None``.
        """
        for watch in self._watches:
            match watch.state:
                case "restarting" if self._clock() >= watch.restart_at:
                    if not self._restart(watch):
                        return watch.child
                case "running" | "starting" if watch.child.has_exited():
                    code = watch.child.returncode
                    if not self._exited(watch, "exited" if code is None else f"exited with code {code}"):
                        return watch.child
                case "starting" if watch.child.is_healthy():
                    watch.state = "running"
                    watch.restarts.healthy(self._clock())
                    logger.info("%s is healthy again (pid %s)", watch.child.name, watch.child.pid)
                    self._changed()
        return None

    def run(self, interval: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> Child:
        """Check every ``interval`` seconds until a process crash-loops; a signal ends it sooner by raising.

        Returns:
            The process in a crash loop.
        """
        while (looping := self.check()) is None:
            sleep(interval)
        return looping

    def _restart(self, watch: _Watch) -> bool:
        """Start an exited process again; ``False`` when failing to start completed a crash loop."""
        try:
            watch.child.restart()
        except DevStackError:
            # Its output tail shows why, should this end in a crash loop.
            return self._exited(watch, "did not start")
        watch.state = "starting"
        self._changed()
        return True

    def _exited(self, watch: _Watch, how: str) -> bool:
        """Schedule the restart of an exited process; ``False`` when it is in a crash loop."""
        delay = watch.restarts.exited(self._clock())
        if delay is None:
            logger.error(
                "%s %s: %d exits within %.0fs, a crash loop; stopping everything\n--- %s output (tail) ---\n%s",
                watch.child.name,
                how,
                self.policy.loop_exits,
                self.policy.loop_window,
                watch.child.name,
                watch.child.output_tail(),
            )
            return False
        logger.warning("%s %s; restarting (%d)", watch.child.name, how, watch.restarts.count)
        watch.state = "restarting"
        watch.restart_at = self._clock() + delay
        self._changed()
        return True

    def _changed(self) -> None:
        self._on_change(self.records())
