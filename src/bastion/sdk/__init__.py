"""``bastion.sdk``: Bastion's controls for any FastAPI or Starlette service.

Rate limiting, per app (middleware) or per route (dependency), with the same GCRA limiter,
stores and policies Bastion uses itself::

    from bastion.sdk import RateLimitSettings, build_rate_limiting, rate_limit

    limits = build_rate_limiting(RateLimitSettings(storage="redis", redis_url="redis://..."))
    app = FastAPI(middleware=[limits.concurrency_middleware(), limits.rate_limit_middleware()])
    install_problem_handlers(app)  # Bastion's errors -> RFC 9457 problem+json

    @app.post("/reports", dependencies=[Depends(rate_limit("reports"))])
    async def create_report() -> ...

Authentication with Bastion's access tokens (offline against the JWK Set, optionally confirming
the session is live), see :mod:`bastion.sdk.auth`::

    auth = BastionAuth(
        issuer="https://id.example.com",
        audience="orders-api",
        jwks_url="https://id.example.com/.well-known/jwks.json",
    )

    @app.get("/orders")
    async def orders(user: AuthenticatedUser = Depends(auth)) -> ...

Authorization decisions, deny by default (403, or 404 to hide existence; 503 when Bastion
cannot answer), see :mod:`bastion.sdk.authz`::

    authz = Authorizer(RemoteChecker("https://id.example.com", store_id, token=...), principal=auth)

    @app.get("/documents/{doc_id}")
    async def read(_: Decision = Depends(authz.require("can_view", "document",
                                                       from_path="doc_id"))) -> ...

Verifying Bastion's signed alert webhooks on the receiving side, see
:mod:`bastion.sdk.webhooks`::

    alert_id = verify_webhook(secret, request.headers, await request.body())

Everything importable from here is public and stable; the rest of Bastion is not.
"""

import typing

from bastion.http.handlers import include as install_problem_handlers
from bastion.identity.tokens import AssuranceLevel, AuthMethod, InvalidToken, KeySetUnavailable
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
    StoreUnavailable,
    TooManyAttempts,
    build_rate_limiting,
    rate_limit,
)
from bastion.sdk.auth import AuthenticatedUser, BastionAuth, JwksCache
from bastion.sdk.authz import (
    AuthorizationUnavailable,
    Authorizer,
    EmbeddedChecker,
    RemoteChecker,
)
from bastion.sdk.webhooks import WebhookVerificationFailed, sign_webhook, verify_webhook

__all__ = [
    "AssuranceLevel",
    "AuthMethod",
    "AuthenticatedUser",
    "AuthorizationUnavailable",
    "Authorizer",
    "BastionAuth",
    "ConcurrencyLimitMiddleware",
    "EmbeddedChecker",
    "FailoverStore",
    "FailureBackoff",
    "FailureMode",
    "InvalidToken",
    "JwksCache",
    "KeyKind",
    "KeySetUnavailable",
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
    "RemoteChecker",
    "StoreUnavailable",
    "TooManyAttempts",
    "WebhookVerificationFailed",
    "build_rate_limiting",
    "install_problem_handlers",
    "rate_limit",
    "sign_webhook",
    "verify_webhook",
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
