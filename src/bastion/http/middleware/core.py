"""The outer layers of the HTTP core, fused into one middleware: one call and one ``send``
wrapper per request instead of eight.

Every request crosses every layer, and on a trivial route the layers cost more than the route:
each hop is a coroutine, each ``send`` wrapper a call per message and a copy of the response
headers. :class:`HttpCoreMiddleware` does what these modules do, in this order (outermost
first), calling each concern's own functions, so each concern keeps its module and its tests:

    proxy             client IP and scheme (trusted proxies only)
    request_id        X-Request-ID, in state and logs
    security_headers  CSP, nosniff, HSTS, no-store ... on every answer (one pass with the
                      request id header: an app-set X-Request-ID is dropped there)
    metrics           requests and latency by route template
    audit_rejections  one audit event per 400/413/415/422/431
    errors            exceptions -> 500 problem, never their text; 5xx answers logged
    trusted_host      Host allowlist (DNS rebinding)
    methods           TRACE, TRACK, CONNECT -> 405

The headers are read once for the request id, the ``Host`` and ``Origin``: a request without
``Origin`` skips the CORS layer placed right inside (it would add nothing). Layers inside may
hand headers for the answer to the core through ``scope["state"]["response_headers"]`` (see
``_state``) instead of wrapping ``send`` themselves: the rate limiter does. The core also marks
a request that has no body (``no_body``), so the body layers can be skipped by the layer outside
them. WebSocket handshakes
get the proxy and ``Host`` decisions only (as the separate layers did); lifespan passes through.

The answers of layers placed inside this one (the concurrency cap's 503 ``overloaded``
included) carry the request id and security headers, are counted and, when rejections, audited.
Overload shedding is an operational condition counted by its own metric: its 503s are not logged
as server errors (one log line per shed request would flood the logs when overloaded).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.http.errors import MethodNotAllowed
from bastion.http.header_block import EXTENSION as HEADER_BLOCK
from bastion.http.header_block import MESSAGE_KEY as HEADER_BLOCK_KEY
from bastion.http.middleware._next import next_app
from bastion.http.middleware._state import NO_BODY, RESPONSE_HEADERS
from bastion.http.middleware.audit_rejections import AUDITED_STATUSES, RejectionAuditor
from bastion.http.middleware.errors import answer_exception, log_error_response
from bastion.http.middleware.methods import BLOCKED_METHODS
from bastion.http.middleware.proxy import UNKNOWN_CLIENT, ClientResolver, IPNetwork
from bastion.http.middleware.request_id import HEADER as REQUEST_ID_HEADER
from bastion.http.middleware.request_id import REQUEST_ID_VAR, choose, new_request_id
from bastion.http.middleware.security_headers import SecurityHeaders
from bastion.http.middleware.trusted_host import HostAllowlist, refuse
from bastion.http.problems import send_problem
from bastion.ops.metrics import Metrics

#: The problem code of the concurrency cap's 503 (not logged as a server error, see above).
OVERLOADED_CODE = "overloaded"

_perf_counter = time.perf_counter
# Versions where a request without Content-Length or Transfer-Encoding has no body.
_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})
_BODY_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class HttpCoreMiddleware:
    """Proxy, request id, security headers, metrics, rejection audit, errors, Host allowlist
    and method filter, in one ASGI middleware."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        recorder: AuditRecorder,
        allowed_hosts: Sequence[str],
        trusted_proxies: Sequence[IPNetwork] = (),
        hsts_max_age: int = 0,
        debug: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.app = app
        self._next = next_app(app)
        self.resolver = ClientResolver(trusted_proxies)
        self.security = SecurityHeaders(hsts_max_age, strip=(REQUEST_ID_HEADER,))
        self.metrics = metrics
        self._observe = metrics.observe_scope
        self.auditor = RejectionAuditor(recorder, clock)
        self.debug = debug
        self.allowlist = HostAllowlist(allowed_hosts)
        self._host_allowed = self.allowlist.is_allowed_value
        self._hosts_seen = self.allowlist.decisions
        self._proxies = bool(self.resolver.trusted_proxies)
        # An inner layer that adds nothing to requests without ``Origin`` (CORS) says what it
        # would call for them: such a request goes there directly (one hop less).
        self._without_origin: ASGIApp = getattr(app, "without_origin", self._next)

    # One fused hot path (see the module docstring): long on purpose.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0912, PLR0915
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        if self._proxies:
            self.resolver.apply(scope, state)
        else:  # the default: no proxy is trusted, the peer is the client (ClientResolver.apply)
            client = scope.get("client")
            state["client_ip"] = client[0] if client else UNKNOWN_CLIENT
        host: bytes | None = None
        inbound: bytes | None = None
        hosts = ids = 0
        origin = framed = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                hosts += 1
            elif name == REQUEST_ID_HEADER:
                inbound = value
                ids += 1
            elif name == b"origin":
                origin = True
            elif name in _BODY_FRAMING:
                framed = True
        if not framed and scope.get("http_version") in _FRAMED_BY_HEADERS:
            state[NO_BODY] = True
        request_id = choose(inbound, ids) if ids else new_request_id()
        state["request_id"] = request_id
        handed: list[tuple[bytes, bytes]] = []
        state[RESPONSE_HEADERS] = handed
        # One small object per request instead of a closure: a closure over this frame would
        # make a cell of each variable it reads (a dozen allocations per request).
        answer = _new_answer(_Answer)
        answer.core = self
        answer.scope = scope
        answer.next_send = send
        answer.state = state
        answer.handed = handed
        answer.id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        # A server that writes header blocks (``header_block``) gets the constant security
        # headers as one block validated at start-up, not as eight headers to validate each time.
        extensions = scope.get("extensions")
        answer.blocks = extensions is not None and HEADER_BLOCK in extensions
        answer.status = 500
        answer.started = False
        answer.log_5xx = True
        send_core = answer.send
        start = _perf_counter()
        token = REQUEST_ID_VAR.set(request_id)
        try:
            # HostAllowlist.is_allowed_value, its remembered decisions read here first.
            if (
                hosts != 1
                or host is None
                or not (self._hosts_seen.get(host) or self._host_allowed(host))
            ):
                await refuse(scope, send_core)
            elif scope["method"].upper() in BLOCKED_METHODS:  # methods.is_blocked, inlined
                await send_problem(scope, send_core, MethodNotAllowed())
            elif origin:
                await self._next(scope, receive, send_core)
            else:
                await self._without_origin(scope, receive, send_core)
        except Exception as exc:  # noqa: BLE001 - any exception: answered and logged just below
            answer.log_5xx = False  # logged with its traceback by answer_exception
            handed.clear()  # the inner layers' headers were for the answer that failed
            await answer_exception(scope, send_core, exc, started=answer.started, debug=self.debug)
        finally:
            self._observe(scope, answer.status, _perf_counter() - start)
            REQUEST_ID_VAR.reset(token)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket: client IP and ``Host`` check only; lifespan and others pass through."""
        if scope["type"] == "websocket":
            self.resolver.apply(scope, scope.setdefault("state", {}))
            if not self.allowlist.accepts(scope["headers"]):
                await refuse(scope, send)
                return
        await self._next(scope, receive, send)


class _Answer:
    """The response side of one request in the core: :meth:`send` is the ``send`` handed to
    the layers inside (status for the metrics, 5xx log, rejection audit, security headers and
    the request id, then the server's ``send``)."""

    __slots__ = (
        "blocks",
        "core",
        "handed",
        "id_header",
        "log_5xx",
        "next_send",
        "scope",
        "started",
        "state",
        "status",
    )

    core: HttpCoreMiddleware
    scope: Scope
    next_send: Send
    state: dict[str, object]
    handed: list[tuple[bytes, bytes]]
    id_header: tuple[bytes, bytes]
    blocks: bool
    status: int
    started: bool
    log_5xx: bool

    def send(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            status = self.status = message["status"]
            self.started = True
            scope = self.scope
            core = self.core
            if status >= 500 and self.log_5xx and self.state.get("problem_code") != OVERLOADED_CODE:
                log_error_response(scope, status)
            if status in AUDITED_STATUSES:
                core.auditor.observe(scope, status)
            handed = self.handed
            extra = (*handed, self.id_header) if handed else (self.id_header,)
            if self.blocks:
                headers, block = core.security.apply_with_block(
                    scope, message.get("headers", ()), extra
                )
                message = {**message, "headers": headers, HEADER_BLOCK_KEY: block}
            else:
                headers = core.security.apply(scope, message.get("headers", ()), extra)
                message = {**message, "headers": headers}
        return self.next_send(message)


_new_answer = object.__new__
