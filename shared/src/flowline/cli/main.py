"""The ``flowline`` command: parse, configure, run one command against the api, map the outcome to an exit code."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from flowline.cli import agents, bulk, executions, tasks, workflows
from flowline.cli.arguments import Handler, UsageError
from flowline.cli.config import ConfigError, resolve_config
from flowline.cli.output import Output
from flowline.client import AsyncFlowlineClient, FlowlineApiError

API_ERROR = 1
USAGE_ERROR = 2
INTERRUPTED = 130


def _connection_options(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument("--api-url", default=default, help="the api's root URL (FLOWLINE_API_URL)")
    group.add_argument("--tenant", default=default, help="the tenant slug (FLOWLINE_TENANT)")
    group.add_argument("--api-key", default=default, help="an API key or JWT (FLOWLINE_API_KEY)")
    group.add_argument("--profile", default=default, help="a profile of ~/.config/flowline/config.toml")
    group.add_argument("-O", "--output", default=default, choices=["table", "json"], help="table (default) or json")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(prog="flowline", description="Operate Flowline from a terminal.")
    _connection_options(parser, None)
    # The same options after the command (`flowline executions list --output json`); SUPPRESS keeps a value
    # given before the command when they are not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)
    subparsers = parser.add_subparsers(required=True, metavar="GROUP")
    for group in (workflows, executions, tasks, agents, bulk):
        group.register(subparsers, [common])
    return parser


async def _run(handler: Handler, client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    async with client:
        return await handler(client, args, out)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 1 api error, 2 usage error, 3 execution failed)."""
    environ = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse printed the usage error (2) or the help (0)
        return exit.code if isinstance(exit.code, int) else USAGE_ERROR
    try:
        flags = {"api_url": args.api_url, "tenant": args.tenant, "api_key": args.api_key}
        config = resolve_config(flags, environ, args.profile)
    except ConfigError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return USAGE_ERROR
    terminal = sys.stdout.isatty()
    out = Output(json=args.output == "json", colour=terminal and "NO_COLOR" not in environ, terminal=terminal)
    client = AsyncFlowlineClient(config.api_url, config.tenant, config.api_key)
    try:
        return asyncio.run(_run(args.handler, client, args, out))
    except FlowlineApiError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return API_ERROR
    except UsageError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return INTERRUPTED
