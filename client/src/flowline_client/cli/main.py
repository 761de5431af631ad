"""The ``flowline`` command: parse, configure, run one command against the api, map the outcome to an exit code."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from urllib.parse import urlsplit

from flowline_client import AsyncFlowlineClient, FlowlineApiError
from flowline_client.cli import agents, bulk, executions, schedules, tasks, webhooks, workflows
from flowline_client.cli.arguments import API_ERROR, USAGE_ERROR, Handler, UsageError
from flowline_client.cli.config import Config, ConfigError, resolve_config
from flowline_client.cli.output import Output

INTERRUPTED = 130


def _connection_options(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument("--api-url", default=default, help="the api's root URL (FLOWLINE_API_URL)")
    group.add_argument("--tenant", default=default, help="the tenant slug (FLOWLINE_TENANT)")
    group.add_argument("--api-key", default=default, help="an API key or JWT (FLOWLINE_API_KEY)")
    group.add_argument("--profile", default=default, help="a profile of ~/.config/flowline/config.toml")
    group.add_argument("-O", "--output", default=default, choices=["table", "json"], help="table (default) or json")


EPILOG = """\
environment: FLOWLINE_API_URL, FLOWLINE_TENANT, FLOWLINE_API_KEY (`source .flowline/dev.env` sets them),
FLOWLINE_PROFILE (a profile of the config file, which then replaces those three), FLOWLINE_CONFIG (the config
file, else $XDG_CONFIG_HOME/flowline/config.toml or ~/.config/flowline/config.toml), NO_COLOR.

exit codes: 0 done; 1 the api refused or could not be reached; 2 a usage error; 3 the execution (or task)
finished other than completed (--wait, watch); 124 --wait --timeout gave up; 130 interrupted (Ctrl+C).
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="flowline",
        description="Operate Flowline from a terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('flowline-client')}")
    _connection_options(parser, None)
    # The same options after the command (`flowline executions list --output json`); SUPPRESS keeps a value
    # given before the command when they are not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)
    subparsers = parser.add_subparsers(required=True, metavar="GROUP")
    for group in (workflows, executions, tasks, agents, bulk, schedules, webhooks):
        group.register(subparsers, [common])
    return parser


async def _run(handler: Handler, config: Config, args: argparse.Namespace, out: Output) -> int:
    async with AsyncFlowlineClient(config.api_url, config.tenant, config.api_key) as client:
        return await handler(client, args, out)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns the exit code (see ``EPILOG``)."""
    environ = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stopped:  # argparse printed the usage error (2), the help or the version (0)
        return stopped.code if isinstance(stopped.code, int) else USAGE_ERROR
    terminal = sys.stdout.isatty()
    out = Output(json=args.output == "json", colour=terminal and "NO_COLOR" not in environ, terminal=terminal)
    if (offline := getattr(args, "offline", None)) is not None:  # reads local files only: no api, no config
        try:
            code: int = offline(args, out)
        except UsageError as err:
            print(f"flowline: {err}", file=sys.stderr)
            return USAGE_ERROR
        return code
    try:
        flags = {"api_url": args.api_url, "tenant": args.tenant, "api_key": args.api_key}
        config = resolve_config(flags, environ, args.profile)
    except ConfigError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return USAGE_ERROR
    url = urlsplit(config.api_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        print(f"flowline: the api URL {config.api_url!r} is not http(s)://host[:port]", file=sys.stderr)
        return USAGE_ERROR
    try:
        return asyncio.run(_run(args.handler, config, args, out))
    except FlowlineApiError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return API_ERROR
    except UsageError as err:
        print(f"flowline: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`… | head`): stop quietly, and keep Python from failing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return API_ERROR
