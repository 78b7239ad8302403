"""HTTP methods Bastion never serves, refused before any route or middleware sees them.

Threats: ``TRACE`` (and Microsoft's ``TRACK``) echo the request back, headers and cookies
included, which lets script read ``HttpOnly`` cookies and credentials added by proxies (cross-site
tracing); ``CONNECT`` asks the server to act as a tunnel (open proxy). Each gets a 405
``method_not_allowed`` problem whatever the path. Other unknown methods are left to the router,
which answers 405 with an ``Allow`` header for a known path and 404 otherwise.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.http.errors import MethodNotAllowed
from bastion.http.middleware._next import next_app
from bastion.http.problems import send_problem

BLOCKED_METHODS = frozenset({"TRACE", "TRACK", "CONNECT"})


def is_blocked(method: str) -> bool:
    """True for a method that is never served, in any spelling (some servers fold case)."""
    return method.upper() in BLOCKED_METHODS


class MethodFilterMiddleware:
    """Answers 405 to ``TRACE``, ``TRACK`` and ``CONNECT``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._next = next_app(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_blocked(scope["method"]):
            await send_problem(scope, send, MethodNotAllowed())
            return
        await self._next(scope, receive, send)
