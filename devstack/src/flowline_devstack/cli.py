"""``flowline-dev``: run the whole stack on one machine, in the foreground (``make dev``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from flowline.runtime.outbound import LOOPBACK_NETWORKS
from flowline.settings import ConfigurationError, Settings, env_name, load_settings

from flowline_devstack.broker import TansuBroker
from flowline_devstack.errors import DevStackError
from flowline_devstack.ports import ensure_port_free
from flowline_devstack.postgres import PrivatePostgres
from flowline_devstack.processes import SERVICES, ServiceGroup, http_url
from flowline_devstack.state import ProcessTable, render_ps, stack_lock, stop_leftovers
from flowline_devstack.supervisor import BrokerChild, PostgresChild, ServiceChild, Supervisor

logger = logging.getLogger("flowline_devstack")

#: Ctrl+C, ``kill`` and a closed terminal stop the stack in order.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How long processes left by a killed supervisor get to exit after SIGTERM.
_LEFTOVER_STOP_SECONDS = 10.0


class _StopRequested(BaseException):
    """Raised in the main thread by a stop signal, so cleanup runs through ``finally``."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    logger.info("stopping: services, then the broker, then PostgreSQL")
    # Further signals are ignored: shutdown is bounded by the stop timeouts, and a
    # second Ctrl+C must not interrupt it halfway and leave servers behind.
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise _StopRequested


def render_dev_env(*, api_url: str, tenant: str, api_key: str, database_url: str, kafka_bootstrap: str) -> str:
    """The shell lines of ``.flowline/dev.env``, for ``source`` in another terminal."""
    values = {
        "FLOWLINE_API_URL": api_url,
        "FLOWLINE_TENANT": tenant,
        "FLOWLINE_API_KEY": api_key,
        env_name("database_url"): database_url,
        env_name("kafka_bootstrap"): kafka_bootstrap,
    }
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def render_banner(
    *,
    settings: Settings,
    api_key: str,
    database_url: str,
    kafka_bootstrap: str,
    dev_env_path: Path,
    pids: Mapping[str, int | None],
) -> str:
    """What ``flowline-dev up`` prints once every service is ready; ``pids`` by process name."""
    rows = [(spec.name, http_url(settings.http_host, getattr(settings, spec.port_field))) for spec in SERVICES]
    rows += [("postgresql", database_url), ("broker", kafka_bootstrap)]
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    lines = ["", f"Flowline is running (flowline-dev pid {os.getpid()}):"]
    for name, value in rows:
        pid = pids.get(name)
        lines.append(f"  {name:<{width}}  {value:<{value_width}}  pid {pid}" if pid else f"  {name:<{width}}  {value}")
    lines += [
        f"  {'tenant':<{width}}  {settings.dev_tenant}",
        f"  {'api key':<{width}}  {api_key} (admin; send as Authorization: Bearer <key>)",
        f"  {'console':<{width}}  {http_url(settings.http_host, settings.api_port)}/ui/ (sign in with the api key)",
        "",
        f"In another terminal: source {dev_env_path}",
        "A process that exits is restarted; `flowline-dev ps` lists them. Press Ctrl+C to stop.",
        "",
    ]
    return "\n".join(lines)


def ensure_secret_key(path: Path) -> str:
    """The dev stack's secret key from ``path``, generated there (readable by its owner only) on first use.

    Reusing one key keeps the agent credentials stored by earlier sessions readable.
    """
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(Fernet.generate_key().decode() + "\n")
        logger.info("generated the secret key that encrypts agent credentials: %s", path)
    return path.read_text().strip()


