"""Redis failure handling: each limit fails closed or open, as its policy says.

:class:`FailoverStore` wraps the shared (primary) store. While the primary answers, every call
goes to it. When it fails, the store *switches* to degraded mode, logs the switch once and
exports it as metrics; from then on:

* a call with any ``fail_closed`` check (authentication endpoints, failure backoff) raises
  :class:`~bastion.protections.ratelimit.errors.StoreUnavailable`: the request is refused,
  because an authentication endpoint without its limit is what a password-guessing attack wants;
* a call with only ``fail_open`` checks (the general API budget) is decided by a local
  in-memory store: limits keep holding per worker instead of vanishing.

At most one request per ``probe_interval`` tries the primary again (no stampede on a sick Redis,
no timeout paid by every request); the first success switches back, logs the recovery and
exports it. Local fallback state is not copied back: buckets restart from Redis's view.

Metrics (in the registry passed in, never the global one):
``bastion_ratelimit_store_degraded`` (gauge, 1 while degraded),
``bastion_ratelimit_store_failovers_total``, ``bastion_ratelimit_store_recoveries_total``,
``bastion_ratelimit_degraded_decisions_total{mode="fail_open"|"fail_closed"}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from bastion.logging import get_logger
from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.gcra import NS_PER_SECOND, Decision
from bastion.protections.ratelimit.interfaces import Check, FailureMode, Store, Ticker
from bastion.protections.ratelimit.memory import MemoryStore

#: Seconds between attempts to reach the primary while degraded.
DEFAULT_PROBE_INTERVAL_SECONDS = 2.0

T = TypeVar("T")
log = get_logger(__name__)


class FailoverMetrics:
    """The failover's Prometheus series, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.degraded = Gauge(
            "bastion_ratelimit_store_degraded",
            "1 while the shared rate limit store is unreachable and the fallback is in use.",
            registry=registry,
        )
        self.failovers = Counter(
            "bastion_ratelimit_store_failovers",
            "Switches from the shared rate limit store to degraded mode.",
            registry=registry,
        )
        self.recoveries = Counter(
            "bastion_ratelimit_store_recoveries",
            "Switches back to the shared rate limit store after an outage.",
            registry=registry,
        )
        decisions = Counter(
            "bastion_ratelimit_degraded_decisions",
            "Decisions taken while degraded: refused (fail_closed) or decided locally (fail_open).",
            ["mode"],
            registry=registry,
        )
        self.refused = decisions.labels(FailureMode.FAIL_CLOSED.value)
        self.local = decisions.labels(FailureMode.FAIL_OPEN.value)


class FailoverStore:
    """A :class:`~bastion.protections.ratelimit.interfaces.Store` over a primary and a fallback."""

    def __init__(
        self,
        primary: Store,
        *,
        fallback: Store | None = None,
        registry: CollectorRegistry | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL_SECONDS,
        ticker: Ticker | None = None,
        name: str = "redis",
    ) -> None:
        self.primary = primary
        self.fallback: Store = fallback if fallback is not None else MemoryStore(ticker=ticker)
        self.metrics = FailoverMetrics(registry)
        self.name = name
        self._probe_ns = round(probe_interval * NS_PER_SECOND)
        self._probe_interval = probe_interval
        self._now = ticker or time.monotonic_ns
        self._degraded_since: int | None = None
        self._next_probe = 0

    @property
    def degraded(self) -> bool:
        return self._degraded_since is not None

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        closed = any(c.failure_mode is FailureMode.FAIL_CLOSED for c in checks)
        return await self._call(lambda store: store.decide(checks), fail_closed=closed)

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        closed = policy.failure_mode is FailureMode.FAIL_CLOSED
        return await self._call(lambda s: s.record_failure(key, policy), fail_closed=closed)

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        closed = policy.failure_mode is FailureMode.FAIL_CLOSED
        return await self._call(lambda s: s.status(key, policy), fail_closed=closed)

    async def clear(self, key: str) -> None:
        # Forgetting failures after a success never needs to fail closed: at worst a counter
        # the primary could not clear decays by itself.
        await self.fallback.clear(key)
        await self._call(lambda s: s.clear(key), fail_closed=False)

    async def _call(self, op: Callable[[Store], Awaitable[T]], *, fail_closed: bool) -> T:
        if self._should_try_primary():
            try:
                result = await op(self.primary)
            except StoreUnavailable as exc:
                self._switch_to_degraded(exc)
            else:
                if self._degraded_since is not None:
                    self._switch_back()
                return result
        if fail_closed:
            self.metrics.refused.inc()
            raise StoreUnavailable(retry_after=self._probe_interval)
        self.metrics.local.inc()
        return await op(self.fallback)

    def _should_try_primary(self) -> bool:
        if self._degraded_since is None:
            return True
        now = self._now()
        if now < self._next_probe:
            return False
        # Claim the probe before awaiting: concurrent requests keep using the fallback.
        self._next_probe = now + self._probe_ns
        return True

    def _switch_to_degraded(self, exc: StoreUnavailable) -> None:
        now = self._now()
        self._next_probe = now + self._probe_ns
        if self._degraded_since is not None:
            return
        self._degraded_since = now
        self.metrics.degraded.set(1)
        self.metrics.failovers.inc()
        cause = exc.__cause__
        log.warning(
            "ratelimit_store_degraded",
            store=self.name,
            error=type(cause).__name__ if cause else type(exc).__name__,
            message=str(cause) if cause else None,
            probe_interval_seconds=self._probe_interval,
        )

    def _switch_back(self) -> None:
        since = self._degraded_since
        self._degraded_since = None
        self.metrics.degraded.set(0)
        self.metrics.recoveries.inc()
        outage = (self._now() - since) / NS_PER_SECOND if since is not None else 0.0
        log.info("ratelimit_store_recovered", store=self.name, outage_seconds=round(outage, 3))
