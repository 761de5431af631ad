"""Every service's metrics parse as Prometheus exposition and move with work; readiness follows the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from flowline.db.migrate import ensure_tenant, upgrade_head
from flowline_devstack import SERVICE_NAMES
from flowline_devstack.errors import PostgresError
from flowline_devstack.postgres import PrivatePostgres, find_bindir
from flowline_devstack.processes import ServiceGroup
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port
from tests.stacks import Servers, own_stack_env
from tests.support import api_key, bearer, define, eventually

Labels = tuple[tuple[str, str], ...]

DEFINITION = {
    "steps": [
        {"id": "say", "type": "action", "action": "core.log", "input": {"message": "hello"}},
        {"id": "nap", "type": "sleep", "duration": "100ms", "needs": ["say"]},
    ]
}


async def _scrape(http: httpx.AsyncClient, url: str) -> dict[str, dict[Labels, float]]:
    """Every sample of the service at ``url``, by name and sorted labels; fails unless it parses."""
    response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` that carry ``labels`` (0 before the first)."""
    wanted = set(labels.items())
    return sum(value for sample_labels, value in samples.get(name, {}).items() if wanted <= set(sample_labels))


async def test_every_service_serves_metrics_that_move_with_work(
    stack: ServiceGroup, api_url: str, api_headers: dict[str, str]
) -> None:
    urls = {name: stack[name].url for name in SERVICE_NAMES}
    async with httpx.AsyncClient(timeout=10) as http:
        before = {name: await _scrape(http, url) for name, url in urls.items()}
        for name, url in urls.items():
            assert (await http.get(f"{url}/health")).status_code == 200
            ready = await http.get(f"{url}/health/ready")
            assert ready.status_code == 200, ready.text
            # The background services are ready once their consumers have joined their groups too.
            consumers = {} if name == "api" else {"consumers": "ok"}
            assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", **consumers}

        async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as api:
            assert (await define(api, {"ref": "demo.observed", "definition": DEFINITION})).status_code == 201
            accepted = await api.post("/workflows/demo.observed/execute", json={"input": {}})
            assert accepted.status_code == 202, accepted.text
            execution_id = accepted.json()["executionId"]

            async def completed() -> bool:
                return (await api.get(f"/executions/{execution_id}")).json()["status"] == "completed"

            await eventually(completed, timeout=60)

        after: dict[str, dict[str, dict[Labels, float]]] = {}

        async def logs_ingested() -> bool:
            after["log-ingest"] = await _scrape(http, urls["log-ingest"])
            return _value(after["log-ingest"], "flowline_task_log_records_total", outcome="written") > 0

        await eventually(logs_ingested)
        for name in ("api", "executor", "scheduler"):
            after[name] = await _scrape(http, urls[name])

    def moved(service: str, name: str, **labels: str) -> bool:
        return _value(after[service], name, **labels) > _value(before[service], name, **labels)

    execute = "/api/v1/tenants/{tenant}/workflows/{ref}/execute"
    assert moved("api", "flowline_http_requests_total", path=execute, method="POST", status_code="202")
    assert moved("api", "flowline_http_request_duration_seconds_count", path=execute)
    assert moved("executor", "flowline_executions_started_total")
    assert moved("executor", "flowline_executions_finished_total", status="completed")
    assert moved("executor", "flowline_execution_duration_seconds_count", status="completed")
    for step_type in ("action", "sleep"):
        assert moved("executor", "flowline_steps_started_total", step_type=step_type)
        assert moved("executor", "flowline_steps_finished_total", step_type=step_type, status="completed")
    assert moved("executor", "flowline_step_attempts_total", step_type="action", outcome="completed")
    assert moved("executor", "flowline_messages_consumed_total", consumer="executor", outcome="ok")
    assert moved("scheduler", "flowline_timers_fired_total", kind="sleep")
    assert moved("scheduler", "flowline_timer_lateness_seconds_count", kind="sleep")
    assert moved("log-ingest", "flowline_task_log_batch_records_count")
    # Each consumer reports its lag on the topic it follows (a number, whatever it is at this moment).
    assert "flowline_consumer_lag_messages" in after["log-ingest"]
    assert "flowline_outbox_backlog_messages" in after["executor"]


async def _readiness(http: httpx.AsyncClient, stack: ServiceGroup) -> dict[str, tuple[int, Any]]:
    answers = {}
    for name in SERVICE_NAMES:
        response = await http.get(f"{stack[name].url}/health/ready")
        answers[name] = (response.status_code, response.json())
    return answers


async def test_readiness_and_the_api_follow_the_database_down_and_back(servers: Servers, tmp_path: Path) -> None:
    # The suite's PostgreSQL server is shared by every test, so this one stops a server of its own: a real
    # outage (connections refused, sessions cut), which refusing connections to one database would only mimic.
    try:
        find_bindir()
    except PostgresError:
        pytest.skip("needs PostgreSQL's server binaries to run a server it can stop")
    postgres = PrivatePostgres.temporary(free_port())
    await asyncio.to_thread(postgres.start)
    try:
        await asyncio.to_thread(upgrade_head, postgres.url)
        await asyncio.to_thread(ensure_tenant, postgres.url, "dev")
        headers = bearer(await api_key(postgres.url))
        # A stack of its own (ports, topics, consumer groups), apart from the module's shared one.
        env = own_stack_env(servers, postgres.url)
        with ServiceGroup(env, log_dir=tmp_path) as stack:
            executions = f"{stack['api'].url}/api/v1/tenants/dev/executions"
            async with httpx.AsyncClient(headers=headers, timeout=10) as http:

                async def all_ready() -> bool:
                    return all(status == 200 for status, _ in (await _readiness(http, stack)).values())

                await eventually(all_ready)  # the consumers join their groups after /health answers
                assert (await http.get(executions)).status_code == 200

                await asyncio.to_thread(postgres.stop)

                async def all_unready() -> bool:
                    return all(status == 503 for status, _ in (await _readiness(http, stack)).values())

                await eventually(all_unready, timeout=30)
                for name, (_, body) in (await _readiness(http, stack)).items():
                    assert body["status"] == "unavailable", name
                    assert body["checks"]["database"].startswith("down"), (name, body)
                    assert body["checks"]["kafka"] == "ok", (name, body)
                down = await http.get(executions)
                assert down.status_code == 503, down.text
                assert down.headers["content-type"].startswith("application/problem+json")
                assert down.json()["status"] == 503

                await asyncio.to_thread(postgres.start)
                await eventually(all_ready, timeout=60)
                assert (await http.get(executions)).status_code == 200
    finally:
        await asyncio.to_thread(postgres.remove)
