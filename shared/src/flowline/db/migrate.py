"""Apply and revert migrations, and bootstrap a tenant: ``flowline-db upgrade|downgrade|ensure-tenant``."""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg
from alembic import command
from alembic.config import Config

from flowline.runtime.ids import uuid7
from flowline.settings import ConfigurationError, load_settings


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for ``database_url`` (a ``postgresql://`` URL)."""
    config = Config()
    config.set_main_option("script_location", "flowline.db:migrations")
    async_url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )
    config.set_main_option("sqlalchemy.url", async_url.replace("%", "%%"))
    return config


def upgrade_head(database_url: str) -> None:
    """Migrate the database to the latest revision."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade(database_url: str, revision: str) -> None:
    """Revert the database to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(database_url), revision)


async def ensure_tenant_async(database_url: str, slug: str, name: str | None = None) -> None:
    """Create the tenant ``slug`` unless it exists."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
            uuid7(),
            slug,
            name or slug,
        )
    finally:
        await connection.close()


def ensure_tenant(database_url: str, slug: str, name: str | None = None) -> None:
    """Create the tenant ``slug`` unless it exists (synchronous, for scripts)."""
    asyncio.run(ensure_tenant_async(database_url, slug, name))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``flowline-db``."""
    parser = argparse.ArgumentParser(prog="flowline-db", description="Flowline database administration")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="apply every migration up to the latest")
    down = commands.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision", help="target revision, e.g. base or -1")
    tenant = commands.add_parser("ensure-tenant", help="create a tenant unless it exists")
    tenant.add_argument("slug")
    tenant.add_argument("--name")
    args = parser.parse_args(argv)
    try:
        database_url = load_settings().database_url
    except ConfigurationError as err:
        print(f"flowline-db: {err}", file=sys.stderr)
        return 2
    if not database_url:
        print("flowline-db: set FLOWLINE_DATABASE_URL", file=sys.stderr)
        return 2
    match args.command:
        case "upgrade":
            upgrade_head(database_url)
        case "downgrade":
            downgrade(database_url, args.revision)
        case "ensure-tenant":
            ensure_tenant(database_url, args.slug, args.name)
    return 0
