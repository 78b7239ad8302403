"""Rate limits for every HTTP request, as pure ASGI middleware.

For each request the :class:`~bastion.protections.ratelimit.services.RateLimiter` picks the
policies whose path templates match (route groups: login, registration, ...) plus the general
budgets, and takes one unit from each bucket in one store call. The request passes only if every
policy allows it; otherwise it is answered here, before any body is read:

* 429 ``rate_limited`` problem+json with ``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``,
  and ``violated-policies`` in the body (the draft's ``quota-exceeded`` extension member);
* 503 ``protection_unavailable`` with ``Retry-After`` when a fail-closed policy cannot be decided
  (Redis down).

Allowed responses carry ``RateLimit-Policy`` and ``RateLimit`` too (``emit_headers``), so clients
can slow down before they are refused. The limiter is published in ``scope["state"]`` for the
per-route :func:`~bastion.protections.ratelimit.dependency.rate_limit` dependency.

Place it inside the CORS middleware (so browsers can read a 429) and before body parsing.
"""

from __future__ import annotations

from collections.abc import Awaitable

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.middleware._next import next_app
from bastion.http.middleware._state import NO_BODY, RESPONSE_HEADERS
from bastion.http.problems import send_problem
from bastion.protections.ratelimit.concurrency import ConcurrencyCap
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.headers import RETRY_AFTER, fields
from bastion.protections.ratelimit.services import STATE_LIMITER, RateLimiter, Verdict


class RateLimitMiddleware:
    """The rate limits; with ``max_concurrent``, the concurrency cap too, checked first (as a
    :class:`~bastion.protections.ratelimit.concurrency.ConcurrencyLimitMiddleware` placed
    right outside would: same 503, same metrics in ``registry``), in one layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        emit_headers: bool = True,
        max_concurrent: int | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.app = app
        self._next = next_app(app)
        self.limiter = limiter
        # RateLimiter.applicable, one call less: the policy table's match itself.
        self._applicable = limiter.table.match
        self._admit = limiter.admit
        self.emit_headers = emit_headers
        self.cap = (
            None
            if max_concurrent is None
            else ConcurrencyCap(max_concurrent=max_concurrent, registry=registry)
        )
        # The body layers inside (body limit, JSON check) pass a request without a body
        # straight through: when the HTTP core has marked one so, go past them directly.
        self._without_body: ASGIApp | None = getattr(app, "without_body", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0911, PLR0912 - one fused hot path
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        cap = self.cap
        if cap is not None:
            if cap.active >= cap.max_concurrent:
                await cap.shed(scope, send)
                return
            cap.active += 1
        try:  # one layer, no coroutine per concern: the limits run inside the cap's count
            state = scope.setdefault("state", {})
            state[STATE_LIMITER] = self.limiter
            inner = self._next
            if self._without_body is not None and state.get(NO_BODY):
                inner = self._without_body
            applied = self._applicable(scope["method"], scope["path"])
            if not applied:
                await inner(scope, receive, send)
                return
            # The common case first: one policy, the in-process store, allowed (no verdict).
            admitted = self._admit(scope, applied)
            if admitted is not None:
                if not self.emit_headers:
                    await inner(scope, receive, send)
                    return
                handed = state.get(RESPONSE_HEADERS)
                if handed is not None:
                    handed += admitted
                    await inner(scope, receive, send)
                    return
                await inner(scope, receive, _with_headers(send, list(admitted)))
                return
            try:
                # Decided without a coroutine when the in-process store allows the request.
                decided = self.limiter.decide(scope, applied)
                verdict = decided if type(decided) is Verdict else await decided  # type: ignore[misc]
            except StoreUnavailable as exc:
                retry = str(exc.retry_after).encode("ascii")
                await send_problem(scope, send, exc, headers=[(RETRY_AFTER, retry)])
                return
            if not verdict.allowed:
                await send_problem(
                    scope,
                    send,
                    verdict.error(),
                    headers=verdict.headers(),
                    extra={"violated-policies": [p.name for p in verdict.violated]},
                )
                return
            if not self.emit_headers or not verdict.results:
                await inner(scope, receive, send)
                return
            extra_headers = fields(verdict.results, refused=False)  # verdict.headers(), allowed
            # Behind the HTTP core, hand the headers to it (one send wrapper less per request).
            handed = state.get(RESPONSE_HEADERS)
            if handed is not None:
                handed.extend(extra_headers)
                await inner(scope, receive, send)
                return
            await inner(scope, receive, _with_headers(send, extra_headers))
        finally:
            if cap is not None:
                cap.active -= 1


def _with_headers(send: Send, extra_headers: list[tuple[bytes, bytes]]) -> Send:
    """``send`` adding ``extra_headers`` to the response start (a closure made here, not in
    ``__call__``: there its variables would be cells on every request)."""

    def send_with_headers(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
        return send(message)

    return send_with_headers
