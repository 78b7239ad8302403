"""Browser security headers on every HTTP response, error answers included.

Bastion serves JSON, not pages, so the defaults lock everything down: no scripts, frames or
plugins (``Content-Security-Policy``, ``X-Frame-Options``: XSS and clickjacking), no MIME sniffing
(``nosniff``: a JSON answer rendered as HTML), no referrer leaking tokens in URLs, no cross-origin
window or resource access (``COOP``/``CORP``: Spectre-style cross-origin leaks), no powerful
browser features, and ``Cache-Control: no-store`` so answers (tokens, personal data) are not kept
by shared caches or the browser's disk cache.

A response may set its own value for any of these headers (the ``/docs`` page needs a CSP that
allows its scripts; a public asset may allow caching): an explicit header wins over the default
and is never duplicated. Two exceptions: when ``scope["state"]["authenticated"]`` is true the
answer is personal, so ``Cache-Control: no-store`` is forced; and the ``Server`` and
``X-Powered-By`` banners are always removed (they tell attackers which exploits to try).

``Strict-Transport-Security`` is sent only on HTTPS requests (browsers ignore it over HTTP, and on
a plain-HTTP development server it would be wrong) and only when ``hsts_max_age > 0``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from operator import itemgetter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.header_block import HeaderBlock
from bastion.http.middleware._next import next_app

CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "interest-cohort",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
)
#: Banners that are removed from every response.
REMOVED_HEADERS = frozenset({b"server", b"x-powered-by"})
_CACHE_CONTROL = b"cache-control"
#: Edit plans remembered per header-name list (an app answers with a handful of distinct lists).
PLAN_CACHE_SIZE = 256
_PLAN_CACHE_MAX_HEADERS = 64
_name = itemgetter(0)

#: Which of the app's headers to keep (``None``: all of them), the defaults to append, and the
#: same defaults as one header block (see ``bastion.http.header_block``).
_Plan = tuple[tuple[int, ...] | None, tuple[tuple[bytes, bytes], ...], HeaderBlock]


def _encode(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


class SecurityHeaders:
    """The header edit: :meth:`apply` turns an answer's headers into the secured list.

    ``strip`` names more headers (lowercase) to drop from the app's answer: the HTTP core drops
    an app-set ``X-Request-ID`` in the same pass and appends its own.
    """

    def __init__(self, hsts_max_age: int = 0, *, strip: Iterable[bytes] = ()) -> None:
        if hsts_max_age < 0:
            raise ValueError("hsts_max_age must not be negative")
        self._removed = REMOVED_HEADERS | frozenset(strip)
        self._http_headers = _encode(DEFAULT_HEADERS)
        hsts = (("strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains"),)
        self._https_headers = (
            _encode(DEFAULT_HEADERS + hsts) if hsts_max_age else self._http_headers
        )
        self._plans: dict[tuple[bool, bool], dict[tuple[bytes, ...], _Plan]] = {
            (personal, https): {} for personal in (False, True) for https in (False, True)
        }

    def apply(
        self,
        scope: Scope,
        headers: Iterable[tuple[bytes, bytes]],
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` secured, then ``extra`` appended. Reads ``scope`` at response time: the
        authentication code inside has run by now."""
        if type(headers) is not list and type(headers) is not tuple:
            headers = list(headers)
        keep, defaults, _ = self._plan_for(scope, headers)
        if keep is None:
            return [*headers, *defaults, *extra]
        return [*(headers[index] for index in keep), *defaults, *extra]

    def apply_with_block(
        self,
        scope: Scope,
        headers: Iterable[tuple[bytes, bytes]],
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> tuple[list[tuple[bytes, bytes]], HeaderBlock]:
        """As :meth:`apply`, for a server that writes header blocks: the app's headers kept and
        ``extra``, then the defaults as one block, validated once (the same headers, in the
        order :meth:`apply` gives, save that the defaults come last)."""
        if type(headers) is not list and type(headers) is not tuple:
            headers = list(headers)
        # _plan_for, its cache hit inlined (the HTTP core's hot path under Bastion's server).
        state = scope.get("state")
        personal = bool(state and state.get("authenticated"))
        plan = self._plans[personal, scope.get("scheme") == "https"].get(tuple(map(_name, headers)))
        keep, _, block = plan if plan is not None else self._plan_for(scope, headers)
        if keep is None:
            return [*headers, *extra], block
        return [*(headers[index] for index in keep), *extra], block

    def _plan_for(
        self, scope: Scope, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]
    ) -> _Plan:
        state = scope.get("state")
        personal = bool(state and state.get("authenticated"))
        https = scope.get("scheme") == "https"
        # The edit depends only on the header names: planned once per distinct list of names.
        names = tuple(map(_name, headers))
        plans = self._plans[personal, https]
        plan = plans.get(names)
        if plan is None:
            plan = self._plan(names, personal=personal, https=https)
            if len(names) <= _PLAN_CACHE_MAX_HEADERS:
                if len(plans) >= PLAN_CACHE_SIZE:
                    plans.clear()
                plans[names] = plan
        return plan

    def _plan(self, names: tuple[bytes, ...], *, personal: bool, https: bool) -> _Plan:
        keep: list[int] = []
        present: set[bytes] = set()
        removed = self._removed
        for index, name in enumerate(names):
            key = name.lower()
            if key in removed or (personal and key == _CACHE_CONTROL):
                continue
            present.add(key)
            keep.append(index)
        defaults = self._https_headers if https else self._http_headers
        missing = tuple(header for header in defaults if header[0] not in present)
        block = HeaderBlock.of(missing)
        return (None if len(keep) == len(names) else tuple(keep)), missing, block


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response; removes server banners."""

    def __init__(self, app: ASGIApp, hsts_max_age: int = 0) -> None:
        self.app = app
        self._next = next_app(app)
        self.policy = SecurityHeaders(hsts_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        apply = self.policy.apply

        def send_secured(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message = {**message, "headers": apply(scope, message.get("headers", ()))}
            return send(message)

        await self._next(scope, receive, send_secured)
