"""A request id on every request: in ``scope["state"]``, in the logs, on every response.

An inbound ``X-Request-ID`` (from a load balancer, or a client correlating its own calls) is kept
only when it is 1..64 characters of ``[A-Za-z0-9._-]``. Anything else, or the header sent twice,
is replaced by a fresh random id and never echoed back. Threats: response splitting and header
injection (CRLF), log injection (control characters, fake JSON fields in log lines) and log
flooding (megabyte-long ids).
"""

from __future__ import annotations

import os
import string
from collections.abc import Awaitable, Iterable, Iterator
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from bastion.http.middleware._next import next_app

HEADER = b"x-request-id"
MAX_LENGTH = 64
_ALLOWED = (string.ascii_letters + string.digits + "._-").encode("ascii")
#: Ids drawn from the OS per ``os.urandom`` call: one system call per request costs more than
#: the rest of this middleware.
_IDS_PER_DRAW = 128
_HEADER_LENGTH = len(HEADER)


def _structlog_var(key: str) -> ContextVar[object]:
    """The context variable behind structlog's ``bind_contextvars(key=...)``.

    Bound once here through structlog's public API (``Token.var`` is the variable): setting it
    per request is then one ``ContextVar.set``, and ``merge_contextvars`` and
    ``get_contextvars`` see exactly what ``bind_contextvars`` would have bound.
    """
    tokens = bind_contextvars(**{key: None})
    var: ContextVar[object] = tokens[key].var
    reset_contextvars(**tokens)
    return var


#: Set per request to bind ``request_id`` into the logs (as ``bind_contextvars`` would).
REQUEST_ID_VAR = _structlog_var("request_id")


def is_valid_request_id(value: bytes) -> bool:
    """True if ``value`` is 1..64 bytes of ``[A-Za-z0-9._-]``."""
    return 0 < len(value) <= MAX_LENGTH and not value.translate(None, _ALLOWED)


def _draw() -> Iterator[str]:
    hexed = os.urandom(16 * _IDS_PER_DRAW).hex()
    return iter([hexed[i : i + 32] for i in range(0, len(hexed), 32)])


class _IdPool:
    """Ids cut from one ``os.urandom`` draw, each handed out once.

    ``next`` on a list iterator is atomic, so threads never share an id; a refill race only
    drops a few unused ids.
    """

    def __init__(self) -> None:
        self._ids: Iterator[str] = iter(())

    def take(self) -> str:
        for request_id in self._ids:
            return request_id
        self._ids = _draw()
        return next(self._ids)

    def forget(self) -> None:
        self._ids = iter(())


_POOL = _IdPool()
# A forked worker must not hand out the ids its parent drew (duplicates across workers).
os.register_at_fork(after_in_child=_POOL.forget)


#: ``new_request_id()``: 128 random bits from the OS CSPRNG, as 32 hex characters (unguessable,
#: unique). The pool's bound method itself: one Python call per id, not two.
new_request_id = _POOL.take


def choose(inbound: bytes | None, count: int) -> str:
    """The request id, given the inbound ``X-Request-ID`` value and how many times it was sent:
    the inbound one if it was sent once and is valid, else a fresh one."""
    if count == 1 and inbound is not None and is_valid_request_id(inbound):
        return inbound.decode("ascii")
    return new_request_id()


def accept(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """:func:`choose` for a request's headers."""
    inbound: bytes | None = None
    count = 0
    for name, value in headers:
        if name == HEADER:
            inbound = value
            count += 1
    return choose(inbound, count)


def header(request_id: str) -> tuple[bytes, bytes]:
    """The ``X-Request-ID`` response header. Any the app set is dropped (see :func:`with_id`)."""
    return (HEADER, request_id.encode("ascii"))


def with_id(
    headers: Iterable[tuple[bytes, bytes]], header: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """``headers`` without any X-Request-ID the app set (any case), plus ``header``."""
    if type(headers) is not list:
        headers = list(headers)
    for name, _ in headers:
        if len(name) == _HEADER_LENGTH and name.lower() == HEADER:
            return [*(h for h in headers if h[0].lower() != HEADER), header]
    return [*headers, header]


class RequestIdMiddleware:
    """Sets ``scope["state"]["request_id"]``, binds it into structlog, adds ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._next = next_app(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        request_id = accept(scope["headers"])
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        id_header = header(request_id)

        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_id(message.get("headers", ()), id_header)}
            return send(message)

        token = REQUEST_ID_VAR.set(request_id)
        try:
            await self._next(scope, receive, send_with_id)
        finally:
            REQUEST_ID_VAR.reset(token)
