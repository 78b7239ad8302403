"""HttpCoreMiddleware: the fused outer layers do what each concern's own middleware does."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network
from typing import Any

import pytest
from prometheus_client import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import get_contextvars
from structlog.testing import capture_logs
from tests.unit.http.helpers import call
from tests.unit.http.middleware.test_audit_rejections import ListRecorder

from bastion.audit.events import EventType
from bastion.http.errors import NotFound
from bastion.http.header_block import EXTENSION as HEADER_BLOCK
from bastion.http.header_block import MESSAGE_KEY as HEADER_BLOCK_KEY
from bastion.http.header_block import HeaderBlock
from bastion.http.middleware.body_limit import BodyLimitMiddleware
from bastion.http.middleware.content_type import JsonContentMiddleware
from bastion.http.middleware.core import HttpCoreMiddleware
from bastion.http.middleware.cors import CORSMiddleware
from bastion.http.middleware.request_id import HEADER
from bastion.http.middleware.security_headers import DEFAULT_HEADERS
from bastion.http.problems import send_problem
from bastion.ops.metrics import Metrics
from bastion.protections.ratelimit.concurrency import ConcurrencyLimitMiddleware
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.middleware import RateLimitMiddleware
from bastion.protections.ratelimit.policies import Policy
from bastion.protections.ratelimit.services import RateLimiter

ALLOWED = ["testserver"]


class Answering:
    """An app that answers ``status`` with ``headers``; remembers each request's state."""

    def __init__(self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.headers = headers or []
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, _: Receive, send: Send) -> None:
        logged = get_contextvars().get("request_id")
        self.seen.append({**scope.get("state", {}), "logged": logged})
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"ok"})


def core(app: ASGIApp, **kwargs: Any) -> tuple[HttpCoreMiddleware, ListRecorder, Metrics]:
    recorder, metrics = ListRecorder(), Metrics()
    options: dict[str, Any] = {"allowed_hosts": ALLOWED, **kwargs}
    return HttpCoreMiddleware(app, metrics=metrics, recorder=recorder, **options), recorder, metrics


def names(exchange: Any) -> set[bytes]:
    return {name.lower() for name, _ in exchange.headers}


async def test_an_answer_gets_request_id_and_security_headers() -> None:
    inner = Answering(headers=[(b"X-Request-Id", b"forged"), (b"server", b"x"), (b"a", b"b")])
    app, _, _ = core(inner)
    exchange = await call(app, method="GET", headers=[(HEADER, b"abc-123")])
    assert exchange.header(HEADER) == [b"abc-123"]  # the app's own id is dropped
    assert b"server" not in names(exchange)
    assert (b"a", b"b") in exchange.headers
    assert {name.encode() for name, _ in DEFAULT_HEADERS} <= names(exchange)
    (state,) = inner.seen
    assert state["request_id"] == state["logged"] == "abc-123"
    assert state["client_ip"] == "203.0.113.7"


async def test_an_invalid_inbound_id_is_replaced() -> None:
    app, _, _ = core(Answering())
    exchange = await call(app, method="GET", headers=[(HEADER, b"bad\r\nid")])
    (value,) = exchange.header(HEADER)
    assert value != b"bad\r\nid"
    assert len(value) == 32


async def test_proxy_headers_are_honoured_from_trusted_proxies_only() -> None:
    inner = Answering()
    app, _, _ = core(inner, trusted_proxies=[ip_network("203.0.113.0/24")])
    forwarded = [(b"x-forwarded-for", b"198.51.100.9"), (b"x-forwarded-proto", b"https")]
    exchange = await call(app, method="GET", headers=forwarded)
    assert inner.seen[-1]["client_ip"] == "198.51.100.9"
    assert b"strict-transport-security" not in names(exchange)  # hsts_max_age is 0 here
    untrusted, _, _ = core(inner)
    await call(untrusted, method="GET", headers=forwarded)
    assert inner.seen[-1]["client_ip"] == "203.0.113.7"


async def test_hsts_on_https_when_configured() -> None:
    app, _, _ = core(Answering(), hsts_max_age=60)
    exchange = await call(app, method="GET", scheme="https")
    assert exchange.header(b"strict-transport-security") == [b"max-age=60; includeSubDomains"]


@pytest.mark.parametrize("host", [b"evil.example", None])
async def test_a_host_not_allowed_is_refused_audited_and_secured(host: bytes | None) -> None:
    inner = Answering()
    app, recorder, _ = core(inner)
    exchange = await call(app, method="GET", host=host)
    assert exchange.status == 400
    assert b"host_not_allowed" in exchange.body
    assert exchange.header(HEADER)
    assert b"content-security-policy" in names(exchange)
    assert not inner.seen
    (event,) = recorder.events
    assert event.type is EventType.HTTP_REQUEST_REJECTED
    assert event.reason == "host_not_allowed"


