"""Building the services from settings: the store is chosen by a setting, not an import."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.protections.ratelimit.failover import FailoverStore
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.redis_store import RedisStore
from bastion.protections.ratelimit.settings import RateLimitSettings
from bastion.protections.ratelimit.wiring import build_rate_limiting, include


async def test_memory_storage() -> None:
    built = build_rate_limiting(RateLimitSettings())
    assert isinstance(built.store, MemoryStore)
    assert built.redis is None
    assert set(built.backoff) == {"password", "totp", "recovery_code"}
    assert built.limiter.table["login"].rate.limit == 20
    await built.aclose()


async def test_redis_storage_is_wrapped_in_the_failover() -> None:
    registry = CollectorRegistry()
    settings = RateLimitSettings(storage="redis", redis_url="redis://127.0.0.1:1/0")  # type: ignore[arg-type]
    built = build_rate_limiting(settings, registry=registry)
    assert isinstance(built.store, FailoverStore)
    assert isinstance(built.store.primary, RedisStore)
    assert registry.get_sample_value("bastion_ratelimit_store_degraded") == 0
    await built.aclose()


async def test_disabled_means_no_policies_but_the_middleware_still_works() -> None:
    built = build_rate_limiting(RateLimitSettings(enabled=False))
    assert not built.limiter.table


@pytest.mark.parametrize("fused", [False, True], ids=["pair", "one layer"])
async def test_the_middleware_pair(fused: bool) -> None:
    registry = CollectorRegistry()
    built = build_rate_limiting(
        RateLimitSettings(policies={"api-ip": {"limit": 1}}, max_concurrent_requests=5),
        registry=registry,
    )

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    middleware: list[Middleware] = (
        [built.protections_middleware()]
        if fused
        else [built.concurrency_middleware(), built.rate_limit_middleware()]
    )
    app = Starlette(routes=[Route("/", home)], middleware=middleware)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/")).status_code == 429
    # The cap's metrics, in the registry given, whichever form carries it.
    assert registry.get_sample_value("bastion_overload_requests_in_flight") == 0
    assert registry.get_sample_value("bastion_overload_requests_shed_total") == 0
    if fused:
        (limits,) = middleware
        assert limits.kwargs["max_concurrent"] == 5


def test_include_publishes_the_limiter() -> None:
    app = Starlette()
    built = build_rate_limiting(RateLimitSettings())
    include(app, built)
    assert app.state.rate_limiter is built.limiter
