"""UUIDv7 identifiers."""

from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace

import pytest
from flowline.runtime import ids
from flowline.runtime.ids import uuid7


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as if no id had been made yet (ids never go back in time within a process)."""
    monkeypatch.setattr(ids, "_last", (0, 0))


def _milliseconds(value: uuid.UUID) -> int:
    return value.int >> 80


def test_version_and_variant_bits() -> None:
    for _ in range(200):
        value = uuid7()
        assert value.version == 7
        assert value.variant == uuid.RFC_4122


def test_the_timestamp_comes_from_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000_123_456_789))

    assert _milliseconds(uuid7()) == 1_700_000_000_123


def test_ids_from_a_later_millisecond_sort_after(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"ns": 1_700_000_000_000_000_000}
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: now["ns"]))

    earlier = [uuid7() for _ in range(100)]
    now["ns"] += 1_000_000  # one millisecond later
    later = [uuid7() for _ in range(100)]

    assert max(earlier) < min(later)
    assert max(str(value) for value in earlier) < min(str(value) for value in later)  # text sorts the same way


def test_ids_sort_by_creation_time_across_real_milliseconds() -> None:
    created = []
    for _ in range(5):
        created.append(uuid7())
        time.sleep(0.002)

    assert created == sorted(created)


def test_ids_in_the_same_millisecond_are_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000_000_000_000))

    values = {uuid7() for _ in range(1000)}

    assert len(values) == 1000
    assert {_milliseconds(value) for value in values} == {1_700_000_000_000}


def test_ids_in_the_same_millisecond_keep_their_creation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000_000_000_000))

    created = [uuid7() for _ in range(1000)]

    assert created == sorted(created)


def test_a_clock_that_steps_back_does_not_break_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"ns": 1_800_000_000_000_000_000}
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: now["ns"]))
    before = uuid7()
    now["ns"] -= 5_000_000

    assert uuid7() > before


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    uuid7()  # the parent holds random bytes it has not used yet
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child sends its next ids and leaves at once
        os.close(read_end)
        os.write(write_end, b"".join(uuid7().bytes for _ in range(10)))
        os._exit(0)
    os.close(write_end)
    parents = {uuid7().int & (2**74 - 1) for _ in range(10)}
    received = b""
    while chunk := os.read(read_end, 1024):
        received += chunk
    os.close(read_end)
    os.waitpid(child, 0)
    childs = {uuid.UUID(bytes=received[i : i + 16]).int & (2**74 - 1) for i in range(0, len(received), 16)}

    assert len(childs) == 10
    assert not parents & childs  # the random bits differ: no id of one can be the other's
