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

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

HEADER = b"x-request-id"
MAX_LENGTH = 64
_ALLOWED = (string.ascii_letters + string.digits + "._-").encode("ascii")


def is_valid_request_id(value: bytes) -> bool:
    """True if ``value`` is 1..64 bytes of ``[A-Za-z0-9._-]``."""
    return 0 < len(value) <= MAX_LENGTH and not value.translate(None, _ALLOWED)


def new_request_id() -> str:
    """128 random bits from the OS CSPRNG, as 32 hex characters (unguessable, unique)."""
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Sets ``scope["state"]["request_id"]``, binds it into structlog, adds ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = [value for name, value in scope["headers"] if name == HEADER]
        if len(inbound) == 1 and is_valid_request_id(inbound[0]):
            request_id = inbound[0].decode("ascii")
        else:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        tokens = bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_contextvars(**tokens)
