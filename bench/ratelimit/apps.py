"""Apps for the rate limiter's share of the HTTP overhead benchmark (same route as
``bench.http_overhead.apps``), each a uvicorn factory:

- ``fastapi``: bare FastAPI, no middleware (the baseline);
- ``fastapi_memory``: the same app behind :class:`RateLimitMiddleware` with the default policy
  table and the memory store;
- ``fastapi_redis``: the same with the Redis store behind the failover (``BENCH_REDIS_URL``,
  keys under ``BENCH_KEY_PREFIX``);
- ``bastion`` / ``bastion_ratelimit``: Bastion's ``create_app``, without and with the limiter
  added outermost (until the lead wires it into the stack).

The general per-IP budget is raised so that every request is allowed: the benchmark measures the
cost of deciding and of the RateLimit fields, not of answering 429.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from bastion.protections.ratelimit import RateLimitMiddleware, RateLimitSettings
from bastion.protections.ratelimit.wiring import build_rate_limiting

PAYLOAD = {"ok": True, "service": "bench"}
#: Far above what one worker serves in the window: every benchmark request is allowed.
UNLIMITED = {"api-ip": {"limit": 10_000_000}, "api-user": {"limit": 10_000_000}}


def _add_route(app: FastAPI) -> FastAPI:
    @app.get("/bench")
    async def bench() -> dict[str, object]:
        return PAYLOAD

    return app


def settings(storage: str = "memory") -> RateLimitSettings:
    if storage == "redis":
        return RateLimitSettings(
            storage="redis",
            redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),  # type: ignore[arg-type]
            key_prefix=os.environ.get("BENCH_KEY_PREFIX", "bench:"),
            policies=UNLIMITED,  # type: ignore[arg-type]
        )
    return RateLimitSettings(policies=UNLIMITED)  # type: ignore[arg-type]


def _limited(app: FastAPI, storage: str) -> FastAPI:
    built = build_rate_limiting(settings(storage))
    app.add_middleware(RateLimitMiddleware, limiter=built.limiter)
    return app


def fastapi() -> FastAPI:
    return _add_route(FastAPI())


def fastapi_memory() -> FastAPI:
    return _limited(fastapi(), "memory")


def fastapi_redis() -> FastAPI:
    return _limited(fastapi(), "redis")


def bastion() -> FastAPI:
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.config import Settings  # noqa: PLC0415

    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "bench/results/data"))
    config = Settings(env="test", data_dir=data_dir, secret_key="b" * 48, log_level="warning")
    return _add_route(create_app(config))


def bastion_ratelimit() -> FastAPI:
    return _limited(bastion(), "memory")
