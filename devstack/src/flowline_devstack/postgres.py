"""A private PostgreSQL cluster in a data folder, run from the machine's PostgreSQL binaries."""

from __future__ import annotations

import glob
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from flowline_devstack.errors import PostgresError
from flowline_devstack.reaper import Reaper

logger = logging.getLogger(__name__)

#: PostgreSQL refuses to run as root; as root the cluster runs as this system user.
SERVER_USER = "postgres"
#: The superuser initdb creates, and the database ``start()`` makes sure exists.
ROLE = "flowline"
DATABASE = "flowline"
HOST = "127.0.0.1"
#: Unix socket paths are limited to 107 bytes on Linux; longer data dirs get no socket.
_MAX_SOCKET_DIR_LENGTH = 90
_LOG_NAME = "server.log"
#: A durable cluster's write-ahead log settings (docs/operations.md §3): fsync, synchronous commit and full page
#: writes stay on. The first change of a page after a checkpoint writes the whole page to the WAL, and a purge
#: changes nearly every page it touches only once: lz4 compresses those images, and checkpoints no closer than
#: 4 GB of WAL write fewer of them again (and fewer dirty pages) during a purge or a load.
DURABLE_SETTINGS = {"wal_compression": "lz4", "max_wal_size": "4GB"}
StopMode = Literal["smart", "fast", "immediate"]
#: The signals behind ``pg_ctl stop -m smart|fast|immediate``.
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


def server_major_version(version_output: str) -> str:
    """The major version in ``postgres --version`` output: ``15`` from ``... 15.18 (Debian ...)``.

    Before PostgreSQL 10 the major version had two parts (``9.6``).
    """
    match = re.search(r"\)\s*(\d+)(?:\.(\d+))?", version_output)
    if match is None:
        raise PostgresError(f"cannot read a PostgreSQL version from {version_output!r}")
    major, minor = match.groups()
    return f"{major}.{minor}" if int(major) < 10 and minor is not None else major


def _is_postgres_process(pid: int) -> bool:
    """Whether ``pid`` is alive and, where /proc tells, a postgres process (not a reused pid)."""
    if not _pid_exists(pid):
        return False
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid file, as pg_ctl does


