"""RateLimitMiddleware: 429 problem+json with the IETF fields, headers on allowed answers, 503
when a fail-closed policy cannot be decided."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from bastion.clock import FrozenClock
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.failover import FailoverStore
from bastion.protections.ratelimit.gcra import Decision
from bastion.protections.ratelimit.interfaces import Check, FailureMode, Ticker
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import STATE_LIMITER, RateLimiter

LOGIN = Policy.per("login", 2, 60, paths=["/login"], methods=["POST"])
API = Policy.per("api-ip", 10, 60, failure_mode=FailureMode.FAIL_OPEN)


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", headers={"x-app": "1"})


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"limiter": STATE_LIMITER in request.scope["state"]})


def build(
    store: Any, *, emit_headers: bool = True, policies: Sequence[Policy] = (LOGIN, API)
) -> Any:
    routes = [Route("/login", ok, methods=["POST"]), Route("/x", ok), Route("/state", state)]
    limiter = RateLimiter(store, policies, key_prefix="t:")
    return RateLimitMiddleware(Starlette(routes=routes), limiter=limiter, emit_headers=emit_headers)


def client(app: Any, ip: str = "192.0.2.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_allowed_answers_carry_the_ratelimit_fields(ticker: Ticker) -> None:
    async with client(build(MemoryStore(ticker=ticker))) as http:
        response = await http.post("/login")
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["x-app"] == "1"
    assert response.headers["ratelimit-policy"] == '"login";q=2;w=60, "api-ip";q=10;w=60'
    assert response.headers["ratelimit"] == '"login";r=1;t=30, "api-ip";r=9;t=6'
    assert "retry-after" not in response.headers


async def test_refused_request_gets_a_429_problem(ticker: Ticker) -> None:
    async with client(build(MemoryStore(ticker=ticker))) as http:
        await http.post("/login")
        await http.post("/login")
        response = await http.post("/login")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "30"
    assert response.headers["ratelimit-policy"] == '"login";q=2;w=60, "api-ip";q=10;w=60'
    assert response.headers["ratelimit"] == '"login";r=0;t=30, "api-ip";r=8;t=12'
    assert "x-app" not in response.headers  # the app never ran
    body = response.json()
    assert body["type"] == "urn:bastion:problem:rate_limited"
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["violated-policies"] == ["login"]
    assert "login" in body["detail"]


async def test_clients_have_separate_buckets(ticker: Ticker) -> None:
    app = build(MemoryStore(ticker=ticker))
    async with client(app, "192.0.2.1") as first, client(app, "192.0.2.2") as second:
        assert [(await first.post("/login")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await second.post("/login")).status_code == 200


async def test_headers_can_be_turned_off_for_allowed_answers(ticker: Ticker) -> None:
    async with client(build(MemoryStore(ticker=ticker), emit_headers=False)) as http:
        allowed = await http.post("/login")
        await http.post("/login")
        refused = await http.post("/login")
    assert "ratelimit" not in allowed.headers
    assert refused.headers["ratelimit"].startswith('"login";r=0')


async def test_no_policy_applies(ticker: Ticker) -> None:
    per_user = Policy.per("u", 1, 60, keys=[KeyKind.USER])
    async with client(build(MemoryStore(ticker=ticker), policies=[per_user])) as http:
        responses = [await http.get("/x") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "ratelimit" not in responses[0].headers


async def test_the_limiter_is_published_for_the_dependency(ticker: Ticker) -> None:
    async with client(build(MemoryStore(ticker=ticker), policies=[])) as http:
        assert (await http.get("/state")).json() == {"limiter": True}


class DownStore:
    """A primary store that never answers, like a Redis server that is down."""

    async def decide(self, *_: Sequence[Check]) -> tuple[Decision, ...]:
        raise StoreUnavailable from ConnectionError("down")

    async def record_failure(self, *_: Any) -> Any:
        raise StoreUnavailable

    async def status(self, *_: Any) -> Any:
        raise StoreUnavailable

    async def clear(self, *_: str) -> None:
        raise StoreUnavailable


async def test_redis_down_fail_closed_gets_503_fail_open_passes(ticker: Ticker) -> None:
    store = FailoverStore(DownStore(), probe_interval=5.0, ticker=ticker)
    async with client(build(store)) as http:
        login = await http.post("/login")
        other = await http.get("/x")
    assert login.status_code == 503
    assert login.headers["retry-after"] == "5"
    assert login.json()["code"] == "protection_unavailable"
    assert other.status_code == 200
    assert other.headers["ratelimit"] == '"api-ip";r=9;t=6'


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_other_scopes_pass_through(kind: str) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    limiter = RateLimiter(MemoryStore(), [Policy.per("all", 1, 60)])
    middleware = RateLimitMiddleware(app, limiter=limiter)
    for _ in range(3):
        await middleware({"type": kind, "path": "/", "client": ("192.0.2.1", 1)}, None, None)  # type: ignore[arg-type]
    assert seen == [kind] * 3


async def test_one_policy_fast_lane_answers_as_the_verdict_path(
    clock: FrozenClock, ticker: Ticker
) -> None:
    # GET /x is counted by api-ip alone: the in-memory store decides it without a verdict
    # (RateLimiter.admit). A flood must still be cut at the burst, with the same fields each
    # time as a store decided through the verdict path, and a refusal must take nothing.
    fast = build(MemoryStore(ticker=ticker), policies=[API])
    slow_store = MemoryStore(ticker=ticker)
    slow = build(_Awaited(slow_store), policies=[API])
    async with client(fast) as first, client(slow) as second:

        async def both() -> int:
            a, b = await first.get("/x"), await second.get("/x")
            assert a.status_code == b.status_code
            for name in ("ratelimit-policy", "ratelimit", "retry-after"):
                assert a.headers.get(name) == b.headers.get(name), name
            return a.status_code

        # A quarter second apart: windows that are not whole seconds (RateLimit's t rounds up).
        statuses = []
        for _ in range(12):
            statuses.append(await both())
            clock.advance(timedelta(milliseconds=250))
        assert statuses == [200] * 10 + [429] * 2
        clock.advance(timedelta(seconds=6))  # one unit back, the refusals took none
        assert [await both(), await both()] == [200, 429]
        refused = await first.get("/x")
    assert refused.json()["violated-policies"] == ["api-ip"]


async def test_several_policies_fast_lane_answers_as_the_verdict_path(
    clock: FrozenClock, ticker: Ticker
) -> None:
    # POST /login is counted by login and api-ip: the in-memory store takes both units without
    # a verdict (RateLimiter.admit, MemoryStore.take_each). The same fields as the verdict
    # path, all or nothing: a refusal by one policy takes no unit from the other.
    fast = build(
        MemoryStore(ticker=ticker), policies=[Policy.per("login", 3, 60, paths=["/login"]), API]
    )
    slow = build(
        _Awaited(MemoryStore(ticker=ticker)),
        policies=[Policy.per("login", 3, 60, paths=["/login"]), API],
    )
    async with client(fast) as first, client(slow) as second:

        async def both(path: str) -> int:
            method = "POST" if path == "/login" else "GET"
            a, b = await first.request(method, path), await second.request(method, path)
            assert a.status_code == b.status_code
            for name in ("ratelimit-policy", "ratelimit", "retry-after"):
                assert a.headers.get(name) == b.headers.get(name), name
            return a.status_code

        statuses = []
        for _ in range(5):
            statuses.append(await both("/login"))
            clock.advance(timedelta(milliseconds=700))
        assert statuses == [200] * 3 + [429] * 2
        # The refused logins took no api-ip unit: 10 - 3 remain for other paths.
        assert [await both("/x") for _ in range(8)] == [200] * 7 + [429]


class _Awaited:
    """A memory store seen only through ``decide``: the limiter's path for other stores."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        return await self.store.decide(checks)
