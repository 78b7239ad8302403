"""The per-route dependency: the same limits for any FastAPI route.

No ``from __future__ import annotations`` here: FastAPI must evaluate the route signatures, whose
``Depends(...)`` refer to local variables.
"""

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from bastion.http import handlers
from bastion.protections.ratelimit.dependency import rate_limit
from bastion.protections.ratelimit.interfaces import Ticker
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import RateLimiter

UPLOAD = Policy.per("upload", 2, 60)
PER_USER = Policy.per("per-user", 1, 60, keys=[KeyKind.USER])


async def authenticate(request: Request) -> str:
    user = request.headers.get("x-test-user", "anonymous")
    request.state.user_id = user  # what the authentication layer does
    return user


def app_with(limiter: RateLimiter | None, *, middleware: RateLimiter | None = None) -> FastAPI:
    app = FastAPI()
    handlers.include(app)

    @app.post("/upload", dependencies=[Depends(rate_limit(UPLOAD, limiter=limiter))])
    async def upload() -> dict[str, str]:
        return {"status": "stored"}

    @app.post("/me")
    async def me(
        user: Annotated[str, Depends(authenticate)],
        _: Annotated[None, Depends(rate_limit(PER_USER, limiter=limiter))],
    ) -> dict[str, str]:
        return {"user": user}

    if middleware is not None:
        app.add_middleware(RateLimitMiddleware, limiter=middleware)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_route_limit_with_headers_and_429(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [])
    async with client(app_with(limiter)) as http:
        first = await http.post("/upload")
        await http.post("/upload")
        refused = await http.post("/upload")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"upload";q=2;w=60'
    assert first.headers["ratelimit"] == '"upload";r=1;t=30'
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["ratelimit"] == '"upload";r=0;t=30'
    assert refused.json()["code"] == "rate_limited"


async def test_per_user_limit_after_authentication(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [])
    async with client(app_with(limiter)) as http:
        assert (await http.post("/me", headers={"x-test-user": "alice"})).status_code == 200
        assert (await http.post("/me", headers={"x-test-user": "alice"})).status_code == 429
        assert (await http.post("/me", headers={"x-test-user": "bob"})).status_code == 200


async def test_uses_the_limiter_the_middleware_published(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [])
    async with client(app_with(None, middleware=limiter)) as http:
        statuses = [(await http.post("/upload")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_uses_app_state(ticker: Ticker) -> None:
    app = app_with(None)
    app.state.rate_limiter = RateLimiter(MemoryStore(ticker=ticker), [])
    async with client(app) as http:
        statuses = [(await http.post("/upload")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_a_declared_limit_without_a_limiter_fails_closed() -> None:
    async with client(app_with(None)) as http:
        with pytest.raises(RuntimeError, match="needs a RateLimiter"):
            await http.post("/upload")


def test_needs_a_policy() -> None:
    with pytest.raises(ValueError, match="at least one policy"):
        rate_limit()
