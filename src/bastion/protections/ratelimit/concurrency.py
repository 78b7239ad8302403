"""A per-worker cap on requests in flight: beyond it, a fast 503 instead of a queue.

Threat: resource exhaustion. Without a cap, a burst (or a slow-loris style flood of slow
requests) piles up coroutines, database connections and memory until every request times out,
the legitimate ones included. With the cap, the worker keeps serving ``max_concurrent`` requests
at full speed and answers the rest at once with 503 ``overloaded`` and ``Retry-After``, which
load balancers and well-behaved clients understand as "try another worker, or later".

The count is per event loop: no lock is needed because nothing is awaited between the test and
the increment. Only HTTP requests count (WebSocket sessions and lifespan pass through).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.http.middleware._next import next_app
from bastion.http.problems import send_problem
from bastion.protections.ratelimit.errors import MIN_RETRY_AFTER_SECONDS, Overloaded
from bastion.protections.ratelimit.headers import RETRY_AFTER

#: A default cap for one worker: far above what a healthy worker has in flight.
DEFAULT_MAX_CONCURRENT = 256


class ConcurrencyCap:
    """The count of requests in flight against ``max_concurrent``, its metrics and its 503.

    Used by :class:`ConcurrencyLimitMiddleware`, and by the rate limit middleware when it is
    given a cap (one layer for both: ``RateLimiting.protections_middleware``). A caller that
    admits a request (``active < max_concurrent``) increments ``active`` and decrements it when
    the request ends, however it ends; otherwise it answers with :meth:`shed`.
    """

    def __init__(
        self,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        retry_after: int = MIN_RETRY_AFTER_SECONDS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.active = 0
        self._retry_after = [(RETRY_AFTER, str(max(1, retry_after)).encode("ascii"))]
        self._error_retry = max(1, retry_after)
        registry = registry if registry is not None else CollectorRegistry()
        self._shed = Counter(
            "bastion_overload_requests_shed",
            "Requests answered 503 because the worker's concurrency cap was reached.",
            registry=registry,
        )
        Gauge(
            "bastion_overload_requests_in_flight",
            "HTTP requests this worker is serving.",
            registry=registry,
        ).set_function(lambda: self.active)

    async def shed(self, scope: Scope, send: Send) -> None:
        """Counts and answers a request refused at the cap: 503 ``overloaded``, Retry-After."""
        self._shed.inc()
        error = Overloaded(retry_after=self._error_retry)
        await send_problem(scope, send, error, headers=self._retry_after)


class ConcurrencyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        retry_after: int = MIN_RETRY_AFTER_SECONDS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.app = app
        self._next = next_app(app)
        self.cap = ConcurrencyCap(
            max_concurrent=max_concurrent, retry_after=retry_after, registry=registry
        )
        self.max_concurrent = max_concurrent

    @property
    def active(self) -> int:
        return self.cap.active

    @active.setter
    def active(self, value: int) -> None:
        self.cap.active = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        cap = self.cap
        if cap.active >= cap.max_concurrent:
            await cap.shed(scope, send)
            return
        cap.active += 1
        try:
            await self._next(scope, receive, send)
        finally:
            cap.active -= 1
