"""Only requests addressed to an allowed host name are served.

Threats: DNS rebinding (a hostile page points its own name at Bastion's address, and the browser
then treats Bastion as same-origin with the attacker) and Host header poisoning (links in e-mails,
redirects and cache keys built from an attacker-chosen ``Host``).

``allowed_hosts`` entries are host names or IP literals (``example.com``, ``127.0.0.1``,
``[::1]``), compared exactly and case-insensitively with the port removed; ``*.example.com``
matches subdomains at any depth but not ``example.com`` itself; ``*`` allows any well-formed host.
A missing, repeated or malformed ``Host`` is a 400 ``host_not_allowed`` problem (RFC 9112 section
3.2 requires 400 for a missing or repeated Host). Nothing is redirected, and the offending value is
never echoed. WebSocket handshakes are checked too and closed with 1008 (the server answers 403).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from ipaddress import IPv6Address

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.http.errors import HostNotAllowed
from bastion.http.middleware._next import next_app
from bastion.http.problems import send_problem

_HOST_CHARS = (string.ascii_lowercase + string.digits + ".-_").encode("ascii")
_WEBSOCKET_POLICY_VIOLATION = 1008
#: Decisions remembered per raw ``Host`` value (clients repeat it on every request). Bounded:
#: hostile values only empty the cache, and longer values are decided every time.
DECISION_CACHE_SIZE = 1024
_DECISION_CACHE_MAX_LENGTH = 256


def normalize_host(value: bytes) -> bytes | None:
    """The host of a ``Host`` header value, lowercased, without port or trailing dot.

    IPv6 literals keep their brackets, compressed (``[0:0::1]:8000`` -> ``[::1]``). Returns
    ``None`` if the value is not a well-formed host.
    """
    value = value.strip().lower()
    if value.startswith(b"["):
        inner, bracket, port = value[1:].partition(b"]")
        try:
            address = IPv6Address(inner.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not bracket or address.scope_id is not None:
            return None
        host = b"[" + address.compressed.encode("ascii") + b"]"
    else:
        host, colon, digits = value.partition(b":")
        port = colon + digits
        host = host.removesuffix(b".")
        if not host or host.translate(None, _HOST_CHARS) or host[:1] == b"." or b".." in host:
            return None
    if port and not (port[:1] == b":" and len(port) <= 6 and (port[1:].isdigit() or port == b":")):
        return None
    return host


class HostAllowlist:
    """The ``allowed_hosts`` setting, compiled; decisions remembered per raw ``Host`` value."""

    def __init__(self, allowed_hosts: Sequence[str]) -> None:
        self._allow_any = False
        exact: set[bytes] = set()
        suffixes: list[bytes] = []
        for pattern in allowed_hosts:
            entry = pattern.strip().lower()
            if entry == "*":
                self._allow_any = True
                continue
            wildcard = entry.startswith("*.")
            name = entry[2:] if wildcard else entry
            if ":" in name and not name.startswith("["):
                name = f"[{name}]"  # a bare IPv6 address in the settings
            host = normalize_host(name.encode("ascii")) if name.isascii() else None
            if host is None or (wildcard and host.startswith(b"[")):
                raise ValueError(f"allowed_hosts: not a host name or '*.' pattern: {pattern!r}")
            if wildcard:
                suffixes.append(b"." + host)
            else:
                exact.add(host)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        #: Decisions remembered per raw ``Host`` value (bounded; read-only for callers).
        self.decisions: dict[bytes, bool] = {}

    def accepts(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """True if ``headers`` hold exactly one ``Host`` and it names an allowed host."""
        host: bytes | None = None
        count = 0
        for name, value in headers:
            if name == b"host":
                host = value
                count += 1
        return count == 1 and host is not None and self.is_allowed_value(host)

    def is_allowed_value(self, value: bytes) -> bool:
        """True if the raw ``Host`` header ``value`` is well-formed and names an allowed host."""
        allowed = self.decisions.get(value)
        if allowed is None:
            host = normalize_host(value)
            allowed = host is not None and self.is_allowed(host)
            if len(value) <= _DECISION_CACHE_MAX_LENGTH:
                if len(self.decisions) >= DECISION_CACHE_SIZE:
                    self.decisions.clear()
                self.decisions[value] = allowed
        return allowed

    def is_allowed(self, host: bytes) -> bool:
        """True if the normalised ``host`` is allowed."""
        if self._allow_any or host in self._exact:
            return True
        return any(host.endswith(suffix) for suffix in self._suffixes)


async def refuse(scope: Scope, send: Send) -> None:
    """The answer to a request whose ``Host`` is not allowed (a WebSocket handshake: closed)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": _WEBSOCKET_POLICY_VIOLATION})
    else:
        await send_problem(scope, send, HostNotAllowed())


class TrustedHostMiddleware:
    """Answers 400 ``host_not_allowed`` unless the ``Host`` header names an allowed host."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self._next = next_app(app)
        self.allowlist = HostAllowlist(allowed_hosts)
        self.is_allowed_value = self.allowlist.is_allowed_value
        self.is_allowed = self.allowlist.is_allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowlist.accepts(scope["headers"]):
            await self._next(scope, receive, send)
        else:
            await refuse(scope, send)
