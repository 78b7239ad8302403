"""RequestIdMiddleware: a well-formed inbound id is kept; anything else is replaced, not echoed."""

from __future__ import annotations

import re

import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from structlog.contextvars import get_contextvars, merge_contextvars
from structlog.testing import capture_logs
from tests.unit.http.helpers import call, client

from bastion.http.errors import NotFound
from bastion.http.middleware.request_id import (
    MAX_LENGTH,
    RequestIdMiddleware,
    is_valid_request_id,
)
from bastion.http.problems import send_problem

GENERATED = re.compile(r"[0-9a-f]{32}")


async def echo_state(request: Request) -> Response:
    structlog.get_logger("test").info("inside")
    return JSONResponse(
        {"state": request.state.request_id, "logged": get_contextvars().get("request_id")}
    )


async def own_header(_: Request) -> Response:
    return PlainTextResponse("x", headers={"X-Request-ID": "forged-by-route"})


APP = RequestIdMiddleware(Starlette(routes=[Route("/", echo_state), Route("/own", own_header)]))


async def test_generates_an_id_when_none_is_sent() -> None:
    async with client(APP) as http:
        first = await http.get("/")
        second = await http.get("/")
    rid = first.headers["x-request-id"]
    assert GENERATED.fullmatch(rid)
    assert first.json() == {"state": rid, "logged": rid}
    assert second.headers["x-request-id"] != rid


async def test_well_formed_inbound_id_is_kept() -> None:
    async with client(APP) as http:
        response = await http.get("/", headers={"x-request-id": "abc-123.DEF_4"})
    assert response.headers["x-request-id"] == "abc-123.DEF_4"
    assert response.json()["state"] == "abc-123.DEF_4"


@pytest.mark.parametrize(
    "value",
    [
        b"abc\r\nSet-Cookie: session=evil",
        b"abc\nX-Injected: 1",
        b"a" * (MAX_LENGTH + 1),
        b"x" * 10_000,
        "\u00e9t\u00e9".encode(),
        "\u202eevil".encode(),
        b"",
        b"has space",
        b'{"json":"in logs"}',
        b"../../etc/passwd",
        b"id\x00nul",
    ],
)
async def test_malformed_inbound_id_is_replaced_never_echoed(value: bytes) -> None:
    exchange = await call(APP, method="GET", headers=[(b"x-request-id", value)])
    (rid,) = exchange.header(b"x-request-id")
    assert GENERATED.fullmatch(rid.decode())
    assert value not in exchange.body or not value
    assert not any(b"evil" in v or b"Injected" in v for _, v in exchange.headers)


async def test_repeated_inbound_header_is_replaced() -> None:
    exchange = await call(
        APP, method="GET", headers=[(b"x-request-id", b"one"), (b"x-request-id", b"two")]
    )
    assert GENERATED.fullmatch(exchange.header(b"x-request-id")[0].decode())


async def test_exactly_64_characters_is_accepted() -> None:
    value = "a" * MAX_LENGTH
    async with client(APP) as http:
        response = await http.get("/", headers={"x-request-id": value})
    assert response.headers["x-request-id"] == value


async def test_route_cannot_set_a_second_request_id() -> None:
    exchange = await call(APP, method="GET", path="/own")
    assert len(exchange.header(b"x-request-id")) == 1
    assert exchange.header(b"x-request-id")[0] != b"forged-by-route"


async def test_error_answers_carry_the_id() -> None:
    async def failing(scope, receive, send):  # type: ignore[no-untyped-def]
        await send_problem(scope, send, NotFound())

    async with client(RequestIdMiddleware(failing)) as http:
        response = await http.get("/", headers={"x-request-id": "req-1"})
    assert response.headers["x-request-id"] == "req-1"
    assert response.json()["request_id"] == "req-1"


async def test_logs_carry_the_id_and_it_is_unbound_after() -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        async with client(APP) as http:
            await http.get("/", headers={"x-request-id": "log-me"})
    assert [entry.get("request_id") for entry in logs if entry["event"] == "inside"] == ["log-me"]
    assert "request_id" not in get_contextvars()


async def test_outer_binding_is_restored() -> None:
    structlog.contextvars.bind_contextvars(request_id="outer")
    try:
        await call(APP, method="GET")
        assert get_contextvars()["request_id"] == "outer"
    finally:
        structlog.contextvars.clear_contextvars()


def test_validator() -> None:
    assert is_valid_request_id(b"A-z_0.9")
    assert not is_valid_request_id(b"a/b")
    assert not is_valid_request_id(b"a+b")
