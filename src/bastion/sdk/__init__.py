"""``bastion.sdk``: Bastion's controls for any FastAPI or Starlette service.

Rate limiting, per app (middleware) or per route (dependency), with the same GCRA limiter,
stores and policies Bastion uses itself::

    from bastion.sdk import RateLimitSettings, build_rate_limiting, rate_limit

    limits = build_rate_limiting(RateLimitSettings(storage="redis", redis_url="redis://..."))
    app = FastAPI(middleware=[limits.concurrency_middleware(), limits.rate_limit_middleware()])
    install_problem_handlers(app)  # Bastion's errors -> RFC 9457 problem+json

    @app.post("/reports", dependencies=[Depends(rate_limit("reports"))])
    async def create_report() -> ...

Everything importable from here is public and stable; the rest of Bastion is not.
"""

from bastion.http.handlers import include as install_problem_handlers
from bastion.protections.ratelimit import (
    ConcurrencyLimitMiddleware,
    FailoverStore,
    FailureBackoff,
    FailureMode,
    KeyKind,
    MemoryStore,
    Overloaded,
    Policy,
    Rate,
    RateLimited,
    RateLimiter,
    RateLimiting,
    RateLimitMiddleware,
    RateLimitSettings,
    RedisStore,
    StoreUnavailable,
    TooManyAttempts,
    build_rate_limiting,
    rate_limit,
)

__all__ = [
    "ConcurrencyLimitMiddleware",
    "FailoverStore",
    "FailureBackoff",
    "FailureMode",
    "KeyKind",
    "MemoryStore",
    "Overloaded",
    "Policy",
    "Rate",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RateLimited",
    "RateLimiter",
    "RateLimiting",
    "RedisStore",
    "StoreUnavailable",
    "TooManyAttempts",
    "build_rate_limiting",
    "install_problem_handlers",
    "rate_limit",
]