def ensure_dev_api_key(path: Path, database_url: str, tenant: str) -> str:
    """The dev stack's admin key from ``path`` while it still works, else a new one written there (owner only).

    Reusing the key keeps scripts and shells that sourced dev.env working across restarts.
    """
    import asyncpg
    from flowline.db.audit import Actor
    from flowline.domain.credentials import authenticate_key, issue_api_key

    async def usable(key: str) -> bool:
        connection = await asyncpg.connect(database_url)
        try:
            principal = await authenticate_key(connection, key)
        finally:
            await connection.close()
        return principal is not None and principal.tenant == tenant and principal.role == "admin"

    if path.exists() and asyncio.run(usable(key := path.read_text().strip())):
        return key
    key = asyncio.run(
        issue_api_key(database_url, tenant=tenant, role="admin", name="dev", actor=Actor("flowline-dev", None))
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    logger.info("made an admin API key for tenant %r: %s", tenant, path)
    return key


def _migrate(database_url: str, tenant: str) -> None:
    try:
        from flowline.db.migrate import ensure_tenant, upgrade_head
    except ImportError as err:
        raise DevStackError(f"cannot import the migrations (flowline.db.migrate): {err}") from err
    logger.info("applying migrations")
    upgrade_head(database_url)
    logger.info("ensuring tenant %r", tenant)
    ensure_tenant(database_url, tenant)


def _check_ports(settings: Settings, *, postgres: PrivatePostgres | None, broker: bool) -> None:
    """Fail before starting anything when a port is taken, naming the variable that moves it."""
    if postgres is not None:
        if postgres.is_running():
            # Left behind by a supervisor that died before it could clean up (this one holds the lock).
            logger.info("stopping a PostgreSQL server left running in %s", postgres.data_dir)
            postgres.stop()
        ensure_port_free(settings.dev_postgres_port, "dev_postgres_port")
    if broker:
        ensure_port_free(settings.dev_kafka_port, "dev_kafka_port")
    for spec in SERVICES:
        ensure_port_free(getattr(settings, spec.port_field), spec.port_field, host=settings.http_host)


def _shortest(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def up(state_dir: Path, environ: Mapping[str, str]) -> int:
    """Start PostgreSQL, the broker and the four services; keep them running until a signal or a crash loop.

    Args:
        state_dir: where the PostgreSQL data, logs, pids and ``dev.env`` live (``.flowline``).
        environ: the environment; FLOWLINE_* variables configure the stack.

    Returns:
        The process exit code: 0 after a clean stop on a signal, 1 on a failure.

    Raises:
        StackRunningError: another ``flowline-dev up`` runs on ``state_dir`` (it is left alone).
    """
    settings = load_settings(environ)
    state_dir = state_dir.absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    with stack_lock(state_dir):
        return _run(settings, state_dir, environ)


def _run(settings: Settings, state_dir: Path, environ: Mapping[str, str]) -> int:
    postgres = None if settings.database_url else PrivatePostgres(state_dir / "pg", settings.dev_postgres_port)
    broker = (
        None if settings.kafka_bootstrap else TansuBroker(settings.dev_kafka_port, log_path=state_dir / "tansu.log")
    )
    table = ProcessTable(state_dir)
    supervisor = Supervisor(on_change=table.write)
    previous = {sig: signal.signal(sig, _request_stop) for sig in _STOP_SIGNALS}
    try:
        # Callbacks run last-in first-out: services, then the broker, then PostgreSQL, then the pids are forgotten.
        with ExitStack() as stack:
            stop_leftovers(table, keep=[PostgresChild.name], timeout=_LEFTOVER_STOP_SECONDS)
            stack.callback(table.clear)
            _check_ports(settings, postgres=postgres, broker=broker is not None)
            if postgres is not None:
                logger.info("starting PostgreSQL on port %d (data in %s)", postgres.port, postgres.data_dir)
                stack.callback(postgres.stop)
                postgres.start()
                supervisor.add(PostgresChild(postgres))
            if broker is not None:
                logger.info("starting the Tansu broker on port %d", broker.port)
                stack.callback(broker.stop)
                broker.start()
                supervisor.add(BrokerChild(broker))
            database_url = postgres.url if postgres is not None else settings.database_url
            kafka_bootstrap = broker.bootstrap if broker is not None else settings.kafka_bootstrap
            _migrate(database_url, settings.dev_tenant)

            env = {
                **environ,
                env_name("database_url"): database_url,
                env_name("kafka_bootstrap"): kafka_bootstrap,
                env_name("secret_key"): settings.secret_key or ensure_secret_key(state_dir / "secret.key"),
                # Agents under development listen on this machine.
                env_name("outbound_allowed_networks"): settings.outbound_allowed_networks or LOOPBACK_NETWORKS,
            }
            services = ServiceGroup(env, echo=sys.stdout)
            stack.callback(services.stop)
            logger.info("starting the services")
            services.start()
            for service in services:
                supervisor.add(ServiceChild(service))
            logger.info("waiting until every service is ready (GET /health/ready)")
            services.wait_ready()

            api_key = ensure_dev_api_key(state_dir / "dev.key", database_url, settings.dev_tenant)
            dev_env_path = state_dir / "dev.env"
            dev_env_path.write_text(
                render_dev_env(
                    api_url=http_url(settings.http_host, settings.api_port),
                    tenant=settings.dev_tenant,
                    api_key=api_key,
                    database_url=database_url,
                    kafka_bootstrap=kafka_bootstrap,
                )
            )
            print(
                render_banner(
                    settings=settings,
                    api_key=api_key,
                    database_url=database_url,
                    kafka_bootstrap=kafka_bootstrap,
                    dev_env_path=_shortest(dev_env_path),
                    pids={record.name: record.pid for record in supervisor.records()},
                ),
                flush=True,
            )
            supervisor.run()  # returns on a crash loop, which it reported
            return 1
    except _StopRequested:
        logger.info("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ps(state_dir: Path) -> int:
    """Print the stack's processes with their pids and states, as recorded in ``state_dir``.

    Returns:
        The process exit code: 1 when no stack runs there.
    """
    record = ProcessTable(state_dir.absolute()).read()
    if record is None:
        print(f"flowline-dev is not running in {_shortest(state_dir.absolute())}")
        return 1
    print(render_ps(record))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``flowline-dev``."""
    parser = argparse.ArgumentParser(prog="flowline-dev", description=__doc__)
    state_dir = argparse.ArgumentParser(add_help=False)
    state_dir.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".flowline"),
        help="folder for PostgreSQL data, logs, pids and dev.env (default: .flowline)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up",
        parents=[state_dir],
        help="start PostgreSQL, a Tansu broker and the four services in the foreground",
        description="Start the local stack and keep it running until Ctrl+C: a process that exits is restarted "
        "(0.5 s doubling to 10 s between tries); 5 exits of one within 60 s stop everything. "
        "FLOWLINE_DATABASE_URL and FLOWLINE_KAFKA_BOOTSTRAP, when set, replace the private PostgreSQL and broker.",
    )
    commands.add_parser(
        "ps",
        parents=[state_dir],
        help="list the running stack's processes with their pids and states",
        description="List the processes of the stack that `flowline-dev up` runs in the state folder.",
    )
    args = parser.parse_args(argv)
    if args.command == "ps":
        return ps(args.state_dir)
    # Only this package's progress messages; the libraries it drives (alembic) stay quiet.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("flowline-dev | %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        return up(args.state_dir, os.environ)
    except (DevStackError, ConfigurationError) as err:
        logger.error("%s", err)
        return 1
