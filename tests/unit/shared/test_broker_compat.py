"""The broker switch: workarounds for the local broker (Tansu), aiokafka's plain path on Apache Kafka."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.structs import TopicPartition
from flowline.kafka.compat import PLAIN_FETCH_MAX_WAIT_MS, FetchWait, broker_for
from flowline.kafka.parking import Doorbell
from flowline.settings import ConfigurationError, load_settings

PARTITION = TopicPartition("flowline.events", 0)
SETTINGS = load_settings({"FLOWLINE_KAFKA_FETCH_MAX_WAIT_MS": "4", "FLOWLINE_KAFKA_BUSY_FETCH_MAX_WAIT_MS": "10"})
# Apache Kafka, with every workaround's setting asking for it: none of them is read.
KAFKA = load_settings(
    {
        "FLOWLINE_KAFKA_BROKER": "kafka",
        "FLOWLINE_KAFKA_FETCH_MAX_WAIT_MS": "4",
        "FLOWLINE_KAFKA_BUSY_FETCH_MAX_WAIT_MS": "10",
        "FLOWLINE_KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS": "100",
        "FLOWLINE_KAFKA_IDLE_PARK_SECONDS": "0.001",
        "FLOWLINE_KAFKA_LOST_PARTITION_SECONDS": "0.001",
    }
)


def _consumer(wait_ms: int) -> Any:
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=wait_ms))


def _records(*keys: bytes) -> dict[TopicPartition, list[Any]]:
    return {PARTITION: [SimpleNamespace(key=key) for key in keys]}


def test_messages_of_several_executions_make_the_next_fetches_long() -> None:
    consumer = _consumer(4)
    FetchWait(consumer, SETTINGS).after(_records(b"a", b"a", b"b"))

    assert consumer._fetcher._fetch_max_wait_ms == 10


def test_one_executions_messages_or_none_keep_them_short() -> None:
    consumer = _consumer(10)
    fetch_wait = FetchWait(consumer, SETTINGS)

    fetch_wait.after(_records(b"a", b"a", b"a"))  # an execution's events come together
    assert consumer._fetcher._fetch_max_wait_ms == 4
    fetch_wait.after(_records(b"a", b"b"))
    fetch_wait.after({})
    assert consumer._fetcher._fetch_max_wait_ms == 4


def test_aiokafka_still_builds_each_fetch_request_with_the_fetchers_wait() -> None:
    # FetchWait sets a private attribute: if an upgrade of aiokafka stops reading it, this fails.
    source = inspect.getsource(Fetcher._get_actions_per_node)

    assert "FetchRequest(" in source
    assert "self._fetch_max_wait_ms" in source


def test_the_local_broker_is_the_default_and_its_fetch_waits_come_from_the_settings() -> None:
    broker = broker_for(load_settings({}))

    assert load_settings({}).kafka_broker == "tansu"
    assert broker.fetch_max_wait_ms() == 4
    assert broker.fetch_max_wait_ms(background=True) == 100
    assert isinstance(broker.doorbell(pool=None), Doorbell)  # type: ignore[arg-type]


async def test_on_the_local_broker_a_consumer_switches_its_fetch_wait() -> None:
    consumer = _consumer(4)
    consumer.assignment = set  # nothing assigned: nothing lost
    workarounds = broker_for(SETTINGS).consumer_workarounds(consumer)

    assert await workarounds.before_fetch(200) == 200  # nothing assigned, nothing to park on
    workarounds.after_fetch(_records(b"a", b"b"))
    assert consumer._fetcher._fetch_max_wait_ms == 10


async def test_on_apache_kafka_a_consumer_runs_the_plain_path() -> None:
    broker = broker_for(KAFKA)
    consumer = _consumer(PLAIN_FETCH_MAX_WAIT_MS)  # with no assignment(), pause() or seek(): any use would raise
    workarounds = broker.consumer_workarounds(consumer, parking_topics=["flowline.events"])

    assert broker.fetch_max_wait_ms() == broker.fetch_max_wait_ms(background=True) == PLAIN_FETCH_MAX_WAIT_MS == 500
    assert await workarounds.before_fetch(200) == 200  # no park, no look for lost partitions
    workarounds.after_fetch(_records(b"a", b"b"))
    workarounds.after_fetch({})
    assert consumer._fetcher._fetch_max_wait_ms == PLAIN_FETCH_MAX_WAIT_MS
    assert broker.doorbell(pool=None) is None  # type: ignore[arg-type]  # publishers never ring


def test_an_unknown_broker_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="FLOWLINE_KAFKA_BROKER='redpanda'"):
        load_settings({"FLOWLINE_KAFKA_BROKER": "redpanda"})
