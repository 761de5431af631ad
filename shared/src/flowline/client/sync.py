"""The blocking client: each method runs its ``AsyncFlowlineClient`` twin on the client's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from flowline.client._async import AsyncFlowlineClient

Params = ParamSpec("Params")
Result = TypeVar("Result")


class _Blocking(Generic[Params, Result]):
    """An ``AsyncFlowlineClient`` coroutine method, exposed on ``FlowlineClient`` as a blocking call."""

    def __init__(self, method: Callable[Concatenate[AsyncFlowlineClient, Params], Coroutine[Any, Any, Result]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    def __get__(self, client: FlowlineClient, owner: type[FlowlineClient]) -> Callable[Params, Result]:
        def call(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            return client._runner.run(self._method(client.aio, *args, **kwargs))

        return call


class _BlockingIterator(Generic[Params, Result]):
    """An ``AsyncFlowlineClient`` async-iterator method, exposed on ``FlowlineClient`` as an iterator."""

    def __init__(self, method: Callable[Concatenate[AsyncFlowlineClient, Params], AsyncIterator[Result]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    def __get__(self, client: FlowlineClient, owner: type[FlowlineClient]) -> Callable[Params, Iterator[Result]]:
        def iterate(*args: Params.args, **kwargs: Params.kwargs) -> Iterator[Result]:
            items = self._method(client.aio, *args, **kwargs)
            try:
                while True:
                    try:
                        yield client._runner.run(_next(items))
                    except StopAsyncIteration:
                        return
            finally:
                # An iterator left early still closes its response (and its connection) on the client's loop.
                client._runner.run(_close(items))

        return iterate


async def _close(items: AsyncIterator[Any]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def _next(items: AsyncIterator[Result]) -> Result:
    return await anext(items)


A = AsyncFlowlineClient


class FlowlineClient:
    """The blocking twin of ``AsyncFlowlineClient``: the same methods and arguments, without ``await``.

    Not for use inside a running event loop (use ``AsyncFlowlineClient`` there).
    """

    def __init__(
        self,
        api_url: str,
        tenant: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # One loop for the client's life: the async client's connections belong to the loop that opened them.
        self._runner = asyncio.Runner()
        self.aio = AsyncFlowlineClient(api_url, tenant, api_key, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connections and the client's event loop."""
        try:
            self._runner.run(self.aio.aclose())
        finally:
            self._runner.close()

    def __enter__(self) -> FlowlineClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    list_packs = _Blocking(A.list_packs)
    iter_packs = _BlockingIterator(A.iter_packs)
    get_pack = _Blocking(A.get_pack)
    create_pack = _Blocking(A.create_pack)
    install_pack = _Blocking(A.install_pack)
    delete_pack = _Blocking(A.delete_pack)

    list_workflows = _Blocking(A.list_workflows)
    iter_workflows = _BlockingIterator(A.iter_workflows)
    get_workflow = _Blocking(A.get_workflow)
    list_workflow_versions = _Blocking(A.list_workflow_versions)
    create_workflow = _Blocking(A.create_workflow)
    update_workflow = _Blocking(A.update_workflow)
    apply_workflow = _Blocking(A.apply_workflow)
    set_workflow_enabled = _Blocking(A.set_workflow_enabled)
    delete_workflow = _Blocking(A.delete_workflow)
    execute_workflow = _Blocking(A.execute_workflow)

    list_executions = _Blocking(A.list_executions)
    iter_executions = _BlockingIterator(A.iter_executions)
    get_execution = _Blocking(A.get_execution)
    get_steps = _Blocking(A.get_steps)
    get_events = _Blocking(A.get_events)
    get_children = _Blocking(A.get_children)
    get_task_attempts = _Blocking(A.get_task_attempts)
    cancel_execution = _Blocking(A.cancel_execution)
    pause_execution = _Blocking(A.pause_execution)
    resume_execution = _Blocking(A.resume_execution)
    retry_execution = _Blocking(A.retry_execution)
    rerun_execution = _Blocking(A.rerun_execution)
    resolve_promise = _Blocking(A.resolve_promise)
    reject_promise = _Blocking(A.reject_promise)

    get_execution_logs = _Blocking(A.get_execution_logs)
    download_execution_logs = _BlockingIterator(A.download_execution_logs)
    get_task = _Blocking(A.get_task)
    get_task_logs = _Blocking(A.get_task_logs)
    stream_execution = _BlockingIterator(A.stream_execution)
    stream_task = _BlockingIterator(A.stream_task)

    list_agents = _Blocking(A.list_agents)
    iter_agents = _BlockingIterator(A.iter_agents)
    get_agent = _Blocking(A.get_agent)
    create_agent = _Blocking(A.create_agent)
    update_agent = _Blocking(A.update_agent)
    delete_agent = _Blocking(A.delete_agent)
    check_agent_health = _Blocking(A.check_agent_health)

    bulk_cancel = _Blocking(A.bulk_cancel)
    bulk_retry = _Blocking(A.bulk_retry)
    get_bulk_operation = _Blocking(A.get_bulk_operation)
    list_audit_logs = _Blocking(A.list_audit_logs)
    iter_audit_logs = _BlockingIterator(A.iter_audit_logs)
