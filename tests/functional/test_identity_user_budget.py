"""The general per-user budget (``api-user``) on Bastion's own API.

The rate-limit middleware runs before authentication, so it cannot count a request per user;
the identity ``Authenticator`` takes the per-user policies once the access token names the user.
One user over the budget gets the middleware's 429 (``Retry-After``, ``RateLimit-Policy``,
``RateLimit``) from every authenticated route; another user and anonymous routes are not
affected; the refusals are audited once per user per window. On the memory store and on Redis
(the store that makes the budget hold across workers).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from tests.functional.identity_helpers import (
    Account,
    Login,
    assert_problem,
    audit_rows,
    client_for,
    create_account,
    fresh_client,
    identity_settings,
    login,
    running_app,
)

from bastion.audit.events import EventType

#: Small enough to exhaust in a test; the refill (1 per 12 s) cannot happen within one.
BUDGET = 5
WINDOW_SECONDS = 60
SMALL_USER_BUDGET: dict[str, Any] = {
    "api-user": {"limit": BUDGET, "window_seconds": WINDOW_SECONDS},
    # Everything comes from one address: the per-IP budget must not be what refuses.
    "api-ip": {"limit": 10_000},
}
AUTHENTICATED_ROUTES = (
    ("GET", "/v1/account"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/account/events"),
)


@dataclass
class Users:
    app: FastAPI
    accounts: tuple[Account, Account]
    first: Login
    second: Login


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Users]:
    ratelimit: dict[str, Any] = {"policies": SMALL_USER_BUDGET}
    prefix = f"bastion-test:{uuid.uuid4().hex}:"
    redis_url: str | None = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        ratelimit |= {"storage": "redis", "redis_url": redis_url, "key_prefix": prefix}
    settings = identity_settings(tmp_path, ratelimit=ratelimit)
    try:
        async with running_app(settings) as app:
            async with fresh_client(app) as setup:
                first = await create_account(setup, settings)
                second = await create_account(setup, settings)
            async with client_for(app) as http:
                sessions = await login(http, first), await login(http, second)
                yield Users(app, (first, second), *sessions)
    finally:
        if redis_url is not None:
            client = Redis.from_url(redis_url)
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def _spend(http: httpx.AsyncClient, session: Login, n: int) -> list[httpx.Response]:
    return [await http.get("/v1/account", headers=session.headers) for _ in range(n)]


async def test_a_user_over_budget_is_refused_everywhere_others_are_not(users: Users) -> None:
    async with client_for(users.app) as http:
        allowed = await _spend(http, users.first, BUDGET)
        assert [r.status_code for r in allowed] == [200] * BUDGET
        # Allowed answers announce the per-user budget next to the per-IP one.
        assert '"api-user";q=5;w=60' in allowed[0].headers.get_list("ratelimit-policy")
        assert any(
            v.startswith('"api-user";r=0;') for v in allowed[-1].headers.get_list("ratelimit")
        )

        for method, path in AUTHENTICATED_ROUTES:
            refused = await http.request(method, path, headers=users.first.headers)
            body = assert_problem(refused, 429, "rate_limited")
            assert body["violated-policies"] == ["api-user"]
            assert int(refused.headers["retry-after"]) >= 1
            # The refusing policy's fields, then (from the middleware) the per-IP ones.
            assert refused.headers.get_list("ratelimit-policy")[0] == '"api-user";q=5;w=60'
            assert refused.headers.get_list("ratelimit")[0].startswith('"api-user";r=0;t=')

        # Another user from the same address, and anonymous routes, are unaffected.
        other = await _spend(http, users.second, BUDGET)
        assert [r.status_code for r in other] == [200] * BUDGET
        assert (await http.get("/healthz")).status_code == 200
        forgot = await http.post("/v1/password/forgot", json={"email": "nobody@example.com"})
        assert forgot.status_code == 202, forgot.text


async def test_refusals_of_one_user_are_audited_once_per_window(users: Users) -> None:
    async with client_for(users.app) as http:
        answers = await _spend(http, users.first, BUDGET + 10)
        others = await _spend(http, users.second, BUDGET + 3)
    assert [r.status_code for r in answers] == [200] * BUDGET + [429] * 10
    assert [r.status_code for r in others] == [200] * BUDGET + [429] * 3
    rows = await audit_rows(users.app, EventType.RATELIMIT_LIMIT_EXCEEDED.value)
    per_user = [r for r in rows if r["subject"] == "api-user"]
    # 13 refusals, two users: one event each.
    assert sorted(r["actor"] for r in per_user) == sorted(
        [answers[0].json()["id"], others[0].json()["id"]]
    )


async def test_the_budget_is_per_user_not_per_session(users: Users) -> None:
    async with client_for(users.app) as http:
        await _spend(http, users.first, BUDGET)
        # A fresh login is a new session of the same user: no fresh budget.
        fresh = await login(http, users.accounts[0])
        answer = await http.get("/v1/account", headers=fresh.headers)
    assert_problem(answer, 429, "rate_limited")
