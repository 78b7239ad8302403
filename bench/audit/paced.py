"""A paced, open-schedule HTTP/1.1 load whose requests are timed one by one, per path.

Request ``k`` of a phase is due at ``start + k / rate`` and goes to connection ``k % connections``
(keep-alive, one request at a time per connection, no pipelining). A connection still waiting
for its previous answer sends late; :attr:`Phase.lag` keeps how late each request left, so a run
can show that the schedule held. Latency is client-side: ``time.perf_counter`` (monotonic) just
before the request is written to just after its last byte is read, in an ``asyncio.Protocol``
(no stream reader in between). The caller runs it in a process pinned off the server's CPU.

:func:`interleaved_order` alternates two paths in pairs, slots ``2j`` and ``2j + 1``, in an order
drawn per pair from a seeded generator: balanced (one of each per pair), and with the two members
``1 / rate`` seconds apart they see the same machine state.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import cast

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


class _Client(asyncio.Protocol):
    """One keep-alive connection that times each request from write to the answer's last byte."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, float]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # a TCP connection's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.answer is None:
            return
        length = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
        if length is None:  # every route measured answers with a JSON body
            self.answer.set_exception(ConnectionError("answer without content-length"))
            return
        size = end + 4 + int(length.group(1))
        if len(self.buffer) >= size:
            done = time.perf_counter()
            status = int(self.buffer[9:12])
            del self.buffer[:size]
            self.answer.set_result((status, done))
            self.answer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("server closed the connection"))

    async def request(self, raw: bytes) -> tuple[int, float]:
        """Send ``raw``; return the status and the seconds until the answer's last byte."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.answer = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        self.transport.write(raw)
        status, done = await self.answer
        return status, done - start


@dataclass
class Phase:
    """Everything one phase saw, request by request (index = slot)."""

    paths: list[str]
    seconds: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    #: How late each request was sent, in seconds after it was due.
    lag: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def latencies(self, path: str) -> list[float]:
        """Latencies (s) of the answered (2xx) requests to ``path``."""
        return [
            s
            for p, s, code in zip(self.paths, self.seconds, self.status, strict=True)
            if p == path and 200 <= code < 300
        ]

    def pairs(self, base: str, other: str) -> list[tuple[float, float]]:
        """``(base, other)`` latencies of each pair of slots whose two requests got a 2xx."""
        result = []
        for j in range(0, len(self.paths) - 1, 2):
            if not all(200 <= self.status[i] < 300 for i in (j, j + 1)):
                continue
            by_path = {self.paths[j]: self.seconds[j], self.paths[j + 1]: self.seconds[j + 1]}
            if by_path.keys() == {base, other}:
                result.append((by_path[base], by_path[other]))
        return result

    @property
    def failed(self) -> int:
        return sum(not 200 <= code < 300 for code in self.status)


def interleaved_order(requests: int, paths: tuple[str, str], seed: int) -> list[str]:
    """``requests`` paths (rounded down to pairs), each pair holding both paths in random order."""
    rng = random.Random(seed)
    order: list[str] = []
    for _ in range(requests // 2):
        order += paths if rng.random() < 0.5 else paths[::-1]
    return order


def single_order(requests: int, path: str) -> list[str]:
    return [path] * requests


async def run_phase(port: int, rate: float, connections: int, order: list[str]) -> Phase:
    """Send ``order[k]`` at ``start + k / rate`` on connection ``k % connections``."""
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(_Client, "127.0.0.1", port)
        clients.append(client)
    raw = {
        path: f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for path in set(order)
    }
    phase = Phase(list(order), [0.0] * len(order), [0] * len(order), [0.0] * len(order))
    start = time.perf_counter() + 0.05

    async def connection(n: int) -> None:
        for k in range(n, len(order), connections):
            due = start + k / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            phase.lag[k] = time.perf_counter() - due
            phase.status[k], phase.seconds[k] = await clients[n].request(raw[order[k]])

    try:
        await asyncio.gather(*(connection(n) for n in range(connections)))
    finally:
        for client in clients:
            if client.transport is not None:
                client.transport.close()
    phase.elapsed = time.perf_counter() - start  # from the first request's due time
    return phase
