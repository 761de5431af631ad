"""``flowline-dev``: run the whole stack on one machine, in the foreground (``make dev``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from flowline.devstack.broker import TansuBroker
from flowline.devstack.errors import DevStackError
from flowline.devstack.ports import ensure_port_free
from flowline.devstack.postgres import PrivatePostgres
from flowline.devstack.processes import SERVICES, ServiceGroup, http_url, read_tail
from flowline.outbound import LOOPBACK_NETWORKS
from flowline.settings import ConfigurationError, Settings, env_name, load_settings

logger = logging.getLogger("flowline.devstack")

_SUPERVISE_INTERVAL_SECONDS = 0.5


class _StopRequested(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM, so cleanup runs through ``finally``."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    logger.info("stopping: services, then the broker, then PostgreSQL")
    # Further signals are ignored: shutdown is bounded by the stop timeouts, and a
    # second Ctrl+C must not interrupt it halfway and leave servers behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
    *, settings: Settings, api_key: str, database_url: str, kafka_bootstrap: str, dev_env_path: Path
) -> str:
    """What ``flowline-dev up`` prints once everything is healthy."""
    rows = [(spec.name, http_url(settings.http_host, getattr(settings, spec.port_field))) for spec in SERVICES]
    rows += [("postgresql", database_url), ("kafka", kafka_bootstrap), ("tenant", settings.dev_tenant)]
    rows += [("api key", f"{api_key} (admin; send as Authorization: Bearer <key>)")]
    width = max(len(name) for name, _ in rows)
    lines = ["", "Flowline is running:"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [
        "",
        f"In another terminal: source {dev_env_path}",
        "Press Ctrl+C to stop.",
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

    from flowline.credentials import authenticate_key, issue_api_key
    from flowline.db.audit import Actor

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
            # Left behind by a session that was killed before it could clean up.
            logger.info("stopping a PostgreSQL server left running in %s", postgres.data_dir)
            postgres.stop()
        ensure_port_free(settings.dev_postgres_port, "dev_postgres_port")
    if broker:
        ensure_port_free(settings.dev_kafka_port, "dev_kafka_port")
    for spec in SERVICES:
        ensure_port_free(getattr(settings, spec.port_field), spec.port_field, host=settings.http_host)


def _supervise(services: ServiceGroup, broker: TansuBroker | None) -> int:
    """Block until a service or the broker dies (returns 1); a signal ends it by raising."""
    while True:
        exited = services.first_exited()
        if exited is not None:
            logger.error(
                "%s exited with code %s; stopping everything\n--- %s output (tail) ---\n%s",
                exited.name,
                exited.returncode,
                exited.name,
                exited.output_tail(),
            )
            return 1
        if broker is not None and not broker.is_running():
            logger.error(
                "the Tansu broker exited; stopping everything (log: %s)\n%s",
                broker.log_path,
                read_tail(broker.log_path),
            )
            return 1
        time.sleep(_SUPERVISE_INTERVAL_SECONDS)


def _shortest(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def up(state_dir: Path, environ: Mapping[str, str]) -> int:
    """Start PostgreSQL, the broker and the four services; run until a signal or a failure.

    Args:
        state_dir: where the PostgreSQL data, logs and ``dev.env`` live (``.flowline``).
        environ: the environment; FLOWLINE_* variables configure the stack.

    Returns:
        The process exit code: 0 after a clean stop on SIGINT/SIGTERM, 1 on a failure.
    """
    settings = load_settings(environ)
    state_dir = state_dir.absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    postgres = None if settings.database_url else PrivatePostgres(state_dir / "pg", settings.dev_postgres_port)
    broker = (
        None if settings.kafka_bootstrap else TansuBroker(settings.dev_kafka_port, log_path=state_dir / "tansu.log")
    )
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Callbacks run last-in first-out: services, then the broker, then PostgreSQL.
        with ExitStack() as stack:
            _check_ports(settings, postgres=postgres, broker=broker is not None)
            if postgres is not None:
                logger.info("starting PostgreSQL on port %d (data in %s)", postgres.port, postgres.data_dir)
                stack.callback(postgres.stop)
                postgres.start()
            if broker is not None:
                logger.info("starting the Tansu broker on port %d", broker.port)
                stack.callback(broker.stop)
                broker.start()
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
                ),
                flush=True,
            )
            return _supervise(services, broker)
    except _StopRequested:
        logger.info("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``flowline-dev``."""
    parser = argparse.ArgumentParser(prog="flowline-dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser(
        "up",
        help="start PostgreSQL, a Tansu broker and the four services in the foreground",
        description="Start the local stack and run it until Ctrl+C. FLOWLINE_DATABASE_URL and "
        "FLOWLINE_KAFKA_BOOTSTRAP, when set, replace the private PostgreSQL and broker.",
    )
    up_parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".flowline"),
        help="folder for PostgreSQL data, logs and dev.env (default: .flowline)",
    )
    args = parser.parse_args(argv)
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
