"""Builds the rate limiting services from :class:`RateLimitSettings`: the one place that picks
the store by setting (memory, or Redis behind the failover with a local fallback).

:func:`build_rate_limiting` at startup; its two middleware go into the app's middleware list;
:func:`include` publishes the limiter for the per-route dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware

from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.protections.ratelimit.concurrency import ConcurrencyLimitMiddleware
from bastion.protections.ratelimit.failover import FailoverStore
from bastion.protections.ratelimit.interfaces import Store
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import PolicyTable
from bastion.protections.ratelimit.services import FailureBackoff, RateLimiter
from bastion.protections.ratelimit.settings import RateLimitSettings

if TYPE_CHECKING:
    from bastion.protections.ratelimit.redis_store import RedisStore


@dataclass
class RateLimiting:
    """The rate limiter, the failure backoffs (by name: password, totp, recovery_code), the
    store behind them, and the two middleware to add to the app."""

    settings: RateLimitSettings
    store: Store
    limiter: RateLimiter
    backoff: dict[str, FailureBackoff] = field(default_factory=dict)
    redis: RedisStore | None = None
    registry: CollectorRegistry | None = None

    def rate_limit_middleware(self) -> Middleware:
        return Middleware(
            RateLimitMiddleware, limiter=self.limiter, emit_headers=self.settings.emit_headers
        )

    def protections_middleware(self) -> Middleware:
        """The concurrency cap and the rate limits in one layer: what
        ``[concurrency_middleware(), rate_limit_middleware()]`` do, one hop less per request."""
        return Middleware(
            RateLimitMiddleware,
            limiter=self.limiter,
            emit_headers=self.settings.emit_headers,
            max_concurrent=self.settings.max_concurrent_requests,
            registry=self.registry,
        )

    def concurrency_middleware(self) -> Middleware:
        return Middleware(
            ConcurrencyLimitMiddleware,
            max_concurrent=self.settings.max_concurrent_requests,
            registry=self.registry,
        )

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def build_rate_limiting(
    settings: RateLimitSettings,
    *,
    audit: AuditRecorder | None = None,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
) -> RateLimiting:
    redis: RedisStore | None = None
    store: Store
    if settings.storage == "redis" and settings.redis_url is not None:
        # Imported only when configured: the Redis client weighs ~6 MiB per worker.
        from bastion.protections.ratelimit.redis_store import RedisStore  # noqa: PLC0415

        redis = RedisStore.from_url(
            settings.redis_url.get_secret_value(), timeout=settings.redis_timeout_seconds
        )
        store = FailoverStore(
            redis,
            fallback=MemoryStore(max_keys=settings.memory_max_keys),
            registry=registry,
            probe_interval=settings.failover_probe_seconds,
        )
    else:
        store = MemoryStore(max_keys=settings.memory_max_keys)
    table = PolicyTable(
        settings.build_policies() if settings.enabled else (),
        exempt_paths=settings.exempt_paths,
    )
    limiter = RateLimiter(
        store,
        table,
        key_prefix=settings.key_prefix,
        audit=audit,
        clock=clock,
        ipv6_prefix=settings.ipv6_prefix,
        registry=registry,
    )
    backoff = {
        name: FailureBackoff(store, settings.backoff_policy(name), key_prefix=settings.key_prefix)
        for name in settings.backoff
    }
    return RateLimiting(
        settings=settings,
        store=store,
        limiter=limiter,
        backoff=backoff,
        redis=redis,
        registry=registry,
    )


def include(app: Starlette, rate_limiting: RateLimiting) -> None:
    """Publish the limiter as ``app.state.rate_limiter`` (found by ``rate_limit()``)."""
    app.state.rate_limiter = rate_limiting.limiter