def _pid_exists(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the server user's when we are not root
    return True


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def debian_bindirs(root: str = "/usr/lib/postgresql") -> list[Path]:
    """Debian's per-version server bindirs that hold ``initdb``, newest version first."""
    found = [Path(path).parent for path in glob.glob(f"{root}/*/bin/initdb")]
    return sorted(found, key=lambda bindir: _version_key(bindir.parent.name), reverse=True)


def candidate_bindirs(pg_config_bindir: Path | None, debian: Sequence[Path], on_path: Path | None) -> list[Path]:
    """Where to look for server binaries, in order of preference, without duplicates.

    ``pg_config --bindir`` comes first, then Debian's versioned folders (newest first),
    then the folder of an ``initdb`` found on ``PATH``. A folder counts only when it
    holds ``initdb``: Debian's ``pg_config`` belongs to libpq-dev and can name a
    version whose server is not installed.
    """
    ordered: list[Path] = []
    for bindir in [pg_config_bindir, *debian, on_path]:
        if bindir is None or not (bindir / "initdb").is_file():
            continue
        if bindir.resolve() not in {seen.resolve() for seen in ordered}:
            ordered.append(bindir)
    return ordered


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(result.stdout.strip())


def _bindir_version(bindir: Path) -> str:
    result = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return server_major_version(result.stdout)


def find_bindir(major_version: str | None = None) -> Path:
    """The folder holding PostgreSQL's server binaries (``initdb``, ``pg_ctl``, ``postgres``).

    Args:
        major_version: prefer binaries of this major version (an existing data
            folder's ``PG_VERSION``); without it, the first candidate wins.

    Raises:
        PostgresError: no server binaries are installed, or none of the wanted version.
    """
    which_initdb = shutil.which("initdb")
    on_path = Path(which_initdb).resolve().parent if which_initdb else None
    candidates = candidate_bindirs(_pg_config_bindir(), debian_bindirs(), on_path)
    if not candidates:
        raise PostgresError(
            "no PostgreSQL server binaries found (looked for initdb via pg_config --bindir, "
            "in /usr/lib/postgresql/*/bin and on PATH); run scripts/bootstrap.sh or "
            "`apt-get install postgresql`"
        )
    if major_version is None:
        return candidates[0]
    for bindir in candidates:
        if _bindir_version(bindir) == major_version:
            return bindir
    raise PostgresError(
        f"the data folder needs PostgreSQL {major_version} but only these server binaries "
        f"are installed: {', '.join(str(c) for c in candidates)}; install PostgreSQL "
        f"{major_version} or remove the data folder to start afresh"
    )


def can_traverse(mode: int, owner: int, group: int, uid: int, gids: Iterable[int]) -> bool:
    """Whether a user may pass through a directory with these permission bits and owners."""
    if uid == 0:
        return True
    if owner == uid:
        return bool(mode & stat.S_IXUSR)
    if group in set(gids):
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def server_options(port: int, socket_dir: Path | None, *, durable: bool) -> list[str]:
    """The ``postgres`` command-line options for a private cluster.

    Args:
        port: the TCP port, on 127.0.0.1 only.
        socket_dir: where the Unix socket goes; ``None`` for no Unix socket.
        durable: ``False`` trades crash safety for speed (tests only).
    """
    settings = {
        "listen_addresses": HOST,
        "unix_socket_directories": str(socket_dir) if socket_dir is not None else "",
        "max_connections": "200",
    }
    if durable:
        settings |= DURABLE_SETTINGS
    else:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    options = ["-p", str(port)]
    for name, value in settings.items():
        options += ["-c", f"{name}={value}"]
    return options


class PrivatePostgres:
    """A PostgreSQL cluster owned by Flowline's dev tooling, in ``data_dir``, on ``127.0.0.1:port``.

    ``start()`` creates the cluster the first time and reuses its data afterwards.
    When this process runs as root, the server runs as the ``postgres`` system user,
    because PostgreSQL refuses to run as root.
    """

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True, start_timeout: float = 60.0) -> None:
        """Describe the cluster; nothing runs until ``start()``.

        Args:
            data_dir: the cluster's data folder; created if missing.
            port: the TCP port to listen on (127.0.0.1 only).
            durable: keep fsync on. ``False`` (fsync, synchronous commit and full page
                writes off) is for throwaway test clusters only.
            start_timeout: seconds ``pg_ctl`` waits for the server to accept connections.
        """
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.durable = durable
        self.start_timeout = start_timeout
        self._bindir: Path | None = None
        self._reaper: Reaper | None = None
        self._temporary_root: Path | None = None

    @classmethod
    def temporary(cls, port: int, *, durable: bool = False, start_timeout: float = 60.0) -> PrivatePostgres:
        """A throwaway cluster in a new folder under the system's temporary directory (tests).

        Use this rather than a folder under pytest's ``tmp_path``: pytest makes
        ``/tmp/pytest-of-<user>`` private again at every session start, and when this
        runs as root the ``postgres`` user then loses its way to the data: the server
        crashes at its next checkpoint. Call ``remove()`` when done.
        """
        root = Path(tempfile.mkdtemp(prefix="flowline-pg-"))
        root.chmod(0o711)
        cluster = cls(root / "data", port, durable=durable, start_timeout=start_timeout)
        cluster._temporary_root = root
        return cluster

    @property
    def url(self) -> str:
        """The connection URL, ``postgresql://flowline@127.0.0.1:PORT/flowline``."""
        return f"postgresql://{ROLE}@{HOST}:{self.port}/{DATABASE}"

    @property
    def log_path(self) -> Path:
        """The server's log file (inside the data folder, where the server user may write)."""
        return self.data_dir / _LOG_NAME

    @property
    def initialized(self) -> bool:
        """Whether the data folder already holds a cluster."""
        return (self.data_dir / "PG_VERSION").is_file()

    def start(self) -> None:
        """Create the cluster if needed, start the server, and create the ``flowline`` database.

        A server left running on this data folder by an earlier, killed session is
        stopped first, so that this start applies the current port and options.

        Raises:
            PostgresError: a PostgreSQL command failed; the message carries its output.
        """
        if self._as_root:
            self._ensure_server_user()
        if not self.initialized:
            self._initdb()
        elif self._as_root:
            self._hand_to_server_user()
        if self.is_running():
            logger.info("stopping a PostgreSQL server left running in %s", self.data_dir)
            self.stop()
        options = server_options(self.port, self._socket_dir(), durable=self.durable)
        try:
            self._pg_ctl(
                "start",
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "-l",
                str(self.log_path),
                "-o",
                shlex.join(options),
            )
        except PostgresError as err:
            raise PostgresError(f"{err}\n--- {self.log_path} (tail) ---\n{self.log_tail()}") from err
        self._watch()
        try:
            self._ensure_database()
        except BaseException:
            self.stop()
            raise

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server if it runs.

        Args:
            mode: ``fast`` (roll back sessions, clean shutdown), ``smart`` or
                ``immediate`` (no checkpoint: crash recovery on next start).
        """
        self._unwatch()
        pid = self.postmaster_pid()
        if pid is None:
            return
        # Signals, as pg_ctl stop sends them, rather than pg_ctl itself: as root pg_ctl runs
        # as the server user, who can lose access to the data folder's path while the
        # server runs (pytest makes /tmp/pytest-of-<user> private again at every session
        # start); then pg_ctl fails and the server would be left behind.
        os.kill(pid, _STOP_SIGNALS[mode])
        deadline = time.monotonic() + self.start_timeout
        while self.postmaster_pid() == pid:
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL (pid {pid}) did not stop within {self.start_timeout:.0f}s")
            time.sleep(0.05)
        # A postmaster that crashed leaves its socket lock file behind; the next start
        # only takes it over once the old pid is gone, so wait (briefly) for the reaping.
        reaped_by = time.monotonic() + 2.0
        while _pid_exists(pid) and time.monotonic() < reaped_by:
            time.sleep(0.05)

    def remove(self) -> None:
        """Stop the server and delete its data (the whole folder ``temporary()`` made)."""
        self.stop()
        shutil.rmtree(self._temporary_root or self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop (fast) and start again on the same data and port."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        """Whether a server is running on this data folder."""
        return self.postmaster_pid() is not None

    def postmaster_pid(self) -> int | None:
        """The process id of the server running on this data folder, if one is."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _is_postgres_process(pid) else None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, or an empty string when there is none."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def bindir(self) -> Path:
        """The folder of the server binaries this cluster runs with."""
        if self._bindir is None:
            version_file = self.data_dir / "PG_VERSION"
            major = version_file.read_text().strip() if version_file.is_file() else None
            self._bindir = find_bindir(major)
        return self._bindir

    def _server_command(self, binary: str, *args: str) -> list[str]:
        command = [str(self.bindir / binary), *args]
        if self._as_root:
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def _run(
        self, command: list[str], *, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # cwd="/": the server user may not be allowed into our working directory.
        # A new session keeps the postmaster (a pg_ctl grandchild) out of the terminal's
        # process group, so Ctrl+C reaches flowline-dev, which stops things in order.
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd="/",
            input=input,
            check=False,
            start_new_session=True,
        )
        if check and result.returncode != 0:
            output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
            raise PostgresError(f"`{shlex.join(command)}` failed with exit code {result.returncode}:\n{output}")
        return result

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run(self._server_command("pg_ctl", action, "-D", str(self.data_dir), *args))

    def _watch(self) -> None:
        # Stop the server if this process dies without calling stop() (killed test run).
        self._unwatch()
        pid = self.postmaster_pid()
        if pid is not None:
            self._reaper = Reaper(["kill", "-INT", str(pid)])  # a fast shutdown

    def _unwatch(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is neither empty nor a PostgreSQL data folder; remove it or choose another folder"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._as_root:
            self._hand_to_server_user()
        logger.info("creating a PostgreSQL cluster in %s", self.data_dir)
        args = ["-D", str(self.data_dir), "-A", "trust", "-U", ROLE, "-E", "UTF8", "--no-locale"]
        if not self.durable:
            args.append("--no-sync")
        self._run(self._server_command("initdb", *args))

    def _socket_dir(self) -> Path | None:
        # The socket lives with the data, never in /var/run/postgresql (which may be
        # missing or belong to the system cluster); TCP is what Flowline uses.
        return self.data_dir if len(str(self.data_dir)) <= _MAX_SOCKET_DIR_LENGTH else None

    def _ensure_server_user(self) -> None:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            logger.info("creating the %r system user to run PostgreSQL", SERVER_USER)
            self._run(["useradd", "--system", "--user-group", "--shell", "/usr/sbin/nologin", SERVER_USER])

    def _hand_to_server_user(self) -> None:
        """Give the data folder to the server user and let that user reach it."""
        user = pwd.getpwnam(SERVER_USER)
        gids = os.getgrouplist(SERVER_USER, user.pw_gid)
        for parent in reversed(self.data_dir.parents):
            info = parent.stat()
            if not can_traverse(info.st_mode, info.st_uid, info.st_gid, user.pw_uid, gids):
                if parent.name.startswith("pytest-of-"):
                    logger.warning(
                        "%s is pytest's private folder, which the next pytest session makes private "
                        "again, crashing this server: use PrivatePostgres.temporary() in fixtures",
                        parent,
                    )
                logger.warning(
                    "allowing others to traverse %s (chmod o+x) so the %r user can reach %s",
                    parent,
                    SERVER_USER,
                    self.data_dir,
                )
                os.chmod(parent, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
        if self.data_dir.stat().st_uid != user.pw_uid:
            for folder, dirs, files in os.walk(self.data_dir):
                for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
                    os.lchown(name, user.pw_uid, user.pw_gid)
        os.chmod(self.data_dir, 0o700)

    def _ensure_database(self) -> None:
        # psql rather than a Python driver: this runs from sync code that may sit
        # inside an event loop (pytest-asyncio fixtures), where asyncio.run() fails.
        conninfo = f"host={HOST} port={self.port} user={ROLE} dbname=postgres sslmode=disable"
        script = (
            f"SELECT 'CREATE DATABASE {DATABASE}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
        )
        self._run(
            [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"],
            input=script,
        )
