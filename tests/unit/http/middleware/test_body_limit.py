"""BodyLimitMiddleware: 413 before reading a declared body, or while streaming an undeclared one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.unit.http.helpers import REQUEST_ID, assert_problem, call, client, stamped

from bastion.http import handlers
from bastion.http.middleware.body_limit import BodyLimitMiddleware, declared_length
from bastion.http.middleware.content_type import JsonContentMiddleware

LIMIT = 1000
UPLOAD_LIMIT = 5000


async def echo_size(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


async def swallow_errors(request: Request) -> Response:
    """A careless route: ignores a failed read and answers 200 with what it got."""
    try:
        body = await request.body()
    except Exception:  # noqa: BLE001 - the careless behaviour under test
        body = b"partial"
    return PlainTextResponse(f"stored {len(body)} bytes")


def limited(inner: ASGIApp | None = None) -> ASGIApp:
    app = inner or Starlette(
        routes=[
            Route("/echo", echo_size, methods=["GET", "POST"]),
            Route("/careless", swallow_errors, methods=["POST"]),
            Route("/v1/uploads/{id}", echo_size, methods=["POST"]),
            Route("/v1/avatar", echo_size, methods=["POST"]),
        ]
    )
    overrides = [("/v1/uploads/{id}", UPLOAD_LIMIT), ("/v1/avatar", 10)]
    return stamped(BodyLimitMiddleware(app, default_limit=LIMIT, overrides=overrides))


def assert_413(exchange_body: bytes, status: int) -> None:
    assert status == 413
    body = json.loads(exchange_body)
    assert (body["code"], body["request_id"]) == ("body_too_large", REQUEST_ID)


# -- declared length ------------------------------------------------------------------------


async def test_declared_length_over_limit_is_refused_without_reading() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    exchange = await call(
        limited(app), path="/echo", headers=[(b"content-length", b"1001")], chunks=[b"x" * 1001]
    )
    assert_413(exchange.body, exchange.status)
    assert exchange.receive_calls == 0
    assert called == []


async def test_body_at_the_limit_passes() -> None:
    async with client(limited()) as http:
        response = await http.post("/echo", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


async def test_huge_declared_length_is_413_not_500() -> None:
    exchange = await call(limited(), path="/echo", headers=[(b"content-length", b"9" * 5000)])
    assert_413(exchange.body, exchange.status)


@pytest.mark.parametrize(
    "values",
    [
        [b"abc"],
        [b"-1"],
        [b"+5"],
        [b"1e3"],
        [b""],
        [b"0x10"],
        [b"5, 6"],
        [b"5", b"6"],
        ["\u0665".encode()],
        [b"5 5"],
    ],
)
async def test_invalid_content_length_is_400(values: list[bytes]) -> None:
    headers = [(b"content-length", value) for value in values]
    async with client(limited()) as http:
        response = await http.post("/echo", headers=headers)
    assert_problem(response, 400, "invalid_request")


async def test_content_length_with_transfer_encoding_is_400() -> None:
    # Request smuggling: front end and back end could disagree on where the body ends.
    exchange = await call(
        limited(),
        path="/echo",
        headers=[(b"content-length", b"3"), (b"transfer-encoding", b"chunked")],
        chunks=[b"abc"],
    )
    assert exchange.status == 400


def test_declared_length_accepts_identical_repeats_and_leading_zeros() -> None:
    assert declared_length([(b"content-length", b"5, 5"), (b"content-length", b"5")]) == (5, False)
    assert declared_length([(b"content-length", b"0007")]) == (7, False)
    assert declared_length([(b"transfer-encoding", b"chunked")]) == (None, True)


# -- streamed bodies ---------------------------------------------------------------------------


async def test_chunked_body_over_limit_is_stopped_while_streaming() -> None:
    chunks = [b"x" * 100] * 50  # 5000 bytes, no Content-Length
    exchange = await call(
        limited(), path="/echo", headers=[(b"transfer-encoding", b"chunked")], chunks=chunks
    )
    assert_413(exchange.body, exchange.status)
    assert exchange.receive_calls == 11  # stopped at the first chunk past the limit


async def test_chunked_body_under_limit_passes() -> None:
    chunks = [b"x" * 100] * 10
    exchange = await call(
        limited(), path="/echo", headers=[(b"transfer-encoding", b"chunked")], chunks=chunks
    )
    assert exchange.status == 200
    assert json.loads(exchange.body) == {"size": 1000}


async def test_http2_body_without_length_is_counted() -> None:
    exchange = await call(limited(), path="/echo", http_version="2", chunks=[b"x" * 600] * 2)
    assert_413(exchange.body, exchange.status)


async def test_streamed_through_httpx_generator() -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b"y" * 100

    async with client(limited()) as http:
        response = await http.post("/echo", content=stream())
    assert_problem(response, 413, "body_too_large")


async def test_careless_route_cannot_turn_the_rejection_into_success() -> None:
    exchange = await call(
        limited(),
        path="/careless",
        headers=[(b"transfer-encoding", b"chunked")],
        chunks=[b"z" * 600] * 3,
    )
    assert_413(exchange.body, exchange.status)
    assert b"stored" not in exchange.body


class Item(BaseModel):
    name: str


async def test_fastapi_route_gets_413_not_its_parse_error() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    handlers.include(app)

    @app.post("/items")
    async def create(item: Item) -> dict[str, str]:
        return {"name": item.name}

    body = json.dumps({"name": "n" * 2000}).encode()
    exchange = await call(
        limited(app),
        path="/items",
        headers=[(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")],
        chunks=[body[i : i + 100] for i in range(0, len(body), 100)],
    )
    assert_413(exchange.body, exchange.status)


async def test_limit_passed_after_the_answer_started_aborts_the_response() -> None:
    async def eager(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            await send({"type": "http.response.body", "body": b".", "more_body": True})
        await send({"type": "http.response.body", "body": b"done"})

    exchange = await call(
        limited(eager),
        path="/echo",
        headers=[(b"transfer-encoding", b"chunked")],
        chunks=[b"x" * 400] * 5,
    )
    assert exchange.status == 200
    assert not exchange.complete
    assert b"done" not in exchange.body


# -- overrides and pass-through ----------------------------------------------------------------


async def test_override_templates() -> None:
    async with client(limited()) as http:
        assert (await http.post("/v1/uploads/42", content=b"u" * 4000)).json() == {"size": 4000}
        assert_problem(
            await http.post("/v1/uploads/42", content=b"u" * 5001), 413, "body_too_large"
        )
        assert_problem(
            await http.post("/v1/uploads/42/x", content=b"u" * 4000), 413, "body_too_large"
        )
        assert_problem(await http.post("/v1/avatar", content=b"a" * 11), 413, "body_too_large")
        assert_problem(await http.post("/echo", content=b"e" * 1001), 413, "body_too_large")


async def test_request_without_body_is_not_wrapped() -> None:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    exchange = await call(limited(app), method="GET", path="/echo")
    assert exchange.status == 204
    (receive,) = seen
    assert receive.__name__ == "receive"  # the server's own, not a counting wrapper


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        BodyLimitMiddleware(limited(), default_limit=-1)
    with pytest.raises(ValueError, match="negative"):
        BodyLimitMiddleware(limited(), default_limit=1, overrides=[("/x", -1)])


def test_override_template_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="start with"):
        BodyLimitMiddleware(limited(), default_limit=1, overrides=[("x/{id}", 5)])


async def test_non_http_scopes_pass_through() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append({"type": scope["type"]})

    await call(BodyLimitMiddleware(app, default_limit=0), scope_type="websocket", chunks=[b"x"])
    assert messages == [{"type": "websocket"}]


async def test_requests_without_a_body_skip_the_json_check_only() -> None:
    """Around the JSON check, a request without a body goes straight to the app; one with a
    body still crosses the check."""
    seen: list[str] = []

    async def app(scope: Scope, _: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    checked = JsonContentMiddleware(app, max_depth=4, max_elements=10)
    guarded = BodyLimitMiddleware(checked, default_limit=LIMIT)
    assert guarded._without_body is checked.without_body
    for headers in ([], [(b"content-length", b"0")]):
        assert (await call(guarded, method="GET", headers=headers)).status == 200
    text = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    exchange = await call(guarded, method="POST", headers=text, chunks=[b"hi"])
    assert exchange.status == 415
    chunked = [(b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")]
    exchange = await call(guarded, method="POST", headers=chunked, chunks=[b"hi"])
    assert exchange.status == 415
    assert seen == ["GET", "GET"]
