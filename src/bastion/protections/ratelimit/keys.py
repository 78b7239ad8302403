"""Who a request is counted as, and the store key of each bucket.

Inputs come from ``scope["state"]``, set by outer layers, never from request headers here:

* ``client_ip``: the proxy-aware client IP (:mod:`bastion.http.middleware.proxy` walks
  ``X-Forwarded-For`` from trusted proxies only), else the TCP peer address. Reading the header
  here would let any client choose its own bucket (IP spoofing).
* ``user_id``: the authenticated user, set by the authentication layer.
* ``oauth_client_id``: the authenticated OAuth client, set by the token endpoint's client
  authentication.

IPv6 addresses are folded to their network (``/64`` by default): one subscriber usually owns a
whole /64 and could otherwise rotate through 2**64 addresses, each with a fresh budget.

Keys are ``<prefix><policy>:<digest>``, the digest a BLAKE2b hash of the key parts: a huge or
hostile value (a 64 KiB user id, control characters) still makes a short, fixed-size key, and
user ids and IPs are not stored in the clear in Redis.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, NamedTuple

from starlette.types import Scope

from bastion.protections.ratelimit.policies import Applied, KeyKind

STATE_CLIENT_IP = "client_ip"
STATE_USER_ID = "user_id"
STATE_OAUTH_CLIENT_ID = "oauth_client_id"

#: IPv6 addresses sharing this many leading bits share one bucket.
DEFAULT_IPV6_PREFIX = 64
#: Used when the server reports no peer address (e.g. a Unix socket): one shared bucket.
UNKNOWN_IP = "unknown"
_DIGEST_BYTES = 16


class Identity(NamedTuple):
    """The request attributes limits are counted per; ``None`` when unknown."""

    ip: str
    user: str | None = None
    client: str | None = None


def fold_ip(ip: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """``ip`` unchanged for IPv4; its ``/ipv6_prefix`` network for IPv6."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


def identity_of(scope: Scope, *, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> Identity:
    """The identity of an ASGI request, from ``scope["state"]`` (see the module docstring)."""
    state: dict[str, Any] = scope.get("state") or {}
    ip = state.get(STATE_CLIENT_IP)
    if not ip:
        client = scope.get("client")
        ip = client[0] if client else UNKNOWN_IP
    user = state.get(STATE_USER_ID)
    client_id = state.get(STATE_OAUTH_CLIENT_ID)
    return Identity(
        ip=fold_ip(str(ip), ipv6_prefix),
        user=str(user) if user is not None else None,
        client=str(client_id) if client_id is not None else None,
    )


def bucket_key(prefix: str, applied: Applied, identity: Identity) -> str | None:
    """The store key of ``applied`` for ``identity``; ``None`` when a key part is unknown.

    A policy counted per user does not apply to an anonymous request (the per-IP ones do).
    """
    policy, template = applied
    parts: list[bytes] = []
    for kind in policy.keys:
        if kind is KeyKind.IP:
            value: str | None = identity.ip
        elif kind is KeyKind.USER:
            value = identity.user
        elif kind is KeyKind.CLIENT:
            value = identity.client
        else:
            value = template
        if value is None:
            return None
        raw = value.encode("utf-8", "surrogateescape")
        # Length-prefixed, so no value can imitate a different split of the parts.
        parts.append(b"%b:%d:%b" % (kind.value.encode(), len(raw), raw))
    digest = hashlib.blake2b(b"".join(parts), digest_size=_DIGEST_BYTES).hexdigest()
    return f"{prefix}{policy.name}:{digest}"
