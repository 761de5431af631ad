"""Request ids: which sent ids are kept, and how a log line shows them."""

from __future__ import annotations

import json
import logging

import pytest
from flowline.runtime.ops import JsonLogFormatter
from flowline.runtime.request_ids import accepted_request_id, from_kafka_headers, kafka_headers, request_id_set


@pytest.mark.parametrize("sent", ["abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "x" * 200])
def test_a_sent_id_that_looks_like_one_is_kept(sent: str) -> None:
    assert accepted_request_id(sent) == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 201, "new\nline", "caf\u00e9", " padded "])
def test_anything_else_gets_a_new_id(sent: str | None) -> None:
    made = accepted_request_id(sent)
    assert made != sent and len(made) == 36


def test_kafka_headers_round_trip() -> None:
    assert from_kafka_headers(kafka_headers("req-9")) == "req-9"
    assert kafka_headers(None) == [] and from_kafka_headers([("other", b"x")]) is None


def test_a_json_log_line_names_the_service_the_request_and_the_execution() -> None:
    formatter = JsonLogFormatter("executor")
    record = logging.LogRecord("flowline.test", logging.INFO, __file__, 1, "execution %s done", ("e-1",), None)
    record.execution_id = "e-1"
    with request_id_set("req-7"):
        line = json.loads(formatter.format(record))
    assert line["message"] == "execution e-1 done"
    assert (line["level"], line["service"], line["logger"]) == ("INFO", "executor", "flowline.test")
    assert (line["requestId"], line["executionId"]) == ("req-7", "e-1")
    assert line["time"].endswith("+00:00")
    plain = json.loads(formatter.format(logging.LogRecord("x", logging.WARNING, __file__, 1, "hi", (), None)))
    assert "requestId" not in plain and "executionId" not in plain
