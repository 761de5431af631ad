"""The timer loop fires each due timer once and counts it, with how late it fired."""

from __future__ import annotations

from flowline.messages import ControlMessage, TimerFired, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.timers import TimerLoop
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, read_topic

DEFINITION = {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}


async def test_due_timers_fire_once_and_are_counted(runtime: Runtime, settings: Settings) -> None:
    started = await define_and_start(runtime.pool, settings, "demo.timers", DEFINITION, {})
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    for due in ("now() - interval '2 seconds'", "now() + interval '1 hour'"):
        await runtime.pool.execute(
            "INSERT INTO timers (id, tenant_id, execution_id, kind, fire_at) "
            f"VALUES (gen_random_uuid(), $1, $2, 'execution_timeout', {due})",
            tenant_id,
            started.id,
        )
    registry = CollectorRegistry()
    timers = TimerLoop(runtime.pool, runtime.outbox, settings.topics, SchedulerMetrics(registry), interval_seconds=1)

    assert await timers.fire_due() == 1
    assert await timers.fire_due() == 0  # the one in an hour is not due, the fired one fires no more

    kind = {"kind": "execution_timeout"}
    assert registry.get_sample_value("flowline_timers_fired_total", kind) == 1
    assert registry.get_sample_value("flowline_timer_lateness_seconds_count", kind) == 1
    # It was due two seconds before it fired: only buckets from 2.5 s up hold it.
    assert registry.get_sample_value("flowline_timer_lateness_seconds_bucket", {**kind, "le": "1.0"}) == 0
    assert registry.get_sample_value("flowline_timer_lateness_seconds_bucket", {**kind, "le": "+Inf"}) == 1
    [fired] = await read_topic(settings, settings.topics.control, 1)
    message = decoder(ControlMessage).decode(fired.value)
    assert isinstance(message, TimerFired) and message.execution_id == started.id
