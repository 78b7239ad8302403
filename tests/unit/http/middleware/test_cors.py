"""CORSMiddleware: exact origin allowlist, nothing by default, never ``*`` with credentials."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tests.unit.http.helpers import assert_problem, client, stamped

from bastion.http.middleware.cors import CORSMiddleware, normalize_origin

APP_ORIGIN = "https://app.example.com"


async def resource(request: Request) -> Response:
    return PlainTextResponse(f"{request.method} reached", headers={"Vary": "Accept-Encoding"})


def cors(
    origins: Sequence[str] = (APP_ORIGIN,), *, credentials: bool = False, max_age: int = 600
) -> ASGIApp:
    inner = Starlette(routes=[Route("/r", resource, methods=["GET", "POST", "OPTIONS"])])
    return stamped(
        CORSMiddleware(inner, allow_origins=origins, allow_credentials=credentials, max_age=max_age)
    )


async def preflight(app: ASGIApp, origin: str, **headers: str) -> httpx.Response:
    async with client(app) as http:
        return await http.options(
            "/r",
            headers={"origin": origin, "access-control-request-method": "POST", **headers},
        )


async def actual(app: ASGIApp, origin: str | None) -> httpx.Response:
    async with client(app) as http:
        return await http.get("/r", headers={"origin": origin} if origin else {})


def assert_no_cors(response: httpx.Response) -> None:
    assert not [name for name in response.headers if name.startswith("access-control-")]


# -- nothing by default -------------------------------------------------------------------------


async def test_default_allows_no_origin() -> None:
    app = cors(())
    response = await preflight(app, APP_ORIGIN)
    assert_problem(response, 403, "cors_origin_denied")
    assert_no_cors(response)
    assert response.headers["vary"] == "Origin"
    response = await actual(app, APP_ORIGIN)
    assert response.text == "GET reached"
    assert_no_cors(response)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com.evil.net",
        "https://evilapp.example.com",
        "https://evil.app.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.co",
        "null",
        "https://app.example.com/",
        "https://app.example.com, https://evil.net",
        "",
    ],
)
async def test_near_miss_origins_are_denied(origin: str) -> None:
    response = await preflight(cors(), origin)
    assert_problem(response, 403, "cors_origin_denied")
    assert_no_cors(response)
    response = await actual(cors(), origin)
    assert_no_cors(response)


# -- allowed origins ------------------------------------------------------------------------------


async def test_preflight_from_allowed_origin() -> None:
    response = await preflight(
        cors(max_age=300), APP_ORIGIN, **{"access-control-request-headers": "content-type, x-evil"}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["vary"] == "Origin"
    assert response.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE"
    allowed_headers = response.headers["access-control-allow-headers"]
    assert allowed_headers == "authorization, content-type, x-request-id, x-csrf-token"
    assert "x-evil" not in allowed_headers  # requested headers are never reflected
    assert response.headers["access-control-max-age"] == "300"
    assert "access-control-allow-credentials" not in response.headers


async def test_preflight_with_credentials() -> None:
    response = await preflight(cors(credentials=True), APP_ORIGIN)
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN


async def test_origin_match_ignores_case_of_scheme_and_host() -> None:
    response = await preflight(cors(), "HTTPS://App.Example.COM")
    assert response.status_code == 204


async def test_actual_request_from_allowed_origin() -> None:
    response = await actual(cors(credentials=True), APP_ORIGIN)
    assert response.text == "GET reached"
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == (
        "X-Request-ID, RateLimit, RateLimit-Policy, Retry-After"
    )
    assert response.headers.get_list("vary") == ["Accept-Encoding, Origin"]


async def test_no_origin_means_no_cors_and_no_change() -> None:
    response = await actual(cors(), None)
    assert_no_cors(response)
    assert response.headers.get_list("vary") == ["Accept-Encoding"]


async def test_options_without_request_method_is_not_a_preflight() -> None:
    async with client(cors()) as http:
        response = await http.options("/r", headers={"origin": APP_ORIGIN})
    assert response.text == "OPTIONS reached"
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN


async def test_star_without_credentials() -> None:
    response = await actual(cors(["*"]), "https://anyone.example")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert (await preflight(cors(["*"]), "https://anyone.example")).status_code == 204


# -- configuration ------------------------------------------------------------------------------


def test_star_with_credentials_is_a_misconfiguration() -> None:
    with pytest.raises(ValueError, match="allow_credentials"):
        cors(["*"], credentials=True)


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com?q",
        "https://user@app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com:99999",
        "https://app.example.com:",
        "*.example.com",
    ],
)
def test_malformed_origins_fail_at_startup(origin: str) -> None:
    with pytest.raises(ValueError, match=r"origin|port"):
        cors([origin])


@pytest.mark.parametrize(
    ("configured", "normalized"),
    [
        ("HTTPS://App.Example.com", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_normalize_origin(configured: str, normalized: str) -> None:
    assert normalize_origin(configured) == normalized