async def test_a_repeated_host_is_refused() -> None:
    app, _, _ = core(Answering())
    exchange = await call(app, method="GET", headers=[(b"host", b"testserver")])
    assert exchange.status == 400


@pytest.mark.parametrize("method", ["TRACE", "track", "CONNECT"])
async def test_blocked_methods_get_405(method: str) -> None:
    inner = Answering()
    app, recorder, _ = core(inner)
    exchange = await call(app, method=method)
    assert exchange.status == 405
    assert exchange.header(HEADER)
    assert not inner.seen
    assert not recorder.events  # 405 is not audited


async def test_an_exception_becomes_a_500_problem_logged_once() -> None:
    async def boom(_: Scope, __: Receive, ___: Send) -> None:
        raise RuntimeError("secret connection string")

    app, _, metrics = core(boom)
    with capture_logs() as logs:
        exchange = await call(app, method="GET")
    assert exchange.status == 500
    assert b"secret" not in exchange.body
    assert exchange.header(HEADER)
    assert b"content-security-policy" in names(exchange)
    assert [(e["event"], e["exc_info"]) for e in logs] == [("http_unhandled_exception", True)]
    assert 'status="500"' in generate_latest(metrics.registry).decode()


async def test_an_exception_after_the_answer_started_leaves_it_open() -> None:
    async def late(_: Scope, __: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("late")

    app, _, _ = core(late)
    with capture_logs() as logs:
        exchange = await call(app, method="GET")
    assert exchange.status == 200
    assert not exchange.complete
    assert [e["response_started"] for e in logs] == [True]


async def test_a_5xx_answer_is_logged_but_overload_shedding_is_not() -> None:
    app, _, _ = core(Answering(status=503))
    with capture_logs() as logs:
        await call(app, method="GET")
    assert [(e["event"], e["status"]) for e in logs] == [("http_server_error_response", 503)]

    release = asyncio.Event()

    async def slow(_: Scope, __: Receive, send: Send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    shedding, _, metrics = core(ConcurrencyLimitMiddleware(slow, max_concurrent=1))
    first = asyncio.ensure_future(call(shedding, method="GET"))
    await asyncio.sleep(0)
    with capture_logs() as logs:
        shed = await call(shedding, method="GET")
    release.set()
    await first
    assert shed.status == 503
    assert b"overloaded" in shed.body
    assert shed.header(HEADER)
    assert b"content-security-policy" in names(shed)
    assert logs == []
    assert 'status="503"' in generate_latest(metrics.registry).decode()


async def test_answers_are_counted_by_route_template() -> None:
    class Route:
        path = "/items/{id}"

    async def routed(scope: Scope, _: Receive, send: Send) -> None:
        scope["route"] = Route()
        await send_problem(scope, send, NotFound())

    app, _, metrics = core(routed)
    await call(app, method="GET", path="/items/123")
    text = generate_latest(metrics.registry).decode()
    assert 'route="/items/{id}"' in text
    assert "/items/123" not in text


async def test_websocket_gets_client_ip_and_host_check_only() -> None:
    sent: list[Message] = []
    seen: list[Scope] = []

    async def inner(scope: Scope, _: Receive, __: Send) -> None:
        seen.append(scope)

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    app, _, _ = core(inner)
    base: dict[str, Any] = {"type": "websocket", "client": ("192.0.2.1", 1), "path": "/ws"}
    await app({**base, "headers": [(b"host", b"testserver")]}, receive, send)
    assert seen[0]["state"]["client_ip"] == "192.0.2.1"
    assert "request_id" not in seen[0]["state"]
    await app({**base, "headers": [(b"host", b"evil.example")]}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert len(seen) == 1


async def test_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, _: Receive, __: Send) -> None:
        seen.append(scope)

    app, _, _ = core(inner)
    scope: dict[str, Any] = {"type": "lifespan"}
    await app(scope, _never, _never_send)
    assert seen == [{"type": "lifespan"}]


async def _never() -> Message:
    raise AssertionError("not called")


async def _never_send(_: Message) -> None:
    raise AssertionError("not called")


def limited(app: ASGIApp) -> RateLimitMiddleware:
    limiter = RateLimiter(MemoryStore(), [Policy.per("api-ip", 10, 60)], key_prefix="t:")
    return RateLimitMiddleware(app, limiter=limiter)


async def test_inner_layers_hand_their_headers_to_the_core() -> None:
    inner = Answering(headers=[(b"x-app", b"1")])
    app, _, _ = core(limited(inner))
    exchange = await call(app, method="GET")
    assert exchange.header(b"ratelimit-policy") == [b'"api-ip";q=10;w=60']
    assert len(exchange.header(b"ratelimit")) == 1
    assert (b"x-app", b"1") in exchange.headers
    assert exchange.header(HEADER)


async def test_handed_headers_are_dropped_when_the_answer_fails() -> None:
    async def boom(_: Scope, __: Receive, ___: Send) -> None:
        raise RuntimeError("boom")

    app, _, _ = core(limited(boom))
    with capture_logs():
        exchange = await call(app, method="GET")
    assert exchange.status == 500
    assert not exchange.header(b"ratelimit")


async def test_requests_without_origin_skip_cors_only() -> None:
    inner = Answering()
    cors = CORSMiddleware(inner, allow_origins=["https://app.example"])
    app, _, _ = core(cors)
    assert app._without_origin is cors.without_origin
    plain = await call(app, method="GET")
    assert not plain.header(b"vary")
    cross = await call(app, method="GET", headers=[(b"origin", b"https://app.example")])
    assert cross.header(b"access-control-allow-origin") == [b"https://app.example"]
    assert cross.header(b"vary") == [b"Origin"]
    assert cross.header(HEADER)
    preflight = [(b"origin", b"https://evil.example"), (b"access-control-request-method", b"GET")]
    denied = await call(app, method="OPTIONS", headers=preflight)
    assert denied.status == 403
    assert len(inner.seen) == 2


async def test_requests_without_a_body_skip_the_body_layers_only() -> None:
    inner = Answering()
    checked = JsonContentMiddleware(inner, max_depth=4, max_elements=10)
    body = BodyLimitMiddleware(checked, default_limit=10)
    limiter = limited(body)
    app, _, _ = core(limiter)
    assert limiter._without_body is body.without_body is checked.without_body
    exchange = await call(app, method="GET")
    assert exchange.status == 200
    assert exchange.header(b"ratelimit")  # the rate limit still applies
    assert inner.seen[-1]["no_body"] is True
    text = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    assert (await call(app, method="POST", headers=text, chunks=[b"hi"])).status == 415
    chunked = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    exchange = await call(app, method="POST", headers=chunked, chunks=[b"[1,", b"2,3,4,5,6,7,8]"])
    assert exchange.status == 413
    plain = [(b"content-type", b"text/plain")]
    http2 = await call(app, method="POST", headers=plain, http_version="2", chunks=[b"hi"])
    assert http2.status == 415  # HTTP/2 without Content-Length may carry a body: checked
    assert len(inner.seen) == 1


def _with_header_blocks(app: ASGIApp) -> ASGIApp:
    """``app`` behind a server that advertises the header-block extension."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "extensions": {HEADER_BLOCK: {}}}, receive, send)

    return server


def _written(exchange: Any) -> list[tuple[bytes, bytes]]:
    """The headers a block-writing server writes: the message's, then its block's."""
    block = exchange.start.get(HEADER_BLOCK_KEY)
    return [*exchange.headers, *(block.headers if block is not None else ())]


@pytest.mark.parametrize(
    ("app_headers", "scheme", "personal"),
    [
        ([], "http", False),
        ([(b"content-security-policy", b"default-src 'self'"), (b"server", b"x")], "http", False),
        ([(b"cache-control", b"public, max-age=60")], "http", True),
        ([], "https", False),
    ],
    ids=["plain", "own-csp", "personal", "https"],
)
async def test_header_block_carries_the_same_headers(
    app_headers: list[tuple[bytes, bytes]], scheme: str, personal: bool
) -> None:
    class Inner(Answering):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"]["authenticated"] = personal
            await super().__call__(scope, receive, send)

    plain, _, _ = core(Inner(headers=list(app_headers)), hsts_max_age=600)
    blocked, _, _ = core(Inner(headers=list(app_headers)), hsts_max_age=600)
    request = {"method": "GET", "scheme": scheme, "headers": [(HEADER, b"same-id")]}
    without = await call(plain, **request)
    with_blocks = await call(_with_header_blocks(blocked), **request)
    assert HEADER_BLOCK_KEY not in without.start
    block = with_blocks.start[HEADER_BLOCK_KEY]
    assert type(block) is HeaderBlock
    assert sorted(_written(with_blocks)) == sorted(without.headers)
    written = dict(_written(with_blocks))
    assert len(written) == len(_written(with_blocks))  # no header twice
    if personal:
        assert written[b"cache-control"] == b"no-store"
    if app_headers and app_headers[0][0] == b"content-security-policy":
        assert written[b"content-security-policy"] == b"default-src 'self'"
        assert b"content-security-policy" not in dict(block.headers)
    assert (b"strict-transport-security" in written) == (scheme == "https")


async def test_remembered_host_decisions_give_the_same_answers() -> None:
    # The core reads the allowlist's remembered decisions first: a refused Host stays refused,
    # an allowed one stays allowed, and a repeated Host header is refused even when remembered.
    app, _, _ = core(Answering())
    for _ in range(3):
        assert (await call(app, method="GET")).status == 200
        assert (await call(app, method="GET", host=b"evil.example")).status == 400
    assert app.allowlist.decisions == {b"testserver": True, b"evil.example": False}
    repeated = [(b"host", b"testserver")]
    assert (await call(app, method="GET", headers=repeated)).status == 400
