"""``flowline agents …``: the HTTP agents that agent steps call."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from flowline_schemas.agents import AUTH_TYPES

from flowline_client import AsyncFlowlineClient, FlowlineApiError
from flowline_client.cli.arguments import Subparsers, UsageError, command, object_argument, yaml_file
from flowline_client.cli.lists import add_paging, print_list
from flowline_client.cli.output import Output, text, when
from flowline_client.models import Agent

# Option destination → the api's camelCase field, for create and update.
_FIELDS = {
    "name": "name",
    "url": "url",
    "description": "description",
    "health_path": "healthPath",
    "auth_type": "authType",
    "timeout_ms": "timeoutMs",
    "status": "status",
}


async def agent_id(client: AsyncFlowlineClient, name_or_id: str) -> str:
    """The id of the agent named ``name_or_id`` (an id is taken as it is).

    Raises:
        FlowlineApiError: no agent has that name (a 404, as for an unknown id).
    """
    try:
        return str(uuid.UUID(name_or_id))
    except ValueError:
        pass  # a name
    async for agent in client.iter_agents(search=name_or_id):
        if agent.name == name_or_id:
            return agent.id
    raise FlowlineApiError(404, "Not found", f"no agent is named {name_or_id!r}")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The agent fields given by ``-f FILE`` and the options (an option overrides the file)."""
    fields: dict[str, Any] = {}
    if args.file is not None:
        document = yaml_file(Path(args.file))
        if not isinstance(document, dict):
            raise UsageError(f"{args.file}: expected an agent object (name, url, authType, …)")
        fields.update(document)
    fields.update({field: getattr(args, dest) for dest, field in _FIELDS.items() if getattr(args, dest) is not None})
    for value, option, field in (
        (args.auth_config, "--auth-config", "authConfig"),
        (args.retry_config, "--retry-config", "retryConfig"),
    ):
        if value is not None:
            fields[field] = object_argument(value, option)
    return fields


def _show(agent: Agent, out: Output) -> None:
    out.fields(
        [
            ("Agent", agent.id),
            ("Name", agent.name),
            ("URL", agent.url),
            ("Status", out.status(agent.status)),
            ("Auth", f"{agent.auth_type} ({', '.join(agent.auth_config_fields) or 'no fields'})"),
            ("Timeout", f"{agent.timeout_ms}ms"),
            ("Health path", text(agent.health_path)),
            ("Retry", text(agent.retry_config)),
            ("Description", text(agent.description)),
            ("Updated", when(agent.updated_at)),
        ]
    )


async def _list_agents(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    return await print_list(
        out,
        args,
        page=lambda: client.list_agents(status=args.status, search=args.search, limit=args.limit, cursor=args.cursor),
        every=lambda: client.iter_agents(status=args.status, search=args.search),
        headers=["NAME", "STATUS", "AUTH", "URL", "ID"],
        row=lambda agent: [agent.name, agent.status.upper(), agent.auth_type, agent.url, agent.id],
    )


async def _get_agent(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    agent = await client.get_agent(await agent_id(client, args.agent))
    if out.json:
        out.document(agent)
    else:
        _show(agent, out)
    return 0


async def _create_agent(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    fields = _fields(args)
    missing = [name for name in ("name", "url") if name not in fields]
    if missing:
        raise UsageError(f"an agent needs {' and '.join(missing)} (--{missing[0]}, or -f FILE)")
    agent = await client.create_agent(fields)
    out.result(agent, f"Agent {agent.name} created. Id: {agent.id}")
    return 0


async def _update_agent(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    changes = _fields(args)
    if not changes:
        raise UsageError("nothing to change: give -f FILE or options such as --url")
    agent = await client.update_agent(await agent_id(client, args.agent), changes)
    out.result(agent, f"Agent {agent.name} updated.")
    return 0


async def _delete_agent(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    identifier = await agent_id(client, args.agent)
    await client.delete_agent(identifier)
    out.result({"id": identifier, "deleted": True}, f"Agent {args.agent} deleted.")
    return 0


async def _check_health(client: AsyncFlowlineClient, args: argparse.Namespace, out: Output) -> int:
    health = await client.check_agent_health(await agent_id(client, args.agent))
    if out.json:
        out.document(health)
        return 0
    detail = f"HTTP {health.http_status}" if health.http_status is not None else text(health.error)
    out.line(f"Agent {args.agent}: {out.status(health.status)} in {health.latency_ms:.0f}ms ({detail})")
    return 0


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", metavar="FILE", help="the agent as YAML or JSON (camelCase fields)")
    parser.add_argument("--name")
    parser.add_argument("--url")
    parser.add_argument("--description")
    parser.add_argument("--health-path", help="e.g. /health, relative to the agent's URL")
    parser.add_argument("--auth-type", choices=AUTH_TYPES)
    parser.add_argument("--auth-config", help='credentials as JSON or @file, e.g. {"token": "…"}')
    parser.add_argument("--timeout-ms", type=int)
    parser.add_argument("--retry-config", help='default retry as JSON or @file, e.g. {"maxAttempts": 5}')
    parser.add_argument("--status", choices=["active", "inactive"])


def register(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    """Add the ``agents`` command group; agents are named by name or id."""
    agents = subparsers.add_parser("agents", help="register and check HTTP agents").add_subparsers(
        required=True, metavar="COMMAND"
    )
    parser = command(agents, "list", _list_agents, "list agents", common)
    parser.add_argument("--status", choices=["active", "inactive"])
    parser.add_argument("--search", help="text in the name or description")
    add_paging(parser)
    command(agents, "get", _get_agent, "show an agent", common).add_argument("agent", help="a name or id")
    _agent_options(command(agents, "create", _create_agent, "register an agent", common))
    parser = command(agents, "update", _update_agent, "change an agent's fields (others keep their value)", common)
    parser.add_argument("agent", help="a name or id")
    _agent_options(parser)
    command(agents, "delete", _delete_agent, "delete an agent", common).add_argument("agent", help="a name or id")
    command(agents, "health", _check_health, "call an agent's health path now", common).add_argument(
        "agent", help="a name or id"
    )
