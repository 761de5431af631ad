"""This executor process as its state changes see it: worker id, settings, attempts' work, graphs and slots."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import asyncpg
from flowline.db.workflows import read_version_definition
from flowline.runtime.ids import uuid7
from flowline.settings import Settings

from flowline_executor.attempt_work import AttemptWork
from flowline_executor.graph import Graph

# How many workflow graphs a process keeps before it forgets them all and reads them again.
MAX_GRAPHS = 10_000


class AttemptSlots:
    """How many attempts this process may run at once, the ones it runs, and who waits for room."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy = 0  # attempts claimed by this process and not yet finished
        self.running: dict[asyncio.Task[None], uuid.UUID] = {}  # attempt task → its step execution
        self._freed = asyncio.Condition()

    def try_take(self) -> bool:
        """Take a slot if one is free now (it is given back with ``release``)."""
        if self.busy >= self.capacity:
            return False
        self.busy += 1
        return True

    async def take(self) -> None:
        """Take a slot, waiting for one to be free."""
        async with self._freed:
            await self._freed.wait_for(lambda: self.busy < self.capacity)
            self.busy += 1  # taken now, so that concurrent claims cannot overshoot the capacity

    async def release(self, slots: int) -> None:
        """Give back slots and wake claims waiting for room."""
        if slots:
            async with self._freed:
                self.busy -= slots
                self._freed.notify_all()

    def stop(self, step_execution_ids: set[uuid.UUID]) -> None:
        """Cancel the attempts of these steps that run in this process (an agent or http call is aborted)."""
        for task, step_execution_id in list(self.running.items()):
            if step_execution_id in step_execution_ids:
                task.cancel()


class Executor:
    """What every state change of this process shares; one instance per process."""

    def __init__(self, settings: Settings, work: AttemptWork) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.work = work
        self.worker = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid7().hex[-6:]}"
        self.slots = AttemptSlots(settings.max_concurrent_tasks)
        self._graphs: dict[uuid.UUID, Graph] = {}

    async def graph(self, connection: asyncpg.Connection, version_id: uuid.UUID) -> Graph:
        """The graph of a workflow version (versions are immutable, so a cached graph never goes stale)."""
        graph = self._graphs.get(version_id)
        if graph is None:
            graph = Graph(await read_version_definition(connection, version_id))
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.clear()
            self._graphs[version_id] = graph
        return graph
