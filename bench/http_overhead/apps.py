"""The three apps the HTTP overhead benchmark compares, each serving the same trivial route.

- ``starlette``: a bare Starlette app (the framework's own cost, for the record);
- ``fastapi``: a bare FastAPI app, same route, no middleware (the baseline);
- ``bastion``: Bastion's ``create_app`` with its full middleware stack, same route added.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PAYLOAD = {"ok": True, "service": "bench"}


async def _starlette_endpoint(_: Request) -> JSONResponse:
    return JSONResponse(PAYLOAD)


def starlette() -> Starlette:
    return Starlette(routes=[Route("/bench", _starlette_endpoint)])


def _add_route(app: FastAPI) -> FastAPI:
    @app.get("/bench")
    async def bench() -> dict[str, object]:
        return PAYLOAD

    # First in the route table, in every app: the benchmark compares middleware stacks, not the
    # cost of matching a path against Bastion's own routes before reaching the trivial one.
    app.router.routes.insert(0, app.router.routes.pop())
    return app


def fastapi() -> FastAPI:
    return _add_route(FastAPI())


def _bastion(*, ratelimit: bool) -> FastAPI:
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.config import Settings  # noqa: PLC0415
    from bastion.protections.ratelimit.settings import RateLimitSettings  # noqa: PLC0415

    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "bench/results/data"))
    # The load comes from one address: a budget large enough that every request is allowed,
    # so the limiter's decision is paid on each request but no answer is a 429.
    limits = RateLimitSettings(
        enabled=ratelimit,
        policies={"api-ip": {"limit": 10_000_000, "window_seconds": 1}},
    )
    settings = Settings(
        env="test", data_dir=data_dir, secret_key="b" * 48, log_level="warning", ratelimit=limits
    )
    app = create_app(settings, freeze_gc_after_startup=True)  # as `bastion serve`
    # BENCH_DROP_MIDDLEWARE=Name,Name removes middleware by class name: for finding hot spots.
    drop = set(filter(None, os.environ.get("BENCH_DROP_MIDDLEWARE", "").split(",")))
    if drop:
        app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ not in drop]
    return _add_route(app)


def bastion() -> FastAPI:
    """Bastion's full stack, rate limiter (memory store) included."""
    return _bastion(ratelimit=True)


def bastion_nolimit() -> FastAPI:
    """Bastion's stack with the rate limiter switched off: the limiter's cost is the difference."""
    return _bastion(ratelimit=False)
