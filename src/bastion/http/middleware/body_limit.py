"""Request bodies are bounded, whether or not the client declares their size.

Threat: memory and CPU exhaustion by huge bodies (every layer that buffers, parses or validates a
body pays for its size). The limit is ``default_limit`` bytes, or the value of the first matching
path template in ``overrides`` (e.g. ``("/v1/uploads/{id}", 20 * MiB)``).

* A ``Content-Length`` above the limit is refused with 413 ``body_too_large`` before a byte of
  the body is read.
* A body without a declared length (chunked, HTTP/2) is counted as the app reads it; past the
  limit ``receive`` raises, and whatever the app was doing is void: its answer is dropped and the
  client gets 413 (or, if the answer had already started, an aborted response).
* A malformed ``Content-Length`` (not digits, several different values), or one sent together
  with ``Transfer-Encoding``, is a 400 ``invalid_request``: servers and proxies that disagree on
  where a body ends are the root of request smuggling (RFC 9112 section 6.3).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.errors import InvalidRequest, PayloadTooLarge
from bastion.http.middleware._next import next_app
from bastion.http.middleware._paths import PathRules
from bastion.http.problems import send_problem

# Versions where a request without Content-Length or Transfer-Encoding has no body.
_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})
_MAX_DIGITS = 18  # larger values exceed any limit; int() of huge strings is itself costly


class _InvalidLengthError(Exception):
    pass


class _BodyTooLargeError(Exception):
    """Raised by ``receive`` into the inner app once the body passes the limit."""


def declared_length(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """``(Content-Length, has Transfer-Encoding)``. Raises ``_InvalidLengthError``."""
    values: list[bytes] = []
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            values.extend(part.strip() for part in value.split(b","))
        elif name == b"transfer-encoding":
            chunked = True
    if not values:
        return None, chunked
    distinct = set(values)
    # RFC 9112 section 6.3: repeated identical values may be accepted, anything else is an error.
    if chunked or len(distinct) != 1:
        raise _InvalidLengthError
    (text,) = distinct
    if not text.isdigit():  # bytes.isdigit is ASCII only; also refuses "", "-1", "+1", "1e3"
        raise _InvalidLengthError
    digits = text.lstrip(b"0") or b"0"
    return (sys.maxsize if len(digits) > _MAX_DIGITS else int(digits)), chunked


class _Guard:
    """Counts the body as the app reads it; once over the limit, mutes the app's answer."""

    __slots__ = ("_receive", "_send", "exceeded", "limit", "received", "started")

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self.started = False

    async def receive(self) -> Message:
        if self.exceeded:
            raise _BodyTooLargeError
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise _BodyTooLargeError
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            return  # the request is rejected: nothing the app says about it reaches the client
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodyLimitMiddleware:
    """Answers 413 ``body_too_large`` when a request body is over its limit."""

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        overrides: Sequence[tuple[str, int]] = (),
    ) -> None:
        if default_limit < 0 or any(limit < 0 for _, limit in overrides):
            raise ValueError("body limits must not be negative")
        self.app = app
        self._next = next_app(app)
        self.default_limit = default_limit
        self._overrides = PathRules(overrides)
        # An inner layer that passes requests without a body straight through (the JSON check)
        # says what it would call for them: such a request goes there directly.
        self._without_body: ASGIApp = getattr(app, "without_body", self._next)
        #: What this middleware calls for a request without a body (see ``_state.NO_BODY``).
        self.without_body = self._without_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        try:
            length, chunked = declared_length(scope["headers"])
        except _InvalidLengthError:
            await send_problem(scope, send, InvalidRequest("Invalid Content-Length header."))
            return
        if length == 0 or (
            length is None and not chunked and scope.get("http_version") in _FRAMED_BY_HEADERS
        ):
            await self._without_body(scope, receive, send)  # no body: nothing to count
            return
        limit = self.limit_for(scope["path"])
        if length is not None and length > limit:
            await send_problem(scope, send, PayloadTooLarge())
            return
        await self._guarded(scope, receive, send, limit)

    def limit_for(self, path: str) -> int:
        if self._overrides:
            limit = self._overrides.lookup(path)
            if limit is not None:
                return limit
        return self.default_limit

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        # A declared length is also counted: defence in depth if a server does not enforce it.
        guard = _Guard(receive, send, limit)
        try:
            await self._next(scope, guard.receive, guard.send)
        except Exception:
            # Frameworks wrap errors raised while reading a body (FastAPI makes them a 400):
            # after the limit was passed, any error is a consequence of the rejection.
            if not guard.exceeded:
                raise
        if guard.exceeded and not guard.started:
            await send_problem(scope, send, PayloadTooLarge())
