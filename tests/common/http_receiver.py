"""A tiny real HTTP/1.1 server on localhost for outbound tests (webhook receivers).

It answers each request with the next status of ``statuses`` (the last repeats) and keeps every
request it received (method, path, headers, body) in ``requests``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=lambda: [200])
    #: Extra response header lines, e.g. ``"Retry-After: 30\r\n"``.
    extra_headers: str = ""
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook", host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            status = self.statuses[min(len(self.requests) - 1, len(self.statuses) - 1)]
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n"
                f"{self.extra_headers}\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def http_receiver(
    statuses: list[int] | None = None, extra_headers: str = ""
) -> AsyncIterator[Receiver]:
    """A receiver listening on every address of ``localhost`` (127.0.0.1 and ::1 if present)."""
    receiver = Receiver(port=0, statuses=statuses or [200], extra_headers=extra_headers)
    server = await asyncio.start_server(receiver.handle, host="localhost", port=0)
    receiver.port = server.sockets[0].getsockname()[1]
    # Several sockets (v4/v6) share the first one's port only if the OS gave the same one:
    # listen on 127.0.0.1 alone when they differ.
    if len({s.getsockname()[1] for s in server.sockets}) > 1:
        server.close()
        await server.wait_closed()
        server = await asyncio.start_server(receiver.handle, host="127.0.0.1", port=0)
        receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
