"""The last line of defence: an exception never reaches the client as anything but a 500 problem.

Threat: information disclosure. Exception text carries SQL, file paths, configuration values and
library versions; a stack trace maps the code for an attacker. In production the answer is the
fixed ``internal_error`` problem and nothing else. ``debug=True`` (development only; refused in
production by the settings) adds the exception type, message and traceback under ``debug``.

Every server error is logged server-side with full detail (method, path, request id, traceback).
A deliberate :class:`~bastion.errors.BastionError` escaping from code outside the router is
answered as its own problem (its message is written for clients).

If the response has already started, the status can no longer change: the error is logged and
the response is left incomplete, so the server closes the connection and the client sees a
failed transfer rather than a truncated body that looks complete. ``asyncio.CancelledError``
(client gone, server shutting down) is not an ``Exception`` and passes through untouched.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.errors import BastionError
from bastion.http.errors import InternalError
from bastion.http.middleware._next import next_app
from bastion.http.problems import request_id_of, send_problem
from bastion.logging import get_logger

logger = get_logger(__name__)

MAX_LOGGED_PATH = 256


def log_error_response(scope: Scope, status: int) -> None:
    """Logs an answer with a 5xx ``status`` that the app gave without raising."""
    logger.error("http_server_error_response", status=status, **_where(scope))


async def answer_exception(
    scope: Scope, send: Send, exc: Exception, *, started: bool, debug: bool
) -> None:
    """Logs ``exc`` and, if the response has not started, answers it as a problem.

    Called from the ``except`` block that caught ``exc`` (the traceback is logged).
    """
    error = exc if isinstance(exc, BastionError) else InternalError()
    if error.status >= 500 or started:
        logger.exception(  # noqa: LOG004 - only called from the except block that caught exc
            "http_unhandled_exception",
            response_started=started,
            status=error.status,
            **_where(scope),
        )
    if not started:
        extra = {"debug": _debug_info(exc)} if debug else None
        await send_problem(scope, send, error, extra=extra)


class ErrorMiddleware:
    """Turns any exception of the inner app into a 500 ``internal_error`` problem."""

    def __init__(self, app: ASGIApp, debug: bool = False) -> None:
        self.app = app
        self._next = next_app(app)
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        started = False

        def send_tracked(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 500:
                    log_error_response(scope, message["status"])
            return send(message)

        try:
            await self._next(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - any exception: answered and logged just below
            await answer_exception(scope, send, exc, started=started, debug=self.debug)


def _where(scope: Scope) -> dict[str, Any]:
    path: str = scope.get("path", "")
    return {
        "method": scope.get("method"),
        "path": path[:MAX_LOGGED_PATH],
        "request_id": request_id_of(scope),
    }


def _debug_info(exc: Exception) -> dict[str, Any]:
    """Development only: what the exception says, for the developer at the client."""
    return {
        "exception": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)).splitlines(),
    }
