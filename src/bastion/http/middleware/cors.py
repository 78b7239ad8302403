"""Cross-origin resource sharing from an explicit allowlist of origins; none by default.

Threat: a hostile web page reading Bastion's answers with the user's cookies or tokens. CORS only
*relaxes* the browser's same-origin policy, so the safe default is to relax nothing:

* Origins are matched exactly (``scheme://host[:port]``, case-insensitive), never by prefix,
  suffix or regex (``https://example.com.evil.net`` must not pass), and the ``null`` origin
  (sandboxed frames, ``file:``) is never allowed.
* ``*`` is allowed only without credentials; ``*`` with ``allow_credentials`` is a
  misconfiguration and raises ``ValueError`` at startup, rather than reflecting any origin.
* A preflight from an allowed origin gets 204 with fixed lists of methods and request headers
  (the browser enforces them); from any other origin, 403 ``cors_origin_denied``.
* An actual request from an origin that is not allowed is served without CORS headers: the
  browser then refuses to show the answer to the calling page. (Refusing cross-site *writes* is
  the CSRF protection's job.)

Every answer to a request with an ``Origin`` header carries ``Vary: Origin``, so a shared cache
never serves one origin's answer to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.errors import CorsOriginDenied
from bastion.http.middleware._next import next_app
from bastion.http.problems import send_problem

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOW_HEADERS = ("authorization", "content-type", "x-request-id", "x-csrf-token")
EXPOSE_HEADERS = ("X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VARY = b"vary"
_VARY_ORIGIN = (_VARY, b"Origin")
_ACAO = b"access-control-allow-origin"


def normalize_origin(origin: str) -> str:
    """``origin`` as a browser serialises it: lowercase, no default port, no path.

    Raises ``ValueError`` for anything that is not ``http(s)://host[:port]``.
    """
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.netloc.endswith(":")
    ):
        raise ValueError(f"CORS origin must be scheme://host[:port]: {origin!r}")
    host = parts.hostname  # lowercased, brackets removed
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"CORS origin has an invalid port: {origin!r}") from None
    suffix = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{host}{suffix}"


class CORSMiddleware:
    """Answers preflights and adds CORS headers for the origins in ``allow_origins`` only."""

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Sequence[str] = (),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self._next = next_app(app)
        self._allow_any = "*" in allow_origins
        if self._allow_any and allow_credentials:
            raise ValueError("CORS: '*' cannot be combined with allow_credentials")
        self._allowed = frozenset(
            normalize_origin(origin).encode("ascii") for origin in allow_origins if origin != "*"
        )
        credentials = ((b"access-control-allow-credentials", b"true"),) if allow_credentials else ()
        self._preflight_headers = (
            _VARY_ORIGIN,
            (b"access-control-allow-methods", ", ".join(ALLOW_METHODS).encode("ascii")),
            (b"access-control-allow-headers", ", ".join(ALLOW_HEADERS).encode("ascii")),
            (b"access-control-max-age", str(max_age).encode("ascii")),
            *credentials,
        )
        #: What this middleware calls for a request without ``Origin`` (it adds nothing to
        #: those): a layer outside that has seen there is none may call it directly.
        self.without_origin = self._next
        self._actual_headers = (
            *credentials,
            (b"access-control-expose-headers", ", ".join(EXPOSE_HEADERS).encode("ascii")),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        origin: bytes | None = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                # Two Origin headers never come from a browser; joined, they match nothing.
                origin = value if origin is None else origin + b", " + value
            elif name == b"access-control-request-method":
                preflight = scope["method"] == "OPTIONS"
        if origin is None:
            await self._next(scope, receive, send)
            return
        allowed = self._allowed_value(origin)
        if preflight:
            await self._preflight(scope, send, allowed)
            return

        def send_with_cors(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = _vary_origin(message.get("headers", ()))
                if allowed is not None:
                    headers.append((_ACAO, allowed))
                    headers.extend(self._actual_headers)
                message = {**message, "headers": headers}
            return send(message)

        await self._next(scope, receive, send_with_cors)

    def _allowed_value(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None`` if not allowed."""
        if self._allow_any:
            return b"*"
        return origin if origin.lower() in self._allowed else None

    async def _preflight(self, scope: Scope, send: Send, allowed: bytes | None) -> None:
        if allowed is None:
            await send_problem(scope, send, CorsOriginDenied(), headers=(_VARY_ORIGIN,))
            return
        headers = [(_ACAO, allowed), *self._preflight_headers]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _vary_origin(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` added to ``Vary`` (merged into an existing one)."""
    result: list[tuple[bytes, bytes]] = []
    merged = False
    for name, value in headers:
        if name.lower() == _VARY and not merged:
            merged = True
            tokens = {token.strip().lower() for token in value.split(b",")}
            if not tokens & {b"origin", b"*"}:
                value = value + b", Origin"  # noqa: PLW2901 - the header is rewritten on purpose
        result.append((name, value))
    if not merged:
        result.append(_VARY_ORIGIN)
    return result
