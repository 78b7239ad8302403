"""uvicorn's httptools protocol plus the header-block extension (``bastion.http.header_block``).

``bastion serve`` runs uvicorn with :class:`HttpToolsProtocol` from here. It is uvicorn's own
protocol: parsing, flow control, keep-alive, pipelining and the body are untouched. Two things
differ:

* each request's scope advertises :data:`~bastion.http.header_block.EXTENSION`;
* a response start that carries a :class:`~bastion.http.header_block.HeaderBlock` under
  :data:`~bastion.http.header_block.MESSAGE_KEY` gets that block written after its ordinary
  headers. The ordinary headers are validated exactly as uvicorn validates them (a pair that
  passed once is remembered, in a bounded table: the checks depend on its bytes alone); the
  block was validated when it was made.

* the status line and headers of such a response are not written at once: they go out in the
  same ``write`` as the first piece of the body (one system call and, on the wire, usually one
  segment per small answer instead of two). An answer's body nearly always follows its start
  within the same step of the task; when it does not (a streaming body that waits), the headers
  are written on their own at the loop's next iteration (``call_soon``), so they are never held
  back longer than that.

The response start and the first body message are uvicorn 0.54's code with the block and the
joined write added (the one place this module follows uvicorn's internals;
``tests/unit/http/test_protocol.py`` compares the bytes both write for the same answers, so an
upgrade that changes them fails there). A message without a block goes to uvicorn's own
``send``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from bastion.http.header_block import EXTENSION, MESSAGE_KEY, HeaderBlock

__all__ = ["HttpToolsProtocol"]

_HEADER_RE = httptools_impl.HEADER_RE
_HEADER_VALUE_RE = httptools_impl.HEADER_VALUE_RE
_STATUS_LINE = httptools_impl.STATUS_LINE
#: A first body piece up to this size is joined to the headers in one write; a larger one
#: follows them in a second write (no copy of a large body just to save a system call).
JOIN_LIMIT = 64 * 1024
_uvicorn_send = httptools_impl.RequestResponseCycle.send
#: Header pairs that passed uvicorn's checks, with their lowercase name; at most this many,
#: values up to this long (headers that echo a client's input only empty it: memory stays
#: bounded, and a pair is checked before it is remembered).
CHECKED_SIZE = 512
CHECKED_MAX_VALUE = 128
_CHECKED: dict[tuple[bytes, bytes], bytes] = {}


def _checked_name(header: Any, name: bytes, value: bytes) -> bytes:
    """uvicorn's checks of one response header; its name in lowercase, as uvicorn writes it.
    The pair is remembered in ``_CHECKED`` when it can be (a tuple of bytes, a short value)."""
    if _HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    if _HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    lowered = name.lower()
    if (
        type(header) is tuple
        and type(name) is bytes
        and type(value) is bytes
        and len(value) <= CHECKED_MAX_VALUE
    ):
        if len(_CHECKED) >= CHECKED_SIZE:
            _CHECKED.clear()
        _CHECKED[header] = lowered
    return lowered


class _Cycle(httptools_impl.RequestResponseCycle):
    """uvicorn's request/response cycle; a response start with a header block is written here."""

    #: Status line and headers written by :meth:`_start`, waiting for the first body piece.
    _head: bytes | None = None
    #: The protocol's loop, set by :class:`HttpToolsProtocol` (``asyncio.get_running_loop()``
    #: compares the process id with a ``getpid`` system call each time).
    _loop: asyncio.AbstractEventLoop | None = None

    # Not a coroutine function: it returns uvicorn's ``send`` awaitable for every message it
    # handles, with no coroutine of its own around it.
    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        head = self._head
        if head is not None:
            self._head = None
            return self._send_first_body(message, head)
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

        checked = _CHECKED
        for header in headers:
            name, value = header
            # The checks are a function of the bytes alone: a pair that passed them once (the
            # Date, Content-Type, Content-Length of most answers) is not checked again.
            try:
                lowered = checked.get(header)
            except TypeError:  # a list, or a bytearray in the pair: checked every time
                lowered = None
            name = _checked_name(header, name, value) if lowered is None else lowered
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
        self._head = b"".join(content)
        (self._loop or asyncio.get_running_loop()).call_soon(self._flush_head)

    async def _send_first_body(self, message: Any, head: bytes) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if not self.disconnected:
            self._first_body(message, head)

    def _flush_head(self) -> None:
        """The body did not follow in the same step: the headers go out on their own."""
        head = self._head
        if head is not None:
            self._head = None
            if not self.disconnected and not self.transport.is_closing():
                self.transport.write(head)

    def _first_body(self, message: Any, head: bytes) -> None:
        # uvicorn 0.54 RequestResponseCycle.send, "http.response.body" branch; the headers are
        # written with the first piece.
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        payload = b""
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            content = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
            if not more_body:
                content.append(b"0\r\n\r\n")
            payload = b"".join(content)
        else:
            num_bytes = len(body)
            if num_bytes > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= num_bytes
            payload = body
        if len(payload) <= JOIN_LIMIT:
            self.transport.write(head + payload)
        else:
            self.transport.write(head)
            self.transport.write(payload)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol whose requests advertise the header-block extension."""

    def _start_asgi_task(self, cycle: httptools_impl.RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = _Cycle
        cycle._loop = self.loop  # type: ignore[attr-defined]  # noqa: SLF001 - our own class
        scope: Any = cycle.scope
        scope["extensions"] = {**scope.get("extensions", {}), EXTENSION: {}}
        super()._start_asgi_task(cycle, app)
