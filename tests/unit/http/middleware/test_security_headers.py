"""SecurityHeadersMiddleware: the headers are on every answer; routes may override, not remove."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs
from tests.unit.http.helpers import assert_problem, call, client, stamped

from bastion.http import handlers
from bastion.http.errors import PayloadTooLarge
from bastion.http.middleware.errors import ErrorMiddleware
from bastion.http.middleware.security_headers import (
    CONTENT_SECURITY_POLICY,
    SecurityHeadersMiddleware,
)
from bastion.http.problems import send_problem

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
HSTS = "max-age=63072000; includeSubDomains"


def build_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(ErrorMiddleware, debug=False)
    handlers.include(app)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/docs-like")
    async def docs_like() -> HTMLResponse:
        return HTMLResponse(
            "<html></html>", headers={"Content-Security-Policy": "script-src 'self'"}
        )

    @app.get("/cacheable")
    async def cacheable(request: Request) -> PlainTextResponse:
        if request.query_params.get("auth"):
            request.state.authenticated = True
        return PlainTextResponse("x", headers={"Cache-Control": "public, max-age=60"})

    @app.get("/banner")
    async def banner() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Server": "nginx/1.2.3", "X-Powered-By": "PHP/5"})

    return app


def secured(inner: ASGIApp | None = None, hsts_max_age: int = 63_072_000) -> ASGIApp:
    app = inner or build_app()
    return stamped(SecurityHeadersMiddleware(app, hsts_max_age=hsts_max_age))


def assert_secure(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], name
    policy = response.headers["permissions-policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb", "interest-cohort"):
        assert f"{feature}=()" in policy
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/nope", 404), ("/boom", 500)])
async def test_headers_on_success_and_errors(path: str, status: int) -> None:
    with capture_logs():
        async with client(secured()) as http:
            response = await http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] != "text/plain; charset=utf-8"
    assert_secure(response)


async def test_headers_on_problem_from_inner_middleware() -> None:
    async def rejecting(scope: Scope, receive: Receive, send: Send) -> None:
        await send_problem(scope, send, PayloadTooLarge())

    async with client(secured(rejecting)) as http:
        response = await http.post("/anything", content=b"x")
    assert_problem(response, 413, "body_too_large")
    assert_secure(response)


async def test_hsts_only_over_https() -> None:
    async with client(secured()) as http:
        assert "strict-transport-security" not in (await http.get("/ok")).headers
    async with client(secured(), https=True) as http:
        response = await http.get("/ok")
    assert response.headers.get_list("strict-transport-security") == [HSTS]
    assert_secure(response)


async def test_hsts_disabled_with_zero_max_age() -> None:
    async with client(secured(hsts_max_age=0), https=True) as http:
        assert "strict-transport-security" not in (await http.get("/ok")).headers


def test_negative_hsts_is_refused() -> None:
    with pytest.raises(ValueError, match="hsts_max_age"):
        SecurityHeadersMiddleware(build_app(), hsts_max_age=-1)


async def test_route_csp_is_honoured_not_duplicated() -> None:
    async with client(secured()) as http:
        response = await http.get("/docs-like")
    assert response.headers.get_list("content-security-policy") == ["script-src 'self'"]
    assert response.headers["x-frame-options"] == "DENY"


async def test_route_cache_control_is_kept_for_anonymous_answers() -> None:
    async with client(secured()) as http:
        response = await http.get("/cacheable")
    assert response.headers.get_list("cache-control") == ["public, max-age=60"]


async def test_authenticated_answers_are_never_cached() -> None:
    async with client(secured()) as http:
        response = await http.get("/cacheable", params={"auth": "1"})
    assert response.headers.get_list("cache-control") == ["no-store"]


async def test_server_banners_are_removed() -> None:
    async with client(secured()) as http:
        response = await http.get("/banner")
    assert_secure(response)


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    exchange = await call(SecurityHeadersMiddleware(app, hsts_max_age=1), scope_type="websocket")
    assert seen == ["websocket"]
    assert exchange.messages == []
