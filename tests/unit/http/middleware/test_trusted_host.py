"""TrustedHostMiddleware: only allowed Host names are served (DNS rebinding, Host poisoning)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tests.unit.http.helpers import assert_problem, call, client, stamped

from bastion.http.middleware.trusted_host import TrustedHostMiddleware, normalize_host

ALLOWED = ["api.example.com", "*.tenants.example.com", "127.0.0.1", "[::1]", "LOCALHOST"]


async def hello(_: Request) -> Response:
    return PlainTextResponse("hello")


def guarded(allowed: list[str] | None = None) -> ASGIApp:
    inner = Starlette(routes=[Route("/", hello)])
    return stamped(
        TrustedHostMiddleware(inner, allowed_hosts=ALLOWED if allowed is None else allowed)
    )


async def status_for(
    host: bytes | None, allowed: list[str] | None = None, *, repeat: bytes | None = None
) -> int:
    headers = [(b"host", repeat)] if repeat is not None else []
    return (await call(guarded(allowed), method="GET", host=host, headers=headers)).status


@pytest.mark.parametrize(
    "host",
    [
        b"api.example.com",
        b"API.Example.COM",
        b"api.example.com:8443",
        b"api.example.com.",
        b"a.tenants.example.com",
        b"a.b.tenants.example.com:443",
        b"127.0.0.1:8000",
        b"[::1]:8000",
        b"[0:0:0:0:0:0:0:1]",
        b"localhost",
    ],
)
async def test_allowed_hosts(host: bytes) -> None:
    assert await status_for(host) == 200


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example",
        b"example.com",
        b"tenants.example.com",  # the wildcard is for subdomains only
        b"api.example.com.evil.net",
        b"evilapi.example.com",
        b"xtenants.example.com",
        b".tenants.example.com",
        b"a..tenants.example.com",
        b"api.example.com:80:80",
        b"api.example.com:http",
        b"api.example.com@evil.net",
        b"api.example.com/evil",
        b"api.example.com\r\nx: y",
        b"[::2]",
        b"[::1",
        b"::1",
        b"[fe80::1%25eth0]",
        b"",
        "ap\u0131.example.com".encode(),
    ],
)
async def test_other_hosts_rejected(host: bytes) -> None:
    assert await status_for(host) == 400


async def test_missing_and_repeated_host_rejected() -> None:
    assert await status_for(None) == 400
    assert await status_for(b"api.example.com", repeat=b"evil.example") == 400
    assert await status_for(b"api.example.com", repeat=b"api.example.com") == 400


async def test_rejection_is_a_problem_that_does_not_echo_the_host() -> None:
    async with client(guarded()) as http:
        response = await http.get("/", headers={"host": "evil-rebinding.example"})
    assert_problem(response, 400, "host_not_allowed")
    assert "evil-rebinding" not in response.text
    assert "location" not in response.headers


async def test_star_allows_any_well_formed_host() -> None:
    assert await status_for(b"anything.example", ["*"]) == 200
    assert await status_for(b"bad host", ["*"]) == 400
    assert await status_for(None, ["*"]) == 400


async def test_nothing_allowed_with_an_empty_list() -> None:
    assert await status_for(b"localhost", []) == 400


async def test_websocket_with_bad_host_is_closed() -> None:
    exchange = await call(guarded(), scope_type="websocket", host=b"evil.example")
    assert exchange.messages == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize(
    "pattern",
    ["*example.com", "api.*.example.com", "*.", "exa mple.com", "[::1", "h\u00f6st", "a:b"],
)
def test_bad_patterns_fail_at_startup(pattern: str) -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        TrustedHostMiddleware(guarded(), allowed_hosts=[pattern])


def test_bare_ipv6_setting_is_bracketed() -> None:
    middleware = TrustedHostMiddleware(guarded(), allowed_hosts=["::1"])
    assert middleware.is_allowed(b"[::1]")


def test_normalize_host() -> None:
    assert normalize_host(b"Example.COM.:8080") == b"example.com"
    assert normalize_host(b"[2001:DB8::0:1]:443") == b"[2001:db8::1]"
    assert normalize_host(b"example.com:") == b"example.com"
    assert normalize_host(b"example.com:123456") is None
