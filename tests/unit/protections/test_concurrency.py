"""The per-worker concurrency cap: a fast 503 with Retry-After beyond it, no queueing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.protections.ratelimit.concurrency import ConcurrencyLimitMiddleware
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import Policy
from bastion.protections.ratelimit.services import RateLimiter


def fused(app: Any, **options: Any) -> RateLimitMiddleware:
    """The cap as the app has it: in the rate limit layer (``protections_middleware``)."""
    limiter = RateLimiter(MemoryStore(), [Policy.per("api-ip", 1000, 60)], key_prefix="t:")
    return RateLimitMiddleware(app, limiter=limiter, **options)


def active(app: Any) -> int:
    return app.cap.active  # type: ignore[no-any-return]


CAPPED = pytest.mark.parametrize("capped", [ConcurrencyLimitMiddleware, fused])


class Gate:
    """An endpoint that holds every request until released; ``full`` is set at ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.release = asyncio.Event()
        self.full = asyncio.Event()
        self.capacity = capacity
        self.entered = 0

    async def slow(self, _: Request) -> PlainTextResponse:
        self.entered += 1
        if self.entered == self.capacity:
            self.full.set()
        await self.release.wait()
        return PlainTextResponse("done")


@CAPPED
async def test_beyond_the_cap_a_fast_503(capped: Any) -> None:
    gate, registry = Gate(capacity=2), CollectorRegistry()
    app = capped(Starlette(routes=[Route("/slow", gate.slow)]), max_concurrent=2, registry=registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        first = asyncio.create_task(http.get("/slow"))
        second = asyncio.create_task(http.get("/slow"))
        await asyncio.wait_for(gate.full.wait(), timeout=5)
        assert registry.get_sample_value("bastion_overload_requests_in_flight") == 2
        shed = await asyncio.wait_for(http.get("/slow"), timeout=1.0)  # answered, not queued
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.headers["content-type"] == "application/problem+json"
        assert shed.json()["code"] == "overloaded"
        assert gate.entered == 2
        gate.release.set()
        assert [(await t).status_code for t in (first, second)] == [200, 200]
        assert (await http.get("/slow")).status_code == 200
    assert active(app) == 0
    assert registry.get_sample_value("bastion_overload_requests_shed_total") == 1


@CAPPED
async def test_the_slot_is_freed_when_the_app_fails(capped: Any) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    app = capped(broken, max_concurrent=1)
    for _ in range(3):
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("::1", 1)}
        with pytest.raises(RuntimeError):
            await app(scope, None, None)
    assert active(app) == 0


async def test_non_http_scopes_are_not_counted() -> None:
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    app = ConcurrencyLimitMiddleware(inner, max_concurrent=1)
    app.active = 1  # full
    await app({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert calls == ["lifespan"]


@CAPPED
def test_the_cap_must_be_positive(capped: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        capped(Starlette(), max_concurrent=0)


def test_without_max_concurrent_the_rate_limit_layer_has_no_cap() -> None:
    assert fused(Starlette()).cap is None
