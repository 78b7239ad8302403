"""uvicorn's httptools protocol plus the header-block extension (``bastion.http.header_block``).

``bastion serve`` runs uvicorn with :class:`HttpToolsProtocol` from here. It is uvicorn's own
protocol: parsing, flow control, keep-alive, pipelining and the body are untouched. Two things
differ:

* each request's scope advertises :data:`~bastion.http.header_block.EXTENSION`;
* a response start that carries a :class:`~bastion.http.header_block.HeaderBlock` under
  :data:`~bastion.http.header_block.MESSAGE_KEY` gets that block written after its ordinary
  headers. The ordinary headers are validated exactly as uvicorn validates them; the block was
  validated when it was made, once.

The response start is uvicorn 0.54's code with the block added (the one place this module
follows uvicorn's internals; ``tests/unit/http/test_protocol.py`` compares the bytes both write
for the same answers, so an upgrade that changes them fails there). A message without a block
goes to uvicorn's own ``send``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from bastion.http.header_block import EXTENSION, MESSAGE_KEY, HeaderBlock

__all__ = ["HttpToolsProtocol"]

_HEADER_RE = httptools_impl.HEADER_RE
_HEADER_VALUE_RE = httptools_impl.HEADER_VALUE_RE
_STATUS_LINE = httptools_impl.STATUS_LINE
_uvicorn_send = httptools_impl.RequestResponseCycle.send


class _Cycle(httptools_impl.RequestResponseCycle):
    """uvicorn's request/response cycle; a response start with a header block is written here."""

    # Not a coroutine function: it returns uvicorn's ``send`` awaitable for every other message
    # (the response body above all), with no coroutine of its own around it.
    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        if self.response_started or type(message.get(MESSAGE_KEY)) is not HeaderBlock:
            return _uvicorn_send(self, message)
        return self._send_with_block(message)

    async def _send_with_block(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if message["type"] != "http.response.start":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
            )
        self._start(message)

    def _start(self, message: Any) -> None:
        # uvicorn 0.54 RequestResponseCycle.send, "http.response.start" branch, plus the block.
        self.response_started = True
        self.waiting_for_100_continue = False

        status_code = message["status"]
        headers = self.default_headers + list(message.get("headers", []))

        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status_code,
            )

        content = [_STATUS_LINE[status_code]]
        has_connection_close = False

        for name, value in headers:
            if _HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if _HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")

            name = name.lower()  # noqa: PLW2901 - as uvicorn does
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])

        content.append(message[MESSAGE_KEY])  # validated when made (HeaderBlock.of)

        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")

        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")

        content.append(b"\r\n")
        self.transport.write(b"".join(content))


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol whose requests advertise the header-block extension."""

    def _start_asgi_task(self, cycle: httptools_impl.RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = _Cycle
        scope: Any = cycle.scope
        scope["extensions"] = {**scope.get("extensions", {}), EXTENSION: {}}
        super()._start_asgi_task(cycle, app)
