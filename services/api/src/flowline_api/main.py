"""The api process: serves the REST API with uvicorn; ``flowline-api admin …`` bootstraps tenants and keys.

The admin commands talk to the database directly (FLOWLINE_DATABASE_URL), so the first tenant and its
first admin key can exist before anyone can call the API.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import uvicorn
from flowline.db.audit import Actor
from flowline.db.migrate import ensure_tenant_async
from flowline.db.pool import connect
from flowline.db.tenants import read_tenant_id, update_tenant_retention
from flowline.domain.credentials import ROLES, issue_api_key, revoke_api_key
from flowline.errors import FlowlineError
from flowline.runtime.ops import configure_logging, proxy_options
from flowline.settings import ConfigurationError, load_settings, retention_seconds, retention_text

from flowline_api.app import create_app

ADMIN_ACTOR = Actor(principal="admin-cli", request_id=None)
# How long an idle client connection stays open. Longer than what clients and load balancers keep idle
# connections for (httpx 5 s, AWS ALB 60 s): with uvicorn's 5 s, a client reusing a connection just as the
# server closed it got a reset mid-request (httpx.ReadError in `make bench`).
KEEP_ALIVE_SECONDS = 75


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowline-api", description="The Flowline REST API")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API (the default)")
    admin = commands.add_parser("admin", help="manage tenants and API keys in the database directly")
    actions = admin.add_subparsers(dest="action", required=True)
    tenant = actions.add_parser("create-tenant", help="create a tenant unless it exists")
    tenant.add_argument("slug")
    tenant.add_argument("--name")
    key = actions.add_parser("create-api-key", help="make an API key and print it (shown only this once)")
    key.add_argument("--tenant", required=True)
    key.add_argument("--role", required=True, choices=ROLES)
    key.add_argument("--name", default="admin-cli")
    revoke = actions.add_parser("revoke-api-key", help="revoke an API key by its id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id", type=uuid.UUID)
    retention = actions.add_parser(
        "set-tenant-retention",
        help="how long executions of the tenant's workflows without a retention of their own are kept",
    )
    retention.add_argument("slug")
    retention.add_argument(
        "retention", type=_tenant_retention, help="a duration such as 90s, 12h or 30d, or 'default' (the server's)"
    )
    return parser


def _tenant_retention(text: str) -> int | None:
    """The seconds of a tenant's retention argument; None for ``default`` (FLOWLINE_EXECUTION_RETENTION)."""
    if text == "default":
        return None
    try:
        return retention_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}, or 'default'") from err


async def _admin(database_url: str, args: argparse.Namespace) -> str:
    match args.action:
        case "create-tenant":
            await ensure_tenant_async(database_url, args.slug, args.name)
            return f"tenant {args.slug} exists"
        case "create-api-key":
            return await issue_api_key(
                database_url, tenant=args.tenant, role=args.role, name=args.name, actor=ADMIN_ACTOR
            )
    connection = await connect(database_url)
    try:
        async with connection.transaction():
            if args.action == "set-tenant-retention":
                tenant_id = await read_tenant_id(connection, args.slug)
                await update_tenant_retention(
                    connection, tenant_id=tenant_id, retention_seconds=args.retention, actor=ADMIN_ACTOR
                )
                kept = "the server's default" if args.retention is None else retention_text(args.retention)
                return f"tenant {args.slug} keeps executions of workflows without a retention for {kept}"
            tenant_id = await read_tenant_id(connection, args.tenant)
            await revoke_api_key(connection, tenant_id=tenant_id, key_id=args.key_id, actor=ADMIN_ACTOR)
    finally:
        await connection.close()
    return f"API key {args.key_id} revoked"


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``flowline-api``."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "admin":
            if not settings.database_url:
                raise ConfigurationError("set FLOWLINE_DATABASE_URL")
            print(asyncio.run(_admin(settings.database_url, args)))
            return
        settings = settings.require_connections()
    except (ConfigurationError, FlowlineError) as err:
        print(f"flowline-api: {err}", file=sys.stderr)
        sys.exit(2 if isinstance(err, ConfigurationError) else 1)
    configure_logging("api", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **proxy_options(settings.trusted_proxies),
    )
