"""Property tests of the strict URL parser: whatever the input, an accepted URL is read the same
way by httpx, and an accepted host *name* is never something the C resolver would take for an
IPv4 address (``getaddrinfo`` accepts ``inet_aton`` forms such as ``127.1`` or ``0x7f.1``)."""

from __future__ import annotations

import ipaddress
import socket

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.outbound import DestinationRefused
from bastion.outbound.urls import parse_target

SCHEMES = frozenset({"https", "http"})
PORTS = frozenset({80, 443, 8443})

#: Characters that URL-confusion attacks are made of.
_TRICKY = "0123456789abcdefxX.:@%[]/\\?#-_~ \t\u00a0\uff10\uff0e\u3002"
hosts = st.text(alphabet=_TRICKY, min_size=0, max_size=24)
urls = st.builds(
    lambda scheme, host, tail: f"{scheme}{host}{tail}",
    st.sampled_from(["https://", "http://", "HTTPS://", "https:/", "https:\\\\", ""]),
    hosts,
    st.sampled_from(["", "/", "/x?y#z", ":443/", ":8443", ":0443/"]),
)


@settings(max_examples=1500, deadline=None)
@given(urls)
def test_accepted_urls_are_unambiguous(url: str) -> None:
    try:
        target = parse_target(url, schemes=SCHEMES, ports=PORTS)
    except DestinationRefused:
        return
    parsed = httpx.URL(url)
    assert parsed.raw_host.decode("ascii").lower() in {target.host, f"[{target.host}]"} or (
        target.ip is not None and ipaddress.ip_address(parsed.raw_host.decode()) == target.ip
    )
    assert (parsed.port or (443 if target.scheme == "https" else 80)) == target.port
    if target.ip is None:
        try:
            socket.inet_aton(target.host)
        except OSError:
            pass
        else:
            raise AssertionError(f"{target.host!r} is an IPv4 address to the C resolver")
    else:
        assert str(target.ip) == target.host


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from(["d", "x", "o", "short"]))
def test_every_numeric_spelling_of_an_ipv4_address_is_refused_or_canonical(
    value: int, form: str
) -> None:
    address = ipaddress.IPv4Address(value)
    a, b, c, d = address.packed
    host = {
        "d": str(value),
        "x": hex(value),
        "o": f"0{value:o}",
        "short": f"{a}.{(b << 16) | (c << 8) | d}",
    }[form]
    try:
        target = parse_target(f"https://{host}/", schemes=SCHEMES, ports=PORTS)
    except DestinationRefused as exc:
        refused = exc.reason
    else:
        # Accepted only when the spelling already is the canonical dotted quad.
        assert (target.ip, target.host) == (address, str(address))
        return
    assert refused == "ambiguous_ipv4"
