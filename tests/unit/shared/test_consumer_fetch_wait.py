"""FetchWait: short fetches while one execution's messages come at a time, long ones under load."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from aiokafka.structs import TopicPartition
from flowline.kafka.consumer import FetchWait
from flowline.settings import load_settings

PARTITION = TopicPartition("flowline.events", 0)
SETTINGS = load_settings({"FLOWLINE_KAFKA_FETCH_MAX_WAIT_MS": "4", "FLOWLINE_KAFKA_BUSY_FETCH_MAX_WAIT_MS": "10"})


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
