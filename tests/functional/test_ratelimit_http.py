"""Rate limits over HTTP with the foundation's proxy and request-id middleware and the real Redis.

Attack tests: a client that spoofs ``X-Forwarded-For`` from an untrusted address still lands in
its own bucket; refused requests are audited once per bucket per window, not once each.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.audit.events import AuditEvent, EventType
from bastion.http.middleware.proxy import ProxyHeadersMiddleware
from bastion.http.middleware.request_id import RequestIdMiddleware
from bastion.protections.ratelimit import (
    FailoverStore,
    FailureMode,
    Policy,
    RateLimiter,
    RateLimitMiddleware,
    RedisStore,
)

pytestmark = pytest.mark.redis

PROXY_NETWORK = ipaddress.ip_network("10.0.0.0/8")
LOGIN = Policy.per("login", 3, 60, paths=["/login"], methods=["POST"])
API = Policy.per("api-ip", 100, 60, failure_mode=FailureMode.FAIL_OPEN)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"client_ip": request.state.client_ip})


class Stack:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis = RedisStore.from_url(redis_url)
        self.recorder = Recorder()
        self.limiter = RateLimiter(
            FailoverStore(self.redis), [LOGIN, API], key_prefix=prefix, audit=self.recorder
        )
        routes = [Route("/login", whoami, methods=["POST"]), Route("/x", whoami)]
        inner = RateLimitMiddleware(Starlette(routes=routes), limiter=self.limiter)
        self.app = ProxyHeadersMiddleware(
            RequestIdMiddleware(inner), trusted_proxies=[PROXY_NETWORK]
        )

    def client(self, peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 4321))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def stack(redis_url: str) -> AsyncIterator[Stack]:
    prefix = f"bastion-test:{uuid.uuid4().hex}:"
    built = Stack(redis_url, prefix)
    yield built
    client = Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    await built.redis.aclose()


async def statuses(http: httpx.AsyncClient, n: int, **kwargs: Any) -> list[int]:
    return [(await http.post("/login", **kwargs)).status_code for _ in range(n)]


async def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key(
    stack: Stack,
) -> None:
    async with stack.client("203.0.113.50") as attacker:
        results = []
        for i in range(10):
            spoofed = {"x-forwarded-for": f"198.51.100.{i}", "forwarded": f"for=192.0.2.{i}"}
            results.append((await attacker.post("/login", headers=spoofed)).status_code)
        seen = (await attacker.get("/x", headers={"x-forwarded-for": "1.2.3.4"})).json()
    assert results == [200, 200, 200] + [429] * 7
    assert seen == {"client_ip": "203.0.113.50"}


async def test_a_trusted_proxy_separates_its_clients(stack: Stack) -> None:
    async with stack.client("10.0.0.7") as proxy:
        first = await statuses(proxy, 4, headers={"x-forwarded-for": "198.51.100.1"})
        second = await statuses(proxy, 4, headers={"x-forwarded-for": "198.51.100.2"})
    assert first == [200, 200, 200, 429]
    assert second == [200, 200, 200, 429]


async def test_header_values_over_redis(stack: Stack) -> None:
    async with stack.client("203.0.113.51") as http:
        answers = [await http.post("/login") for _ in range(4)]
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == '"login";q=3;w=60, "api-ip";q=100;w=60'
    assert answers[0].headers["ratelimit"] == '"login";r=2;t=20, "api-ip";r=99;t=1'
    assert answers[1].headers["ratelimit"] == '"login";r=1;t=40, "api-ip";r=98;t=2'
    assert answers[2].headers["ratelimit"] == '"login";r=0;t=60, "api-ip";r=97;t=2'
    refused = answers[3]
    assert refused.status_code == 429
    # Server time has moved on by a few milliseconds: the wait rounds up to the full 20 s.
    assert refused.headers["retry-after"] == "20"
    # The refused request took nothing from api-ip: still 97 left, and no later refill.
    assert refused.headers["ratelimit"] == '"login";r=0;t=20, "api-ip";r=97;t=2'
    body = refused.json()
    assert body["code"] == "rate_limited"
    assert body["violated-policies"] == ["login"]
    assert body["request_id"] == refused.headers["x-request-id"]
    assert "retry-after" not in answers[0].headers


async def test_refusals_are_audited_once_per_bucket(stack: Stack) -> None:
    async with stack.client("203.0.113.52") as first, stack.client("203.0.113.53") as second:
        await statuses(first, 30)
        await statuses(second, 5)
    events = stack.recorder.events
    assert [e.type for e in events] == [EventType.RATELIMIT_LIMIT_EXCEEDED] * 2
    assert {e.client_ip for e in events} == {"203.0.113.52", "203.0.113.53"}
    assert all(e.request_id for e in events)
