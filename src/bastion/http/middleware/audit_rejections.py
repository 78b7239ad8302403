"""One audit event for every request the HTTP core rejects as malformed.

Rejections (400, 413, 415, 422, 431) are what probing, fuzzing and injection attempts look like
from the server; recording them gives the audit log the attack, not only the successes. 404 and
405 are not recorded: crawlers make them all day and they would drown the signal.

The event holds who (client IP, user agent, request id), why (the problem ``code``, else
``http_<status>``) and where (method, the route *template* when a route matches, else the raw path
cut to 256 characters). Never the query string, headers or body: they may carry passwords or
tokens, and a token in a path is hidden by using the template.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock, SystemClock
from bastion.http.middleware._next import next_app

AUDITED_STATUSES = frozenset({400, 413, 415, 422, 431})
MAX_USER_AGENT = 512
MAX_PATH = 256
MAX_METHOD = 32


class RejectionAuditor:
    """Records ``http:request:rejected`` for an answer whose status is in ``AUDITED_STATUSES``."""

    def __init__(self, recorder: AuditRecorder, clock: Clock | None = None) -> None:
        self.recorder = recorder
        self.clock = clock or SystemClock()

    def observe(self, scope: Scope, status: int) -> None:
        """Called with the status of every answer; records the rejections."""
        if status in AUDITED_STATUSES:
            # record() never blocks and never raises (AuditRecorder contract).
            self.recorder.record(self.event(scope, status))

    def event(self, scope: Scope, status: int) -> AuditEvent:
        state: dict[str, Any] = scope.get("state") or {}
        client = scope.get("client")
        return AuditEvent(
            type=EventType.HTTP_REQUEST_REJECTED,
            outcome=Outcome.FAILURE,
            time=self.clock.now(),
            client_ip=state.get("client_ip") or (client[0] if client else None),
            user_agent=_user_agent(scope),
            request_id=state.get("request_id"),
            reason=state.get("problem_code") or f"http_{status}",
            details={
                "method": scope["method"][:MAX_METHOD],
                "path": route_path(scope),
                "status": status,
            },
        )


class RejectionAuditMiddleware:
    """Records ``http:request:rejected`` when the answer's status is in ``AUDITED_STATUSES``."""

    def __init__(self, app: ASGIApp, recorder: AuditRecorder, clock: Clock | None = None) -> None:
        self.app = app
        self._next = next_app(app)
        self.auditor = RejectionAuditor(recorder, clock)
        self.recorder = recorder
        self.event = self.auditor.event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        observe = self.auditor.observe

        def send_watched(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                observe(scope, message["status"])
            return send(message)

        await self._next(scope, receive, send_watched)


def route_path(scope: Scope) -> str:
    """The template of the route that matches the request, else the raw path (truncated).

    Middleware may reject a request before the router runs, so the app's routes are matched
    here (only for rejected requests; ``scope["app"]`` is set by Starlette).
    """
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    for route in getattr(scope.get("app"), "routes", ()):
        match, _ = route.matches(scope)
        template = getattr(route, "path", None)
        if match is not Match.NONE and isinstance(template, str):
            return template
    path: str = scope.get("path", "")
    return path[:MAX_PATH]


def _user_agent(scope: Scope) -> str | None:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return value[:MAX_USER_AGENT].decode("latin-1")
    return None
