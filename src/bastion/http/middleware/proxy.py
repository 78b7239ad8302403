"""The client's IP address and scheme, from proxy headers sent by trusted proxies only.

Threat: IP spoofing. ``X-Forwarded-For`` and ``Forwarded`` (RFC 7239) are ordinary request
headers that any client can send; believing them would let a client pick the address that rate
limits, lockouts and the audit log see. So they are read only when the TCP peer is inside one of
``trusted_proxies``, and then walked **right to left**: each proxy appends the address it received
the request from, so the rightmost address that is not itself a trusted proxy is the last one a
trusted party vouches for. Everything left of it was written by the client and is never used.

Fail closed, the client IP falling back to the peer address, when:

* no proxies are configured (the default: headers are ignored entirely);
* the peer sends *both* ``Forwarded`` and ``X-Forwarded-For``: the proxy wrote one, the client
  may have forged the other, and nothing says which is which;
* an address in the walked part of the chain is malformed, ``unknown`` or obfuscated.

Addresses are normalised (``::ffff:192.0.2.1`` becomes ``192.0.2.1``, IPv6 is compressed) so that
one client cannot appear as many and slip past per-IP limits.

Result: ``scope["state"]["client_ip"]`` (always set) and, from a trusted proxy only,
``scope["scheme"]`` per ``proto=`` / ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.http.middleware._next import next_app

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

#: ``client_ip`` when the server gives no peer address at all.
UNKNOWN_CLIENT = "unknown"
#: Parsed addresses and trust decisions are cached (clients and proxies repeat; parsing an
#: address costs more than the rest of this middleware). Bounded: hostile headers only evict.
CACHE_SIZE = 4096

# proto value -> scheme for (http, websocket) scopes.
_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss")}

_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# One `key=value` of a Forwarded header and the separator after it. Quoted strings use the
# unrolled-loop form: one way to match each character, so no catastrophic backtracking.
_FORWARDED_PAIR = re.compile(
    rf'[ \t]*({_TCHARS})=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s",;]*))[ \t]*([,;]|\Z)'
)
_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_ip(text: str) -> IPAddress | None:
    """The address in ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1`` or ``[2001:db8::1]:443``.

    Returns ``None`` for anything else (``unknown``, obfuscated identifiers, garbage).
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and _is_port(port[1:]))):
            return None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(port):
            return None
    else:
        host = text
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=CACHE_SIZE)
def _node(text: str) -> tuple[IPAddress, str] | None:
    """:func:`parse_ip` and the normalised text of the address, cached."""
    address = parse_ip(text)
    return (address, str(address)) if address is not None else None


def _is_port(text: str) -> bool:
    # RFC 7239 allows an obfuscated port ("_abc"); the port is never used, only validated.
    return (text.isascii() and text.isdigit() and len(text) <= 5) or text.startswith("_")


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header, parameter names lowercased; ``None`` if malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _FORWARDED_PAIR.match(value, pos)
        if match is None:
            return None
        key, quoted, token, separator = match.groups()
        key = key.lower()
        if key in current:  # RFC 7239 section 4: a parameter occurs at most once per element
            return None
        current[key] = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else token
        pos = match.end()
        if separator != ";":
            elements.append(current)
            current = {}
    if current:
        elements.append(current)
    return elements or None


class ClientResolver:
    """Decides ``client_ip`` (and the scheme) of a request; trusts ``trusted_proxies`` only."""

    def __init__(self, trusted_proxies: Sequence[IPNetwork] = ()) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self.is_trusted = lru_cache(maxsize=CACHE_SIZE)(self._in_trusted_network)

    def apply(self, scope: Scope, state: dict[str, object]) -> None:
        """Sets ``state["client_ip"]`` and, from a trusted proxy, ``scope["scheme"]``."""
        client = scope.get("client")
        peer: str = client[0] if client else UNKNOWN_CLIENT
        if not self.trusted_proxies:
            state["client_ip"] = peer
            return
        node = _node(peer)
        if node is None or not self.is_trusted(node[0]):
            state["client_ip"] = node[1] if node is not None else peer
            return
        client_ip, proto = self._resolve(scope["headers"], node[1])
        state["client_ip"] = client_ip
        if proto in _SCHEMES:
            scope["scheme"] = _SCHEMES[proto][scope["type"] == "websocket"]

    def _in_trusted_network(self, address: IPAddress) -> bool:
        """True if ``address`` is a trusted proxy (cached per instance as ``is_trusted``)."""
        return any(address in network for network in self.trusted_proxies)

    def _resolve(self, headers: Sequence[tuple[bytes, bytes]], peer: str) -> tuple[str, str | None]:
        """``(client_ip, proto)`` from the headers of a request sent by a trusted proxy."""
        forwarded: list[bytes] = []
        forwarded_for: list[bytes] = []
        forwarded_proto: list[bytes] = []
        for name, value in headers:
            if name == b"forwarded":
                forwarded.append(value)
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"x-forwarded-proto":
                forwarded_proto.append(value)
        if forwarded and forwarded_for:
            return peer, None  # ambiguous: which one did the proxy write?
        if forwarded:
            return self._from_forwarded(_join(forwarded), peer)
        protos = _join(forwarded_proto).split(",") if forwarded_proto else []
        nodes = _join(forwarded_for).split(",") if forwarded_for else []
        found = self._client_node(nodes)
        if found is None:
            return peer, _proto(protos[-1]) if protos else None
        index, client_ip = found
        # Each trusted hop appends one entry to both lists: align them from the right. When the
        # proxies overwrite X-Forwarded-Proto instead, only its last (trusted) entry is used.
        hops = len(nodes) - index
        proto = protos[-hops] if len(protos) >= hops else (protos[-1] if protos else None)
        return client_ip, _proto(proto) if proto is not None else None

    def _from_forwarded(self, value: str, peer: str) -> tuple[str, str | None]:
        elements = parse_forwarded(value)
        if elements is None:
            return peer, None
        found = self._client_node([element.get("for", "") for element in elements])
        if found is None:
            return peer, None
        index, client_ip = found
        return client_ip, _proto(elements[index].get("proto", ""))

    def _client_node(self, nodes: Sequence[str]) -> tuple[int, str] | None:
        """Index and normalised address of the rightmost node that is not a trusted proxy.

        If every node is a trusted proxy, the leftmost one. ``None`` if a node on the way is not
        an IP address: the chain cannot be followed.
        """
        node: tuple[IPAddress, str] | None = None
        for index in range(len(nodes) - 1, -1, -1):
            node = _node(nodes[index].strip())
            if node is None:
                return None
            if not self.is_trusted(node[0]):
                return index, node[1]
        return (0, node[1]) if node is not None else None


class ProxyHeadersMiddleware:
    """Sets ``scope["state"]["client_ip"]``; honours proxy headers from ``trusted_proxies`` only."""

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[IPNetwork] = ()) -> None:
        self.app = app
        self._next = next_app(app)
        self.resolver = ClientResolver(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.resolver.apply(scope, scope.setdefault("state", {}))
        await self._next(scope, receive, send)


def _join(values: list[bytes]) -> str:
    # Repeated header lines form one comma-separated list (RFC 9110 section 5.3).
    return b",".join(values).decode("latin-1")


def _proto(value: str) -> str | None:
    proto = value.strip().lower()
    return proto if proto in _SCHEMES else None
