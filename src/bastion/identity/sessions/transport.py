"""Transports: how tokens travel between Bastion and a client.

* **Bearer** (API clients): the login answer carries the access and refresh tokens; the client
  sends ``Authorization: Bearer <access token>`` and posts the refresh token in a JSON body.
* **Cookie** (browsers, ``"transport": "cookie"`` at login): tokens never reach JavaScript.

  - ``__Host-access``: the access token. ``HttpOnly; Secure; SameSite=Lax; Path=/`` (the
    ``__Host-`` prefix makes the browser refuse it unless Secure, host-only and Path=/, so a
    sibling subdomain cannot plant or overwrite it).
  - ``__Secure-refresh``: the refresh token. ``HttpOnly; Secure; SameSite=Strict;
    Path=/v1/sessions/refresh``: sent to the refresh endpoint only, never cross-site.
  - ``__Host-csrf``: the CSRF token, readable by the page's JavaScript (not HttpOnly).

  Cookies ride along with cross-site requests, so every cookie-authenticated unsafe request
  (POST, PUT, PATCH, DELETE), refresh and logout included, must pass :class:`CsrfProtection`:
  an ``Origin`` / ``Sec-Fetch-Site`` check (a browser's own statement of where the request
  comes from) *and* a double-submit token: the ``X-CSRF-Token`` header must equal the
  ``__Host-csrf`` cookie (another site can neither read the cookie nor set the header) and the
  keyed MAC of the session id (a token planted from elsewhere matches no session).

Tokens never travel in URLs: URLs end up in logs, history and ``Referer`` headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.errors import CsrfFailed

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "REFRESH_COOKIE",
    "REFRESH_COOKIE_PATH",
    "UNSAFE_METHODS",
    "CookieSettings",
    "CsrfProtection",
    "clear_session_cookies",
    "set_session_cookies",
]

ACCESS_COOKIE = "__Host-access"
REFRESH_COOKIE = "__Secure-refresh"
CSRF_COOKIE = "__Host-csrf"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_COOKIE_PATH = "/v1/sessions/refresh"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: ``Sec-Fetch-Site`` values of requests made by Bastion's own origin (or typed by the user).
_SAME_ORIGIN = frozenset({"same-origin", "none"})
_MAX_CSRF_CHARS = 128


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class CsrfProtection:
    """CSRF tokens bound to a session, and the checks for cookie-authenticated requests."""

    def __init__(self, key: bytes, *, trusted_origins: list[str]) -> None:
        self._key = key
        self._trusted = {o for o in (_origin_of(u) for u in trusted_origins) if o}

    def token_for(self, session_id: str) -> str:
        """The CSRF token of a session: HMAC-SHA256 of its id under the CSRF subkey."""
        mac = hmac.new(self._key, b"bastion-csrf:" + session_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def check_origin(self, request: Request) -> None:
        """Refuse a request a browser says comes from another site. Raises ``CsrfFailed``."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site.lower() not in _SAME_ORIGIN:
            raise CsrfFailed
        origin = request.headers.get("origin")
        if origin is None:
            return  # not a browser, or a same-origin GET/HEAD; the token check still applies
        own = _origin_of(str(request.base_url))
        if origin.lower() != own and origin.lower() not in self._trusted:
            raise CsrfFailed

    def check_token(self, request: Request, session_id: str | None) -> None:
        """The double-submit check. ``session_id`` None: compare header and cookie only (the
        caller checks the MAC once it knows the session). Raises ``CsrfFailed``."""
        header = request.headers.get(CSRF_HEADER) or ""
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        if not header or len(header) > _MAX_CSRF_CHARS or not header.isascii():
            raise CsrfFailed
        if not hmac.compare_digest(header.encode(), cookie.encode()):
            raise CsrfFailed
        if session_id is not None:
            self.check_session(header, session_id)

    def check_session(self, token: str, session_id: str) -> None:
        if not hmac.compare_digest(token.encode(), self.token_for(session_id).encode()):
            raise CsrfFailed

    def check(self, request: Request, session_id: str) -> None:
        """Both checks, for an unsafe cookie-authenticated request. Raises ``CsrfFailed``."""
        self.check_origin(request)
        self.check_token(request, session_id)


class CookieSettings:
    """Cookie attributes that depend on the deployment."""

    def __init__(self, *, secure: bool, access_max_age: int, session_max_age: int) -> None:
        self.secure = secure
        self.access_max_age = access_max_age
        self.session_max_age = session_max_age


def set_session_cookies(
    response: Response,
    cookies: CookieSettings,
    *,
    access_token: str,
    refresh_token: str,
    csrf_token: str,
) -> None:
    response.set_cookie(
        ACCESS_COOKIE,
        access_token,
        max_age=cookies.access_max_age,
        path="/",
        secure=cookies.secure,
        httponly=True,
        samesite="lax",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=cookies.session_max_age,
        path=REFRESH_COOKIE_PATH,
        secure=cookies.secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=cookies.session_max_age,
        path="/",
        secure=cookies.secure,
        httponly=False,  # the page's script reads it and echoes it in X-CSRF-Token
        samesite="lax",
    )


def clear_session_cookies(response: Response, cookies: CookieSettings) -> None:
    for name, path, httponly in (
        (ACCESS_COOKIE, "/", True),
        (REFRESH_COOKIE, REFRESH_COOKIE_PATH, True),
        (CSRF_COOKIE, "/", False),
    ):
        response.delete_cookie(
            name, path=path, secure=cookies.secure, httponly=httponly, samesite="lax"
        )
