"""What the command modules share: the handler type, usage errors and reading JSON or YAML arguments."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import msgspec

from flowline_client import AsyncFlowlineClient
from flowline_client.cli.output import Output

API_ERROR = 1  # the exit code of an api refusal, also for a command whose outcome is partly refused
USAGE_ERROR = 2

Handler = Callable[[AsyncFlowlineClient, argparse.Namespace, Output], Awaitable[int]]
# argparse keeps the class of add_subparsers() private.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """A bad argument the parser could not catch (bad JSON, a missing file): exit code 2."""


def iso_time(value: str) -> datetime:
    """An ISO 8601 time option (``2026-01-15T10:30:00Z``); without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time such as 2026-01-15T10:30:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def json_argument(value: str, name: str) -> Any:
    """The JSON in ``value``, or in the file ``@path``.

    Raises:
        UsageError: an unreadable file or invalid JSON, naming the option.
    """
    source = value
    if value.startswith("@"):
        try:
            source = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"{name}: cannot read {value[1:]}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise UsageError(f"{name}: {value[1:]} is not UTF-8 text") from err
    try:
        return msgspec.json.decode(source)
    except msgspec.DecodeError as err:
        raise UsageError(f"{name}: not valid JSON: {err}") from err


def object_argument(value: str | None, name: str) -> dict[str, Any] | None:
    """Like ``json_argument``, but the JSON must be an object."""
    if value is None:
        return None
    document = json_argument(value, name)
    if not isinstance(document, dict):
        raise UsageError(f"{name}: expected a JSON object")
    return document


def yaml_file(path: Path) -> Any:
    """A YAML (or JSON) file's document.

    Raises:
        UsageError: an unreadable file or invalid YAML.
    """
    try:
        return msgspec.yaml.decode(path.read_bytes())
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    except msgspec.DecodeError as err:
        raise UsageError(f"{path}: not valid YAML: {err}") from err


def command(
    subparsers: Subparsers, name: str, handler: Handler, help: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """A leaf command that runs ``handler``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help, parents=parents)
    parser.set_defaults(handler=handler)
    return parser
