"""The blocking client: each method runs its ``AsyncFlowlineClient`` twin on the client's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from flowline_client._async import AsyncFlowlineClient

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

    list_packs = _Blocking(AsyncFlowlineClient.list_packs)
    iter_packs = _BlockingIterator(AsyncFlowlineClient.iter_packs)
    get_pack = _Blocking(AsyncFlowlineClient.get_pack)
    create_pack = _Blocking(AsyncFlowlineClient.create_pack)
    install_pack = _Blocking(AsyncFlowlineClient.install_pack)
    list_pack_workflows = _Blocking(AsyncFlowlineClient.list_pack_workflows)
    delete_pack = _Blocking(AsyncFlowlineClient.delete_pack)

    list_workflows = _Blocking(AsyncFlowlineClient.list_workflows)
    iter_workflows = _BlockingIterator(AsyncFlowlineClient.iter_workflows)
    get_workflow = _Blocking(AsyncFlowlineClient.get_workflow)
    list_workflow_versions = _Blocking(AsyncFlowlineClient.list_workflow_versions)
    iter_workflow_versions = _BlockingIterator(AsyncFlowlineClient.iter_workflow_versions)
    create_workflow = _Blocking(AsyncFlowlineClient.create_workflow)
    update_workflow = _Blocking(AsyncFlowlineClient.update_workflow)
    apply_workflow = _Blocking(AsyncFlowlineClient.apply_workflow)
    delete_workflow = _Blocking(AsyncFlowlineClient.delete_workflow)
    execute_workflow = _Blocking(AsyncFlowlineClient.execute_workflow)

    start_execution = _Blocking(AsyncFlowlineClient.start_execution)
    list_executions = _Blocking(AsyncFlowlineClient.list_executions)
    iter_executions = _BlockingIterator(AsyncFlowlineClient.iter_executions)
    get_execution = _Blocking(AsyncFlowlineClient.get_execution)
    get_steps = _Blocking(AsyncFlowlineClient.get_steps)
    get_events = _Blocking(AsyncFlowlineClient.get_events)
    get_children = _Blocking(AsyncFlowlineClient.get_children)
    get_task_attempts = _Blocking(AsyncFlowlineClient.get_task_attempts)
    cancel_execution = _Blocking(AsyncFlowlineClient.cancel_execution)
    pause_execution = _Blocking(AsyncFlowlineClient.pause_execution)
    resume_execution = _Blocking(AsyncFlowlineClient.resume_execution)
    retry_execution = _Blocking(AsyncFlowlineClient.retry_execution)
    preview_retry = _Blocking(AsyncFlowlineClient.preview_retry)
    rerun_execution = _Blocking(AsyncFlowlineClient.rerun_execution)
    preview_rerun = _Blocking(AsyncFlowlineClient.preview_rerun)
    resolve_promise = _Blocking(AsyncFlowlineClient.resolve_promise)
    reject_promise = _Blocking(AsyncFlowlineClient.reject_promise)

    get_execution_logs = _Blocking(AsyncFlowlineClient.get_execution_logs)
    download_execution_logs = _BlockingIterator(AsyncFlowlineClient.download_execution_logs)
    get_task = _Blocking(AsyncFlowlineClient.get_task)
    get_task_logs = _Blocking(AsyncFlowlineClient.get_task_logs)
    stream_execution = _BlockingIterator(AsyncFlowlineClient.stream_execution)
    stream_task = _BlockingIterator(AsyncFlowlineClient.stream_task)

    list_agents = _Blocking(AsyncFlowlineClient.list_agents)
    iter_agents = _BlockingIterator(AsyncFlowlineClient.iter_agents)
    get_agent = _Blocking(AsyncFlowlineClient.get_agent)
    create_agent = _Blocking(AsyncFlowlineClient.create_agent)
    update_agent = _Blocking(AsyncFlowlineClient.update_agent)
    delete_agent = _Blocking(AsyncFlowlineClient.delete_agent)
    check_agent_health = _Blocking(AsyncFlowlineClient.check_agent_health)

    bulk_cancel = _Blocking(AsyncFlowlineClient.bulk_cancel)
    bulk_retry = _Blocking(AsyncFlowlineClient.bulk_retry)
    get_bulk_operation = _Blocking(AsyncFlowlineClient.get_bulk_operation)
    delete_execution = _Blocking(AsyncFlowlineClient.delete_execution)
    bulk_delete = _Blocking(AsyncFlowlineClient.bulk_delete)
    list_audit_logs = _Blocking(AsyncFlowlineClient.list_audit_logs)
    iter_audit_logs = _BlockingIterator(AsyncFlowlineClient.iter_audit_logs)

    list_schedules = _Blocking(AsyncFlowlineClient.list_schedules)
    iter_schedules = _BlockingIterator(AsyncFlowlineClient.iter_schedules)
    get_schedule = _Blocking(AsyncFlowlineClient.get_schedule)
    create_schedule = _Blocking(AsyncFlowlineClient.create_schedule)
    update_schedule = _Blocking(AsyncFlowlineClient.update_schedule)
    delete_schedule = _Blocking(AsyncFlowlineClient.delete_schedule)
    pause_schedule = _Blocking(AsyncFlowlineClient.pause_schedule)
    resume_schedule = _Blocking(AsyncFlowlineClient.resume_schedule)
    trigger_schedule = _Blocking(AsyncFlowlineClient.trigger_schedule)
    backfill_schedule = _Blocking(AsyncFlowlineClient.backfill_schedule)
    preview_backfill = _Blocking(AsyncFlowlineClient.preview_backfill)

    list_api_keys = _Blocking(AsyncFlowlineClient.list_api_keys)
    create_api_key = _Blocking(AsyncFlowlineClient.create_api_key)
    revoke_api_key = _Blocking(AsyncFlowlineClient.revoke_api_key)

    list_webhooks = _Blocking(AsyncFlowlineClient.list_webhooks)
    iter_webhooks = _BlockingIterator(AsyncFlowlineClient.iter_webhooks)
    get_webhook = _Blocking(AsyncFlowlineClient.get_webhook)
    create_webhook = _Blocking(AsyncFlowlineClient.create_webhook)
    update_webhook = _Blocking(AsyncFlowlineClient.update_webhook)
    delete_webhook = _Blocking(AsyncFlowlineClient.delete_webhook)
    rotate_webhook_secret = _Blocking(AsyncFlowlineClient.rotate_webhook_secret)
    test_webhook = _Blocking(AsyncFlowlineClient.test_webhook)
    list_webhook_deliveries = _Blocking(AsyncFlowlineClient.list_webhook_deliveries)
    iter_webhook_deliveries = _BlockingIterator(AsyncFlowlineClient.iter_webhook_deliveries)
    retry_webhook_delivery = _Blocking(AsyncFlowlineClient.retry_webhook_delivery)
