"""``GET /v1/account`` and ``POST /v1/sessions/refresh`` are served by plain Starlette routes
tried first (``bastion.identity._direct``): their answers must be the FastAPI routes' answers.

Each case is sent twice to the same app and database: once as served, once with the direct
routes taken out (the FastAPI routes, still registered, answer), and the two answers compared
(status, body without request id or fresh tokens, headers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    VARYING_HEADERS,
    Login,
    client_for,
    create_account,
    identity_settings,
    login,
    running_app,
)

from bastion.config import Settings
from bastion.identity._direct import DirectRoute

#: Fresh on every answer: compared by presence only.
FRESH = frozenset({"access_token", "refresh_token", "csrf_token", "request_id"})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as app:
        yield app


@contextmanager
def fastapi_only(app: FastAPI) -> Any:
    """The app without its direct routes, for the duration of the block."""
    routes = app.router.routes
    taken = [(n, r) for n, r in enumerate(routes) if isinstance(r, DirectRoute)]
    assert {"/v1/account", "/v1/sessions/refresh"} <= {r.path for _, r in taken}
    for n, _ in reversed(taken):
        del routes[n]
    try:
        yield
    finally:
        for n, route in taken:
            routes.insert(n, route)


def _comparable(response: httpx.Response) -> tuple[int, Any, list[tuple[str, str]]]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    if isinstance(body, dict):
        body = {k: (k in FRESH) or v for k, v in body.items()}
    headers = [
        (k, v.split("=", 1)[0] if k == "set-cookie" else v)
        for k, v in response.headers.multi_items()
        if k not in VARYING_HEADERS
    ]
    return response.status_code, body, headers


async def _same(
    app: FastAPI, send: Callable[[], Awaitable[httpx.Response]]
) -> tuple[int, Any, list[tuple[str, str]]]:
    direct = _comparable(await send())
    with fastapi_only(app):
        fastapi = _comparable(await send())
    assert direct == fastapi
    return direct


async def _session(settings: Settings, client: httpx.AsyncClient) -> Login:
    account = await create_account(client, settings)
    return await login(client, account)


async def test_the_direct_routes_are_tried_first(app: FastAPI) -> None:
    first = app.router.routes[:4]
    paths = {route.path for route in first if isinstance(route, DirectRoute)}
    assert {"/v1/account", "/v1/sessions/refresh"} <= paths


async def test_account_answers_are_the_fastapi_routes(app: FastAPI, settings: Settings) -> None:
    async with client_for(app) as client:
        session = await _session(settings, client)
        bearer = {"authorization": f"Bearer {session.access_token}"}
        status, body, _ = await _same(app, lambda: client.get("/v1/account", headers=bearer))
        assert status == 200
        assert body["email_verified"] is True
        for headers in ({}, {"authorization": "Bearer a.b.c"}, {"authorization": "Basic x"}):
            status, _, _ = await _same(app, lambda h=headers: client.get("/v1/account", headers=h))
            assert status == 401
        status, _, answer_headers = await _same(
            app, lambda: client.head("/v1/account", headers=bearer)
        )
        assert status == 405
        assert ("allow", "GET") in answer_headers
        rename = {"display_name": "Renamed"}
        status, body, _ = await _same(
            app, lambda: client.patch("/v1/account", headers=bearer, json=rename)
        )
        assert status == 200
        assert body["display_name"] == "Renamed"


NAMES = ["Zoë 🙂", "名前 テスト", 'O\'Brien "Q" \\ back', "Ünïcødé ǅ ﬁ", "a"]


async def test_account_bytes_are_the_fastapi_routes_for_several_users(
    app: FastAPI, settings: Settings
) -> None:
    # The direct route sends the handler's own ProfileOut without validating it again: the
    # bytes must be the FastAPI route's (which validates), for names JSON escapes or not.
    async with client_for(app) as client:
        for name in NAMES:
            account = await create_account(client, settings, display_name=name)
            session = await login(client, account)
            bearer = {"authorization": f"Bearer {session.access_token}"}
            direct = await client.get("/v1/account", headers=bearer)
            with fastapi_only(app):
                fastapi = await client.get("/v1/account", headers=bearer)
            assert direct.status_code == fastapi.status_code == 200
            assert direct.content == fastapi.content
            assert direct.json()["display_name"] == name
            assert direct.headers["content-length"] == fastapi.headers["content-length"]
            assert direct.headers["content-type"] == fastapi.headers["content-type"]


BODIES = [
    b"",
    b"null",
    b"{}",
    b"[]",
    b'{"refresh_token": null}',
    b'{"refresh_token": 123}',
    b'{"refresh_token": "x", "extra": 1}',
    b'{"refresh_token": "not-a-refresh-token"}',
    b'{"refresh_token',
]


@pytest.mark.parametrize("body", BODIES)
async def test_refresh_refusals_are_the_fastapi_routes(app: FastAPI, body: bytes) -> None:
    async with client_for(app) as client:
        headers = {"content-type": "application/json"}
        status, _, _ = await _same(
            app, lambda: client.post("/v1/sessions/refresh", content=body, headers=headers)
        )
        assert status in {400, 401, 422}


async def test_refresh_rotations_are_the_fastapi_routes(app: FastAPI, settings: Settings) -> None:
    async with client_for(app) as client:
        session = await _session(settings, client)
        tokens = [session.refresh_token]

        async def rotate() -> httpx.Response:
            response = await client.post(
                "/v1/sessions/refresh",
                json={"refresh_token": tokens[-1]},
                headers={"content-type": "application/json; charset=utf-8"},
            )
            tokens.append(response.json().get("refresh_token", ""))
            return response

        status, body, _ = await _same(app, rotate)
        assert status == 200
        assert set(body) == {
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "session_id",
        }
        # A token already used (its successor too): reuse, the session is revoked.
        status, body, _ = await _same(
            app, lambda: client.post("/v1/sessions/refresh", json={"refresh_token": tokens[0]})
        )
        assert status == 401
        assert body["code"] == "invalid_token"


async def test_both_routes_stay_in_the_openapi_document(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert "get" in paths["/v1/account"]
    assert paths["/v1/account"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "requestBody" in paths["/v1/sessions/refresh"]["post"]
