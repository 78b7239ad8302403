"""Attack tests: the browser transport (cookies, CSRF) and tokens in URLs.

Cookie mode: the access cookie is ``__Host-`` prefixed, HttpOnly, Secure, SameSite=Lax; the
refresh cookie is Strict and scoped to the refresh path; a readable ``__Host-csrf`` cookie is
echoed in ``X-CSRF-Token`` on every unsafe request (double submit). A cross-site page can make
the browser send the cookies but can neither read the CSRF cookie nor set the header, so each
forged request below must be refused with 403 ``csrf_failed`` and change nothing.

Tokens in URLs leak through logs, Referer headers and browser history: no endpoint may accept
one from the query string.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    OTHER_PASSWORD,
    Account,
    assert_problem,
    client_for,
    create_account,
    login,
    login_response,
    read_mails,
    register,
    token_in,
    unique_email,
    wait_for_mail,
)

from bastion.config import Settings

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, browser, account = (
    identity_fixtures.sqlite_settings,
    identity_fixtures.app,
    identity_fixtures.browser,
    identity_fixtures.browser_account,
)
clock = identity_fixtures.system_clock

ACCESS_COOKIE = "__Host-access"
REFRESH_COOKIE = "__Secure-refresh"
CSRF_COOKIE = "__Host-csrf"
ORIGIN = "https://testserver"


def set_cookies(response: httpx.Response) -> dict[str, Any]:
    cookies: dict[str, Any] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            flags = {part.strip().lower() for part in header.split(";")[1:]}
            cookies[name] = (morsel, flags)
    return cookies


async def cookie_login(browser: httpx.AsyncClient, account: Account) -> str:
    """Log in in cookie mode; return the CSRF token (from the body, as the SPA reads it)."""
    response = await login_response(browser, account.email, account.password, "cookie")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["csrf_token"] == browser.cookies.get(CSRF_COOKIE)
    return str(body["csrf_token"])


def _same_site(csrf: str) -> dict[str, str]:
    return {"X-CSRF-Token": csrf, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}


async def test_cookie_login_sets_hardened_cookies_and_no_tokens_in_body(
    browser: httpx.AsyncClient, account: Account
) -> None:
    response = await login_response(browser, account.email, account.password, "cookie")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert body.get("csrf_token")
    cookies = set_cookies(response)
    access, access_flags = cookies[ACCESS_COOKIE]
    assert {"httponly", "secure"} <= access_flags
    assert access["samesite"].lower() == "lax"
    assert access["path"] == "/"
    assert not access["domain"]  # __Host-: no Domain attribute
    refresh_cookie, refresh_flags = cookies[REFRESH_COOKIE]
    assert {"httponly", "secure"} <= refresh_flags
    assert refresh_cookie["samesite"].lower() == "strict"
    assert refresh_cookie["path"] == "/v1/sessions/refresh"
    csrf, csrf_flags = cookies[CSRF_COOKIE]
    assert "secure" in csrf_flags
    assert "httponly" not in csrf_flags  # the page's script must read it
    assert csrf["path"] == "/"
    assert csrf.value == body["csrf_token"]


async def test_cookie_session_reads_without_csrf_token(
    browser: httpx.AsyncClient, account: Account
) -> None:
    """Safe methods need no CSRF token: the control is on unsafe ones only."""
    await cookie_login(browser, account)
    response = await browser.get("/v1/account")
    assert response.status_code == 200, response.text
    assert response.json()["email"] == account.email


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("no-token", {}),
        ("empty-token", {"X-CSRF-Token": ""}),
        ("wrong-token", {"X-CSRF-Token": "A" * 43}),
        ("token-in-wrong-header", {"X-XSRF-Token": "{csrf}"}),
        ("cross-site-origin", {"X-CSRF-Token": "{csrf}", "Origin": "https://evil.example"}),
        ("null-origin", {"X-CSRF-Token": "{csrf}", "Origin": "null"}),
        ("scheme-downgrade-origin", {"X-CSRF-Token": "{csrf}", "Origin": "http://testserver"}),
        ("cross-site-fetch", {"X-CSRF-Token": "{csrf}", "Sec-Fetch-Site": "cross-site"}),
    ],
)
async def test_forged_cookie_requests_are_refused(
    browser: httpx.AsyncClient, account: Account, name: str, headers: dict[str, str]
) -> None:
    csrf = await cookie_login(browser, account)
    headers = {k: v.format(csrf=csrf) for k, v in headers.items()}
    attacks = [
        ("PATCH", "/v1/account", {"display_name": "pwned"}),
        ("POST", "/v1/account/password", {"current_password": account.password,
                                          "new_password": OTHER_PASSWORD}),
        ("DELETE", "/v1/sessions", None),
        ("DELETE", "/v1/sessions/current", None),
    ]  # fmt: skip
    for method, path, body in attacks:
        response = await browser.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "csrf_failed")
    # Nothing happened: the name is unchanged, the password unchanged, the session alive.
    profile = await browser.get("/v1/account")
    assert profile.status_code == 200, profile.text
    assert profile.json()["display_name"] == account.display_name
    ok = await browser.patch(
        "/v1/account", json={"display_name": "Renamed"}, headers=_same_site(csrf)
    )
    assert ok.status_code == 200, ok.text


async def test_csrf_token_cannot_be_bypassed_with_a_bogus_bearer(
    browser: httpx.AsyncClient, account: Account
) -> None:
    """An Authorization header must not switch a cookie-authenticated request out of the CSRF
    check (a cross-site form cannot set it, but fetch with no-cors can set some headers)."""
    await cookie_login(browser, account)
    response = await browser.patch(
        "/v1/account",
        json={"display_name": "pwned"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code in {401, 403}, response.text
    assert (await browser.get("/v1/account")).json()["display_name"] == account.display_name


async def test_a_planted_csrf_pair_from_another_session_is_refused(
    app: FastAPI, settings: Settings, account: Account, browser: httpx.AsyncClient
) -> None:
    """An attacker who manages to plant a cookie (a sibling subdomain cannot set ``__Host-``
    cookies, but a browser bug or a lax proxy might) sets a matching cookie and header from their
    own session. Naive double submit accepts any matching pair; a token bound to the session
    does not."""
    await cookie_login(browser, account)
    async with client_for(app, "198.51.100.9", https=True) as attacker:
        attacker_csrf = await cookie_login(attacker, await create_account(attacker, settings))
    # Replace the victim's CSRF cookie (httpx files host-only cookies of "testserver" under
    # "testserver.local").
    browser.cookies.set(CSRF_COOKIE, attacker_csrf, domain="testserver.local", path="/")
    assert browser.cookies.get(CSRF_COOKIE) == attacker_csrf
    response = await browser.patch(
        "/v1/account",
        json={"display_name": "pwned"},
        headers={"X-CSRF-Token": attacker_csrf, "Origin": ORIGIN},
    )
    assert_problem(response, 403, "csrf_failed")


async def test_cookie_refresh_and_logout(browser: httpx.AsyncClient, account: Account) -> None:
    csrf = await cookie_login(browser, account)
    cross = await browser.post(
        "/v1/sessions/refresh", json={}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code in {401, 403}, cross.text
    response = await browser.post("/v1/sessions/refresh", json={}, headers=_same_site(csrf))
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    csrf = response.json()["csrf_token"]
    assert (await browser.get("/v1/account")).status_code == 200
    out = await browser.delete("/v1/sessions/current", headers=_same_site(csrf))
    assert out.status_code == 204, out.text
    # Logout clears the cookies.
    cleared = set_cookies(out)
    assert ACCESS_COOKIE in cleared
    assert REFRESH_COOKIE in cleared


# -- tokens in URLs --------------------------------------------------------------------------
async def test_no_endpoint_takes_a_token_from_the_query_string(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """OpenAPI lists every operation: none declares a query parameter carrying a token."""
    spec = (await browser.get("/openapi.json")).json()
    offenders = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                name = parameter["name"].lower()
                secretish = any(w in name for w in ("token", "password", "secret", "key"))
                if parameter["in"] == "query" and secretish:
                    offenders.append((method, path, parameter["name"]))
    assert not offenders


async def test_query_string_tokens_are_ignored(
    browser: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    session = await login(browser, account)
    for name in ("access_token", "token", "jwt", "bearer"):
        response = await browser.get("/v1/account", params={name: session.access_token})
        assert_problem(response, 401, "not_authenticated")
    response = await browser.post(
        "/v1/sessions/refresh", params={"refresh_token": session.refresh_token}, json={}
    )
    assert response.status_code in {400, 401, 422}, response.text
    # The token was not consumed by that request: it still refreshes from the body.
    again = await browser.post(
        "/v1/sessions/refresh", json={"refresh_token": session.refresh_token}
    )
    assert again.status_code == 200, again.text


async def test_query_string_verification_token_is_ignored(
    browser: httpx.AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    assert (await register(browser, email)).status_code == 202
    token = token_in(await wait_for_mail(settings, email, "verify_email"))
    response = await browser.post("/v1/accounts/verify-email", params={"token": token}, json={})
    assert response.status_code in {400, 422}, response.text
    response = await browser.post("/v1/accounts/verify-email", json={"token": token})
    assert response.status_code == 200, response.text


async def test_mails_do_not_put_tokens_in_link_query_strings(
    browser: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    """A link like ``/verify?token=...`` leaks the token to logs and Referer headers; a
    fragment (``#token=``) or a code the user pastes does not reach the server."""
    await browser.post("/v1/password/forgot", json={"email": account.email})
    await wait_for_mail(settings, account.email, "password_reset")
    for mail in read_mails(settings):
        if "Token:" not in mail.get("text", ""):
            continue
        token = token_in(mail)
        for line in mail["text"].splitlines():
            if token in line and "://" in line:
                url = line[line.index("://") :]
                before = url[: url.index(token)]
                assert "?" not in before or "#" in before, line
