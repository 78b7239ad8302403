"""CSRF protection and cookie attributes of the cookie transport."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.errors import CsrfFailed
from bastion.identity.sessions.transport import (
    CSRF_COOKIE,
    CookieSettings,
    CsrfProtection,
    clear_session_cookies,
    set_session_cookies,
)

KEY = b"k" * 32


def request(headers: dict[str, str], *, cookies: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if cookies:
        raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    raw.append((b"host", b"id.example.com"))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "server": ("id.example.com", 443),
        "path": "/v1/account",
        "root_path": "",
        "query_string": b"",
        "headers": raw,
    }
    return Request(scope)


def test_tokens_are_bound_to_the_session_and_the_key() -> None:
    csrf = CsrfProtection(KEY, trusted_origins=[])
    assert csrf.token_for("s1") == csrf.token_for("s1")
    assert csrf.token_for("s1") != csrf.token_for("s2")
    assert CsrfProtection(b"o" * 32, trusted_origins=[]).token_for("s1") != csrf.token_for("s1")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://id.example.com"},
        {"Origin": "https://app.example.com"},  # trusted
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_same_origin_requests_pass(headers: dict[str, str]) -> None:
    CsrfProtection(KEY, trusted_origins=["https://app.example.com/"]).check_origin(request(headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://id.example.com"},  # a downgraded scheme is another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://id.example.com", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_requests_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(CsrfFailed):
        CsrfProtection(KEY, trusted_origins=[]).check_origin(request(headers))


def test_double_submit_must_match_the_cookie_and_the_session() -> None:
    csrf = CsrfProtection(KEY, trusted_origins=[])
    good = csrf.token_for("s1")
    csrf.check(request({"X-CSRF-Token": good}, cookies={CSRF_COOKIE: good}), "s1")
    cases = [
        ({}, {CSRF_COOKIE: good}),  # no header
        ({"X-CSRF-Token": good}, {}),  # no cookie
        ({"X-CSRF-Token": good}, {CSRF_COOKIE: "other"}),  # mismatch
        ({"X-CSRF-Token": "planted"}, {CSRF_COOKIE: "planted"}),  # not this session's
        ({"X-CSRF-Token": "é" * 10}, {CSRF_COOKIE: "é" * 10}),  # non-ASCII
        ({"X-CSRF-Token": "x" * 500}, {CSRF_COOKIE: "x" * 500}),  # oversized
    ]
    for headers, cookies in cases:
        with pytest.raises(CsrfFailed):
            csrf.check(request(headers, cookies=cookies), "s1")
    with pytest.raises(CsrfFailed):
        csrf.check(request({"X-CSRF-Token": good}, cookies={CSRF_COOKIE: good}), "s2")


def test_cookie_attributes() -> None:
    response = Response()
    settings = CookieSettings(secure=True, access_max_age=300, session_max_age=3600)
    set_session_cookies(response, settings, access_token="a", refresh_token="r", csrf_token="c")
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("set-cookie")}
    assert "HttpOnly" in cookies["__Host-access"]
    assert "SameSite=lax" in cookies["__Host-access"]
    assert "Path=/;" in cookies["__Host-access"]
    assert "Max-Age=300" in cookies["__Host-access"]
    assert "SameSite=strict" in cookies["__Secure-refresh"]
    assert "Path=/v1/sessions/refresh" in cookies["__Secure-refresh"]
    assert "HttpOnly" not in cookies["__Host-csrf"]
    assert all("Secure" in c and "Domain" not in c for c in cookies.values())
    cleared = Response()
    clear_session_cookies(cleared, settings)
    assert all("Max-Age=0" in c for c in cleared.headers.getlist("set-cookie"))
