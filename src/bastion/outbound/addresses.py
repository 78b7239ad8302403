"""Which IP addresses an outbound request may connect to.

A request that configuration or a user chose must never reach the host itself, the private
network behind it, or a cloud metadata service (server-side request forgery, SSRF). Every address
is checked against the deny ranges below, then against :attr:`ipaddress._BaseAddress.is_global`
as a catch-all for the registries' special-purpose blocks. IPv6 forms that embed an IPv4 address
(NAT64, 6to4) are refused when the embedded address is; IPv4-mapped and IPv4-compatible forms and
Teredo are refused outright: no public destination needs them, and some stacks route them to
the embedded IPv4 address.

:func:`refusal` returns the reason an address is refused, or ``None`` when it may be used.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Allowed only with the test-only ``allow_loopback_for_tests`` setting.
LOOPBACK_REASON: Final = "loopback"

_V4: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "this_network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", LOOPBACK_REASON),
    ("169.254.0.0/16", "link_local"),  # 169.254.169.254: cloud metadata services
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "ietf_protocol"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "relay_anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)

_V6: Final[tuple[tuple[str, str], ...]] = (
    ("::/128", "unspecified"),
    ("::1/128", LOOPBACK_REASON),
    ("::ffff:0:0/96", "ipv4_mapped"),
    ("::/96", "ipv4_compatible"),
    ("64:ff9b:1::/48", "nat64_local"),
    ("100::/64", "discard"),
    ("2001::/32", "teredo"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique_local"),
    ("fe80::/10", "link_local"),
    ("fec0::/10", "site_local"),
    ("ff00::/8", "multicast"),
)

_V4_NETS: Final = tuple((ipaddress.IPv4Network(net), why) for net, why in _V4)
_V6_NETS: Final = tuple((ipaddress.IPv6Network(net), why) for net, why in _V6)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``address`` may not be connected to, or ``None`` when it may.

    ``allow_loopback`` (the test-only setting) lets ``127.0.0.0/8`` and ``::1`` through, nothing
    else: not the IPv4-mapped or NAT64 spellings of a loopback address.
    """
    if isinstance(address, ipaddress.IPv4Address):
        reason = _first_match(address, _V4_NETS)
    else:
        reason = _v6_refusal(address)
    if reason is None and not address.is_global:
        reason = "not_global"
    if reason == LOOPBACK_REASON and allow_loopback:
        return None
    return reason


def _first_match(
    address: IPAddress,
    networks: tuple[tuple[ipaddress.IPv4Network, str], ...]
    | tuple[tuple[ipaddress.IPv6Network, str], ...],
) -> str | None:
    for network, reason in networks:
        if address in network:
            return reason
    return None


def _v6_refusal(address: ipaddress.IPv6Address) -> str | None:
    if address.scope_id:
        return "zone_id"
    embedded: ipaddress.IPv4Address | None = None
    if address in _NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    elif address.sixtofour is not None:
        embedded = address.sixtofour
    if embedded is not None:
        inner = refusal(embedded)
        return f"embedded_{inner}" if inner else None
    return _first_match(address, _V6_NETS)
