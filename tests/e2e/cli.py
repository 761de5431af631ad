"""Running the `flowline` command against the shared stack, as a user would after `source .flowline/dev.env`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from flowline_client import AsyncFlowlineClient
from flowline_client.cli import main
from flowline_devstack.processes import ServiceGroup

FLOWLINE = str(Path(sys.executable).with_name("flowline"))  # the console script `uv sync` installs


class Cli:
    """Runs ``flowline`` as a subprocess configured by the environment (no config file)."""

    def __init__(self, stack: ServiceGroup, tenant: str, api_headers: dict[str, str], home: Path) -> None:
        self.api_url = stack["api"].url
        self.tenant = tenant
        self.key = api_headers["Authorization"].removeprefix("Bearer ")
        self.env = {
            "PATH": str(Path(sys.executable).parent),
            "FLOWLINE_API_URL": self.api_url,
            "FLOWLINE_TENANT": tenant,
            "FLOWLINE_API_KEY": self.key,
            "FLOWLINE_CONFIG": str(home / "absent.toml"),
        }

    def client(self) -> AsyncFlowlineClient:
        """The Python client with the same credentials."""
        return AsyncFlowlineClient(self.api_url, self.tenant, self.key)

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """The command started, its output piped."""
        return await asyncio.create_subprocess_exec(
            FLOWLINE, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        """The command's exit code, stdout and stderr, run by the CLI's ``main`` in this process.

        Each subprocess would cost an interpreter start; ``start`` (and the newcomer test) still run the
        installed console script. One command at a time: stdout and stderr are redirected process-wide.
        """
        return await asyncio.to_thread(self._run, list(args))

    def _run(self, argv: list[str]) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv, self.env)
        return code, stdout.getvalue(), stderr.getvalue()

    async def subprocess(self, *args: str) -> tuple[int, str, str]:
        """The command's exit code, stdout and stderr, run as the installed ``flowline`` console script."""
        process = await self.start(*args)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def ok(self, *args: str) -> str:
        """The stdout of a command that must succeed."""
        code, stdout, stderr = await self(*args)
        assert code == 0, stderr
        return stdout

    async def json(self, *args: str) -> Any:
        """The JSON document a command prints with ``--output json``."""
        return json.loads(await self.ok(*args, "--output", "json"))


async def step_is(client: AsyncFlowlineClient, execution_id: str, step_id: str, status: str) -> bool:
    """Whether the execution's step has that status now (for ``tests.support.eventually``)."""
    return any(step.step_id == step_id and step.status == status for step in await client.get_steps(execution_id))


async def execution_is(client: AsyncFlowlineClient, execution_id: str, status: str) -> bool:
    """Whether the execution has that status now."""
    return (await client.get_execution(execution_id)).status == status
