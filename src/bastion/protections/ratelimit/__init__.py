"""Rate limiting and abuse protection.

* GCRA limits (a rate and a burst) behind one :class:`LimitStore` protocol: :class:`MemoryStore`
  for one worker, :class:`RedisStore` for many (one atomic Lua call per request, Redis time,
  self-expiring keys), :class:`FailoverStore` for per-policy fail-closed / fail-open behaviour
  when Redis is down.
* Composable :class:`Policy` objects per client IP, user, OAuth client and route; a request must
  pass every policy that applies. Strict defaults in :class:`RateLimitSettings`.
* :class:`RateLimitMiddleware` (429 problem+json, ``Retry-After``, ``RateLimit-Policy`` and
  ``RateLimit``; one audit event per bucket per window) and the per-route :func:`rate_limit`
  dependency, for Bastion and any FastAPI/Starlette service.
* :class:`FailureBackoff`: the decaying failure counter for passwords, TOTP and recovery codes.
* :class:`ConcurrencyLimitMiddleware`: a per-worker cap answered with a fast 503.
"""

import typing

from bastion.protections.ratelimit.backoff import (
    PASSWORD_BACKOFF,
    RECOVERY_CODE_BACKOFF,
    TOTP_BACKOFF,
    BackoffPolicy,
    BackoffStatus,
)
from bastion.protections.ratelimit.concurrency import ConcurrencyLimitMiddleware
from bastion.protections.ratelimit.dependency import rate_limit
from bastion.protections.ratelimit.errors import (
    Overloaded,
    ProtectionError,
    RateLimited,
    StoreUnavailable,
    TooManyAttempts,
)
from bastion.protections.ratelimit.failover import FailoverStore
from bastion.protections.ratelimit.gcra import Decision, Rate
from bastion.protections.ratelimit.interfaces import (
    BackoffStore,
    Check,
    FailureMode,
    LimitStore,
    Store,
)
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import KeyKind, Policy, PolicyTable
from bastion.protections.ratelimit.services import FailureBackoff, RateLimiter, Verdict
from bastion.protections.ratelimit.settings import RateLimitSettings
from bastion.protections.ratelimit.wiring import RateLimiting, build_rate_limiting

__all__ = [
    "PASSWORD_BACKOFF",
    "RECOVERY_CODE_BACKOFF",
    "TOTP_BACKOFF",
    "BackoffPolicy",
    "BackoffStatus",
    "BackoffStore",
    "Check",
    "ConcurrencyLimitMiddleware",
    "Decision",
    "FailoverStore",
    "FailureBackoff",
    "FailureMode",
    "KeyKind",
    "LimitStore",
    "MemoryStore",
    "Overloaded",
    "Policy",
    "PolicyTable",
    "ProtectionError",
    "Rate",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RateLimited",
    "RateLimiter",
    "RateLimiting",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "TooManyAttempts",
    "Verdict",
    "build_rate_limiting",
    "rate_limit",
]


if typing.TYPE_CHECKING:
    from bastion.protections.ratelimit.redis_store import RedisStore


def __getattr__(name: str) -> "type[RedisStore]":
    # RedisStore is imported on first use: the Redis client weighs ~6 MiB in every worker that
    # runs on the memory store.
    if name == "RedisStore":
        from bastion.protections.ratelimit.redis_store import RedisStore  # noqa: PLC0415

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
