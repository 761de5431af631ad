"""The four Flowline services as child processes: start, wait until healthy, kill, restart, stop."""

from __future__ import annotations

import collections
import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TextIO

from flowline.settings import Settings, load_settings

from flowline_devstack.errors import ServiceError
from flowline_devstack.reaper import Reaper, kill_command


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its short name, console script, and the setting holding its HTTP port."""

    name: str
    command: str
    port_field: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="api", command="flowline-api", port_field="api_port"),
    ServiceSpec(name="executor", command="flowline-executor", port_field="executor_http_port"),
    ServiceSpec(name="scheduler", command="flowline-scheduler", port_field="scheduler_http_port"),
    ServiceSpec(name="log-ingest", command="flowline-log-ingest", port_field="log_ingest_http_port"),
)
SERVICE_NAMES: tuple[str, ...] = tuple(spec.name for spec in SERVICES)
#: Alive: answers without asking any dependency.
HEALTH_PATH = "/health"
#: Ready: its database and broker answer (and its consumers have their partitions).
READY_PATH = "/health/ready"

_TAIL_LINES = 40
_COLORS = ("36", "33", "35", "32", "34", "31")
_echo_lock = threading.Lock()


def connect_host(bind_host: str) -> str:
    """The address a client on this machine uses to reach a server bound to ``bind_host``."""
    match bind_host:
        case "" | "0.0.0.0":
            return "127.0.0.1"
        case "::":
            return "::1"
        case _:
            return bind_host


def http_url(bind_host: str, port: int, path: str = "") -> str:
    """``http://host:port/path`` for a server bound to ``bind_host`` (IPv6 in brackets)."""
    host = connect_host(bind_host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def prefix_for(name: str, width: int, color: str | None = None) -> str:
    """The prefix put before each output line of service ``name``: ``api        | ``."""
    label = f"{name:<{width}}"
    if color is not None:
        label = f"\033[{color}m{label}\033[0m"
    return f"{label} | "


def read_tail(path: Path, lines: int = _TAIL_LINES, start: int = 0) -> str:
    """The last ``lines`` lines of a log file from byte ``start`` on (empty when there is none)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(start, file.tell() - 64 * 1024))
            data = file.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Stop ``process``: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

    Returns:
        The exit code (negative for a signal).
    """
    if process.poll() is None and timeout > 0:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.kill()
    return process.wait()


def resolve_command(command: str) -> str:
    """The path of a console script: next to this interpreter (the venv) first, then ``PATH``.

    Raises:
        ServiceError: the script is not installed.
    """
    beside = Path(sys.executable).parent / command
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(command)
    if found is None:
        raise ServiceError(f"{command} is not installed; run `uv sync` in the repository")
    return found


def health_status(bind_host: str, port: int, path: str = HEALTH_PATH, timeout: float = 1.0) -> int | None:
    """The status of ``GET path`` (``/health``), or ``None`` when nothing answers."""
    connection = http.client.HTTPConnection(connect_host(bind_host), port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class ServiceProcess:
    """One service running as a child process.

    Its output goes either to ``log_path`` (appended), or through a pipe that keeps
    the last lines for error messages and, with ``echo``, copies each line to that
    stream behind a padded ``name |`` prefix.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        env: Mapping[str, str],
        *,
        host: str,
        port: int,
        log_path: Path | None = None,
        echo: TextIO | None = None,
        prefix: str | None = None,
    ) -> None:
        """Describe the process; nothing runs until ``start()``.

        Args:
            spec: which service.
            env: the complete environment of the process.
            host: the address the service binds (``http_host``).
            port: the service's HTTP port, where it answers ``/health``.
            log_path: write the output to this file.
            echo: copy the output, prefixed, to this stream (when there is no ``log_path``).
            prefix: the prefix for echoed lines; defaults to ``name | ``.
        """
        if log_path is not None and echo is not None:
            raise ValueError("give a log_path or an echo stream, not both")
        self.spec = spec
        self.env = dict(env)
        self.host = host
        self.port = port
        self.log_path = log_path
        self.echo = echo
        self.prefix = prefix if prefix is not None else prefix_for(spec.name, len(spec.name))
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._stop_signalled = False
        self._log_offset = 0
        self._reaper: Reaper | None = None

    @property
    def name(self) -> str:
        """The service's short name (``api``, ``executor``…)."""
        return self.spec.name

    @property
    def url(self) -> str:
        """The service's base URL, ``http://127.0.0.1:PORT``."""
        return http_url(self.host, self.port)

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited, else ``None``."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        """Whether the process has been started and not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process without waiting for it to be healthy (see ``wait_healthy``)."""
        if self.is_running():
            return
        command = [resolve_command(self.spec.command)]
        self._tail.clear()
        self._stop_signalled = False
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                # The log is appended to across restarts; error messages show this run only.
                self._log_offset = log.tell()
                self._process = self._popen(command, stdout=log)
        else:
            self._process = self._popen(command, stdout=subprocess.PIPE)
            self._reader = threading.Thread(
                target=self._pump, args=(self._process.stdout,), name=f"{self.name}-output", daemon=True
            )
            self._reader.start()
        # Stop the service if this process dies without calling stop() (killed test run).
        self._reaper = Reaper(kill_command(self._process.pid))

    def is_healthy(self) -> bool:
        """Whether ``GET /health`` answers 200 now."""
        return health_status(self.host, self.port) == 200

    def wait_healthy(self, timeout: float = 60.0, path: str = HEALTH_PATH) -> None:
        """Wait until ``GET path`` (``/health``, or ``READY_PATH``) answers 200.

        Raises:
            ServiceError: the process exited, or was not healthy within ``timeout``
                seconds; the message holds the end of its output.
        """
        if self._process is None:
            raise ServiceError(f"{self.name} has not been started")
        deadline = time.monotonic() + timeout
        status: int | None = None
        while time.monotonic() < deadline:
            returncode = self._process.poll()
            if returncode is not None:
                self._join_reader()
                raise ServiceError(
                    f"{self.name} exited with code {returncode} before it was healthy{self._output_section()}"
                )
            status = health_status(self.host, self.port, path)
            if status == 200:
                return
            time.sleep(0.1)
        answer = "no answer" if status is None else f"last status {status}"
        raise ServiceError(
            f"{self.name} did not answer 200 at {self.url}{path} in {timeout:.0f}s ({answer}){self._output_section()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Returns:
            The exit code, or ``None`` if it was never started.
        """
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self._process is None:
            return None
        if timeout > 0:
            self.signal_stop()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self._process.poll() is None:
            self._process.kill()
        returncode = self._process.wait()
        self._join_reader()
        return returncode

    def signal_stop(self) -> None:
        """Send SIGTERM once, without waiting (uvicorn takes a second one as "exit now")."""
        if self._process is not None and self._process.poll() is None and not self._stop_signalled:
            self._process.send_signal(signal.SIGTERM)
            self._stop_signalled = True

    def kill(self) -> int | None:
        """Kill the process with SIGKILL, as a crash would (for fault tests)."""
        return self.stop(timeout=0.0)

    def restart(self, timeout: float = 60.0, stop_timeout: float = 10.0) -> None:
        """Stop the process if it runs, start it again and wait until it is healthy."""
        self.stop(stop_timeout)
        self.start()
        self.wait_healthy(timeout)

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of the process's output."""
        if self.log_path is not None:
            return read_tail(self.log_path, lines, start=self._log_offset)
        return "\n".join(list(self._tail)[-lines:])

    def _popen(self, command: list[str], stdout: int | IO[bytes]) -> subprocess.Popen[bytes]:
        # A session of its own: Ctrl+C in a terminal reaches only flowline-dev, which
        # then stops the services in order instead of all processes at once.
        return subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            self._tail.append(line)
            if self.echo is not None:
                with _echo_lock:
                    self.echo.write(f"{self.prefix}{line}\n")
                    self.echo.flush()
        stream.close()

    def _join_reader(self) -> None:
        if self._reader is not None:
            # Grandchildren holding the pipe open must not hang a shutdown.
            self._reader.join(timeout=2.0)
            self._reader = None

    def _output_section(self) -> str:
        tail = self.output_tail()
        where = f" ({self.log_path})" if self.log_path is not None else ""
        return f"\n--- {self.name} output{where} (tail) ---\n{tail}" if tail else "\n(no output)"


class ServiceGroup:
    """The Flowline services as child processes sharing one environment.

    Ports and host come from the FLOWLINE_* variables in ``env``. Use it as a
    context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        names: Sequence[str] = SERVICE_NAMES,
        log_dir: Path | None = None,
        echo: TextIO | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Describe the services; nothing runs until ``start()``.

        Args:
            env: the environment of every service (FLOWLINE_* settings included).
            names: which services to run, default all four.
            log_dir: write each service's output to ``<log_dir>/<name>.log`` (tests).
            echo: copy each service's output to this stream, prefixed with its
                padded name (``make dev``); colored when the stream is a terminal.
            start_timeout: seconds each service may take to become healthy.
            stop_timeout: seconds between SIGTERM and SIGKILL on stop.
        """
        unknown = sorted(set(names) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(f"unknown services: {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")
        self.settings: Settings = load_settings(env)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        process_env = {**env, "PYTHONUNBUFFERED": "1"}
        width = max(len(name) for name in SERVICE_NAMES)
        colored = echo is not None and echo.isatty() and "NO_COLOR" not in os.environ
        self._services: dict[str, ServiceProcess] = {}
        for index, spec in enumerate(s for s in SERVICES if s.name in names):
            self._services[spec.name] = ServiceProcess(
                spec,
                process_env,
                host=self.settings.http_host,
                port=getattr(self.settings, spec.port_field),
                log_path=log_dir / f"{spec.name}.log" if log_dir is not None else None,
                echo=echo,
                prefix=prefix_for(spec.name, width, _COLORS[index % len(_COLORS)] if colored else None),
            )

    def __getitem__(self, name: str) -> ServiceProcess:
        """The service called ``name``."""
        return self._services[name]

    def __iter__(self) -> Iterator[ServiceProcess]:
        """The services, in start order."""
        return iter(self._services.values())

    def __enter__(self) -> ServiceGroup:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every service, then wait until all are healthy.

        Raises:
            ServiceError: a service exited or was not healthy in time; all are stopped.
        """
        try:
            for service in self:
                service.start()
            for service in self:
                service.wait_healthy(self.start_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every service: SIGTERM to all at once, then SIGKILL whatever outlives ``stop_timeout``."""
        for service in self:
            service.signal_stop()
        for service in self:
            service.stop(self.stop_timeout)

    def kill(self, name: str) -> None:
        """Kill one service with SIGKILL (for fault tests)."""
        self[name].kill()

    def restart(self, name: str) -> None:
        """Restart one service and wait until it is healthy."""
        self[name].restart(self.start_timeout, self.stop_timeout)

    def wait_ready(self) -> None:
        """Wait until every service answers ``GET /health/ready`` with 200, each within ``start_timeout``.

        Raises:
            ServiceError: a service exited or was not ready in time.
        """
        for service in self:
            service.wait_healthy(self.start_timeout, READY_PATH)
