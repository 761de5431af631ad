"""A proxy in front of the bench's broker that counts the Kafka requests clients send, by kind (Produce, Fetch…).

The broker keeps no such counts. Clients bootstrap through the proxy, and the proxy rewrites the broker's
address in Metadata and FindCoordinator answers to its own (the same number of bytes: the port only), so every
later connection comes through it too. It runs in a thread with an event loop of its own.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections import Counter

from flowline_devstack.ports import free_port

HOST = "127.0.0.1"
#: The request kinds (Kafka API keys) the stack sends; others are counted by number.
API_NAMES = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    18: "ApiVersions",
    19: "CreateTopics",
}


async def _frames(reader: asyncio.StreamReader) -> bytes:
    """The next size-prefixed Kafka frame, size included (IncompleteReadError at the end of the stream)."""
    head = await reader.readexactly(4)
    return head + await reader.readexactly(struct.unpack(">i", head)[0])


class KafkaRequestCounter:
    """Counts the requests passing to a broker on ``127.0.0.1:upstream_port``; clients use ``bootstrap``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: Counter[str] = Counter()
        self._upstream_port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-request-counter", daemon=True)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, HOST, self.port), self._loop).result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def snapshot(self) -> Counter[str]:
        return Counter(self.requests)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection(HOST, self._upstream_port)
        theirs = HOST.encode() + struct.pack(">i", self._upstream_port)
        ours = HOST.encode() + struct.pack(">i", self.port)

        async def requests() -> None:
            while True:
                frame = await _frames(client_reader)
                api_key = struct.unpack(">h", frame[4:6])[0]
                self.requests[API_NAMES.get(api_key, f"api {api_key}")] += 1
                broker_writer.write(frame)

        async def answers() -> None:
            while True:
                client_writer.write((await _frames(broker_reader)).replace(theirs, ours))

        pumps = [asyncio.create_task(requests()), asyncio.create_task(answers())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)  # one side closed its connection
        for pump in pumps:
            pump.cancel()
        for writer in (client_writer, broker_writer):
            writer.close()
