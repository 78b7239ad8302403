"""MethodFilterMiddleware: TRACE, TRACK and CONNECT are refused; the router handles the rest."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp
from tests.unit.http.helpers import assert_problem, call, client, stamped

from bastion.http import handlers
from bastion.http.middleware.methods import MethodFilterMiddleware


def build_app() -> ASGIApp:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    handlers.include(app)

    @app.get("/things")
    async def things() -> list[str]:
        return []

    @app.post("/things")
    async def add_thing() -> dict[str, str]:
        return {}

    @app.api_route("/anything", methods=["GET", "TRACE"])
    async def anything() -> dict[str, str]:
        return {"reached": "route"}

    return stamped(MethodFilterMiddleware(app))


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "CONNECT"])
@pytest.mark.parametrize("path", ["/things", "/no/such/path", "/anything"])
async def test_blocked_methods_get_405_on_any_path(method: str, path: str) -> None:
    async with client(build_app()) as http:
        response = await http.request(method, path, headers={"cookie": "session=SECRET"})
    assert_problem(response, 405, "method_not_allowed")
    # Cross-site tracing: nothing of the request is echoed.
    assert "SECRET" not in response.text


@pytest.mark.parametrize("method", ["trace", "Track", "connect"])
async def test_any_spelling_is_blocked(method: str) -> None:
    exchange = await call(build_app(), method=method, path="/anything")
    assert exchange.status == 405


async def test_allowed_methods_pass() -> None:
    async with client(build_app()) as http:
        assert (await http.get("/things")).json() == []
        assert (await http.post("/things")).json() == {}


async def test_router_answers_404_for_unknown_paths() -> None:
    async with client(build_app()) as http:
        response = await http.get("/no/such/path")
    assert_problem(response, 404, "not_found")


async def test_router_answers_405_with_allow_for_a_known_path() -> None:
    async with client(build_app()) as http:
        response = await http.delete("/things")
    assert_problem(response, 405, "method_not_allowed")
    # Starlette lists the methods of the first route that matches the path (here GET only).
    assert "GET" in response.headers["allow"]


async def test_unknown_method_goes_to_the_router() -> None:
    async with client(build_app()) as http:
        response = await http.request("PROPFIND", "/things")
    assert_problem(response, 405, "method_not_allowed")
    assert "allow" in response.headers
