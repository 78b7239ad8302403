"""ErrorMiddleware: exceptions become a bare 500 problem; the detail goes to the server log only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs
from tests.unit.http.helpers import REQUEST_ID, assert_problem, call, client, stamped

from bastion.http import handlers
from bastion.http.errors import PayloadTooLarge
from bastion.http.middleware.errors import ErrorMiddleware

LEAKY = "SELECT password FROM users WHERE id=1 -- /etc/bastion/secret.key"
FRAGMENTS = ("SELECT", "password", "/etc/bastion", "secret.key", "RuntimeError", "Traceback", ".py")


def build_app(*, debug: bool = False) -> FastAPI:
    """The middleware inside FastAPI's own stack, as ``create_app`` places it."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(ErrorMiddleware, debug=debug)
    handlers.include(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(LEAKY)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/unavailable")
    async def unavailable() -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            yield b"first chunk "
            raise RuntimeError(LEAKY)

        return StreamingResponse(chunks())

    return app


async def test_exception_text_never_reaches_the_client() -> None:
    with capture_logs():
        async with client(stamped(build_app())) as http:
            response = await http.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert set(body) == {"type", "title", "status", "detail", "code", "request_id"}
    for fragment in FRAGMENTS:
        assert fragment not in response.text


async def test_debug_mode_shows_the_exception() -> None:
    with capture_logs():
        async with client(stamped(build_app(debug=True))) as http:
            response = await http.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert body["debug"]["exception"] == "RuntimeError"
    assert body["debug"]["message"] == LEAKY
    assert any("raise RuntimeError(LEAKY)" in line for line in body["debug"]["traceback"])
    assert body["debug"]["traceback"][0].startswith("Traceback")


async def test_exception_is_logged_with_full_detail() -> None:
    with capture_logs() as logs:
        async with client(stamped(build_app())) as http:
            await http.get("/boom")
    (entry,) = logs
    assert entry["event"] == "http_unhandled_exception"
    assert entry["log_level"] == "error"
    assert entry["exc_info"] is True
    assert entry["method"] == "GET"
    assert entry["path"] == "/boom"
    assert entry["request_id"] == REQUEST_ID
    assert entry["status"] == 500


async def test_5xx_answer_without_exception_is_logged() -> None:
    with capture_logs() as logs:
        async with client(stamped(build_app())) as http:
            response = await http.get("/unavailable")
    assert response.status_code == 503
    assert [(e["event"], e["status"]) for e in logs] == [("http_server_error_response", 503)]


async def test_success_is_untouched_and_not_logged() -> None:
    with capture_logs() as logs:
        async with client(stamped(build_app())) as http:
            response = await http.get("/ok")
    assert response.json() == {"ok": "yes"}
    assert logs == []


async def test_exception_after_response_started_is_logged_and_the_response_left_open() -> None:
    with capture_logs() as logs:
        exchange = await call(stamped(build_app(debug=True)), method="GET", path="/stream")
    assert exchange.status == 200
    # No closing message: the server aborts the connection instead of finishing a truncated body.
    assert not exchange.complete
    assert LEAKY.encode() not in exchange.body
    assert b"internal_error" not in exchange.body
    (entry,) = logs
    assert entry["event"] == "http_unhandled_exception"
    assert entry["response_started"] is True


async def test_bastion_error_outside_the_router_keeps_its_status() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise PayloadTooLarge

    with capture_logs() as logs:
        async with client(stamped(ErrorMiddleware(app, debug=False))) as http:
            response = await http.post("/", content=b"x")
    assert_problem(response, 413, "body_too_large")
    assert logs == []


async def test_cancellation_is_not_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await call(ErrorMiddleware(app, debug=False), method="GET")


async def test_non_http_scopes_pass_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("lifespan failure stays loud")

    with pytest.raises(RuntimeError, match="stays loud"):
        await call(ErrorMiddleware(app, debug=False), scope_type="lifespan")
