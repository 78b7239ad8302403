"""Cookie transport end to end: __Host- cookies, CSRF on every unsafe cookie request, refresh
through the path-scoped cookie, logout clearing the cookies."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    Account,
    assert_problem,
    client_for,
)

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, browser, account = (
    identity_fixtures.sqlite_settings,
    identity_fixtures.app,
    identity_fixtures.browser,
    identity_fixtures.browser_account,
)
clock = identity_fixtures.system_clock

ORIGIN = "https://testserver"


async def _login(browser: httpx.AsyncClient, account: Account) -> str:
    response = await browser.post(
        "/v1/sessions",
        json={"email": account.email, "password": account.password, "transport": "cookie"},
        headers={"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert body["token_type"] == "Bearer"
    assert body["csrf_token"]
    assert body["session_id"]
    return str(body["csrf_token"])


async def test_cookies_have_the_hardened_attributes(
    browser: httpx.AsyncClient, account: Account
) -> None:
    response = await browser.post(
        "/v1/sessions",
        json={"email": account.email, "password": account.password, "transport": "cookie"},
    )
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    access, refresh, csrf = (
        cookies["__Host-access"],
        cookies["__Secure-refresh"],
        cookies["__Host-csrf"],
    )
    for cookie in (access, refresh, csrf):
        assert "; secure" in cookie
        assert "domain=" not in cookie
    assert "httponly" in access
    assert "samesite=lax" in access
    assert "path=/;" in access + ";"
    assert "httponly" in refresh
    assert "samesite=strict" in refresh
    assert "path=/v1/sessions/refresh" in refresh
    assert "httponly" not in csrf  # the page reads it


async def test_safe_requests_need_no_csrf_token(
    browser: httpx.AsyncClient, account: Account
) -> None:
    await _login(browser, account)
    response = await browser.get("/v1/account")
    assert response.status_code == 200, response.text
    assert response.json()["email"] == account.email


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-CSRF-Token": "forged"},
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_unsafe_cookie_requests_need_csrf(
    browser: httpx.AsyncClient, account: Account, headers: dict[str, str]
) -> None:
    csrf = await _login(browser, account)
    if "X-CSRF-Token" not in headers and headers:
        headers = {**headers, "X-CSRF-Token": csrf}  # a right token from a wrong place
    response = await browser.patch(
        "/v1/account", json={"display_name": "Hijacked"}, headers=headers
    )
    assert_problem(response, 403, "csrf_failed")
    response = await browser.delete("/v1/sessions/current", headers=headers)
    assert_problem(response, 403, "csrf_failed")
    assert (await browser.get("/v1/account")).json()["display_name"] != "Hijacked"


async def test_csrf_token_of_another_session_is_refused(
    browser: httpx.AsyncClient, account: Account
) -> None:
    await _login(browser, account)
    browser.cookies.set("__Host-csrf", "planted", domain="testserver")
    response = await browser.patch(
        "/v1/account", json={"display_name": "X"}, headers={"X-CSRF-Token": "planted"}
    )
    assert_problem(response, 403, "csrf_failed")


async def test_unsafe_request_with_csrf_token_works(
    browser: httpx.AsyncClient, account: Account
) -> None:
    csrf = await _login(browser, account)
    response = await browser.patch(
        "/v1/account",
        json={"display_name": "Renamed"},
        headers={"X-CSRF-Token": csrf, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 200, response.text


async def test_refresh_through_the_cookie(browser: httpx.AsyncClient, account: Account) -> None:
    csrf = await _login(browser, account)
    old_access = browser.cookies.get("__Host-access")
    refused = await browser.post("/v1/sessions/refresh")
    assert_problem(refused, 403, "csrf_failed")
    response = await browser.post("/v1/sessions/refresh", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    assert browser.cookies.get("__Host-access") != old_access
    assert (await browser.get("/v1/account")).status_code == 200


async def test_logout_clears_the_cookies(browser: httpx.AsyncClient, account: Account) -> None:
    csrf = await _login(browser, account)
    response = await browser.delete("/v1/sessions/current", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204, response.text
    assert not browser.cookies.get("__Host-access")
    assert_problem(await browser.get("/v1/account"), 401, "not_authenticated")


async def test_cross_site_cookie_login_is_refused(
    browser: httpx.AsyncClient, account: Account
) -> None:
    response = await browser.post(
        "/v1/sessions",
        json={"email": account.email, "password": account.password, "transport": "cookie"},
        headers={"Origin": "https://evil.example"},
    )
    assert_problem(response, 403, "csrf_failed")


async def test_bearer_header_wins_and_needs_no_csrf(
    app: FastAPI, browser: httpx.AsyncClient, account: Account
) -> None:
    """A cross-site attacker cannot set the Authorization header, so bearer needs no CSRF."""
    async with client_for(app) as api:
        response = await api.post(
            "/v1/sessions", json={"email": account.email, "password": account.password}
        )
        token = response.json()["access_token"]
        patched = await api.patch(
            "/v1/account",
            json={"display_name": "Api"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert patched.status_code == 200, patched.text
