"""A network backend for unit tests: records every connection, answers with canned bytes."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: list[bytes], backend: RecordingBackend) -> None:
        super().__init__(buffer)
        self._backend = backend

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ARG002, ASYNC109
        self._backend.sent.append(buffer)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,  # noqa: ARG002
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ARG002, ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        self._backend.sni.append(server_hostname)
        return self


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """``connected`` lists the (address, port) of every connection; each one gets a copy of the
    next canned answer (the last repeats)."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers) or [ok()]
        self.connected: list[tuple[str, int]] = []
        self.sni: list[str | None] = []
        self.sent: list[bytes] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ARG002, ASYNC109
        local_address: str | None = None,  # noqa: ARG002
        socket_options: Iterable[Any] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        answer = self.answers[min(len(self.connected) - 1, len(self.answers) - 1)]
        return RecordingStream([answer], self)

    async def sleep(self, seconds: float) -> None:  # noqa: ARG002
        return None


def ok(body: bytes = b"ok", *, headers: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def redirect(location: str) -> bytes:
    return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
