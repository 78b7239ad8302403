"""ProxyHeadersMiddleware: proxy headers are believed from trusted proxies only, right to left."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from tests.unit.http.helpers import call

from bastion.http.middleware.proxy import (
    UNKNOWN_CLIENT,
    ProxyHeadersMiddleware,
    parse_forwarded,
    parse_ip,
)

PROXY = "10.0.0.5"
TRUSTED = [ip_network("10.0.0.0/24"), ip_network("2001:db8:ffff::/48")]


class Seen:
    """An ASGI app that remembers the scope it was called with."""

    scope: Scope

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        self.scope = scope
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def resolve(
    headers: list[tuple[bytes, bytes]],
    *,
    peer: str | None = PROXY,
    trusted: list[Any] | None = None,
    scheme: str = "http",
) -> tuple[str, str]:
    """``(client_ip, scheme)`` that the inner app sees."""
    inner = Seen()
    app = ProxyHeadersMiddleware(inner, trusted_proxies=TRUSTED if trusted is None else trusted)
    await call(
        app,
        method="GET",
        headers=headers,
        scheme=scheme,
        client_addr=(peer, 1234) if peer is not None else None,
    )
    return inner.scope["state"]["client_ip"], inner.scope["scheme"]


# -- attacks ---------------------------------------------------------------------------------


async def test_headers_ignored_without_trusted_proxies() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    assert await resolve(headers, peer="198.51.100.1", trusted=[]) == ("198.51.100.1", "http")


async def test_spoofed_xff_from_untrusted_peer_is_ignored() -> None:
    headers = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=5.6.7.8;proto=https"),
    ]
    assert await resolve(headers, peer="198.51.100.1") == ("198.51.100.1", "http")


async def test_client_supplied_leftmost_value_is_never_used() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the trusted proxy appended the real address.
    headers = [(b"x-forwarded-for", b"1.2.3.4, 198.51.100.20")]
    assert (await resolve(headers))[0] == "198.51.100.20"


async def test_forged_forwarded_next_to_real_xff_is_ambiguous_and_ignored() -> None:
    # The proxy appends to X-Forwarded-For; the client forged a Forwarded header.
    headers = [(b"forwarded", b"for=1.2.3.4"), (b"x-forwarded-for", b"198.51.100.20")]
    assert await resolve(headers) == (PROXY, "http")


async def test_spoofed_proto_cannot_upgrade_scheme() -> None:
    # The client claims https; the proxy appended what it really saw.
    headers = [
        (b"x-forwarded-for", b"198.51.100.20"),
        (b"x-forwarded-proto", b"https, http"),
    ]
    assert await resolve(headers) == ("198.51.100.20", "http")


async def test_equivalent_spellings_of_an_address_become_one() -> None:
    # Rate limits are per IP: "::ffff:1.2.3.4" and "1.2.3.4" must be the same client.
    assert (await resolve([(b"x-forwarded-for", b"::ffff:198.51.100.20")]))[0] == "198.51.100.20"
    assert (await resolve([(b"x-forwarded-for", b"2001:DB8:0:0::1")]))[0] == "2001:db8::1"


# -- trusted chains ---------------------------------------------------------------------------


async def test_trusted_chain_is_walked_past_trusted_hops() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.20, 10.0.0.7, 10.0.0.9")]
    assert (await resolve(headers))[0] == "198.51.100.20"


async def test_chain_of_only_trusted_hops_gives_the_leftmost() -> None:
    headers = [(b"x-forwarded-for", b"10.0.0.8, 10.0.0.9")]
    assert (await resolve(headers))[0] == "10.0.0.8"


async def test_repeated_xff_lines_form_one_list() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.20")]
    assert (await resolve(headers))[0] == "198.51.100.20"


async def test_xff_proto_aligned_from_the_right() -> None:
    headers = [
        (b"x-forwarded-for", b"198.51.100.20, 10.0.0.7"),
        (b"x-forwarded-proto", b"https, http"),
    ]
    assert await resolve(headers) == ("198.51.100.20", "https")


async def test_single_xfp_from_an_overwriting_proxy() -> None:
    headers = [
        (b"x-forwarded-for", b"198.51.100.20, 10.0.0.7"),
        (b"x-forwarded-proto", b"https"),
    ]
    assert await resolve(headers) == ("198.51.100.20", "https")


async def test_proto_without_for_is_honoured_from_a_trusted_proxy() -> None:
    assert await resolve([(b"x-forwarded-proto", b"HTTPS")]) == (PROXY, "https")


async def test_websocket_scheme_follows_proto() -> None:
    inner = Seen()
    app = ProxyHeadersMiddleware(inner, trusted_proxies=TRUSTED)
    await call(
        app,
        scope_type="websocket",
        scheme="ws",
        headers=[(b"x-forwarded-proto", b"https")],
        client_addr=(PROXY, 1),
    )
    assert inner.scope["scheme"] == "wss"


async def test_forwarded_header_with_quoted_ipv6_and_port() -> None:
    headers = [(b"forwarded", b'for="[2001:db8::1]:4711";proto=https;by=10.0.0.5')]
    assert await resolve(headers) == ("2001:db8::1", "https")


async def test_forwarded_chain_walked_right_to_left() -> None:
    headers = [
        (b"forwarded", b"for=6.6.6.6;proto=https, for=198.51.100.20;proto=https"),
        (b"forwarded", b'for="[2001:db8:ffff::9]";proto=http'),
    ]
    assert await resolve(headers, peer="2001:db8:ffff::1") == ("198.51.100.20", "https")


async def test_ipv6_peer_in_trusted_network() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.20")]
    assert (await resolve(headers, peer="2001:db8:ffff::1"))[0] == "198.51.100.20"


# -- garbage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"not-an-ip",
        b"198.51.100.20, garbage",
        b"198.51.100.20,,10.0.0.7",
        b"999.1.1.1",
        b"",
        b"unknown",
        b"1.2.3.4:http",
        b"[2001:db8::1",
        b"198.51.100.20\x00",
    ],
)
async def test_invalid_xff_falls_back_to_peer(value: bytes) -> None:
    assert (await resolve([(b"x-forwarded-for", value)]))[0] == PROXY


async def test_garbage_left_of_the_client_is_irrelevant() -> None:
    # The client wrote it; the walk stops at the first untrusted address before reaching it.
    headers = [(b"x-forwarded-for", b"garbage, 198.51.100.20")]
    assert (await resolve(headers))[0] == "198.51.100.20"


@pytest.mark.parametrize(
    "value",
    [
        b"for=unknown",
        b"for=_hidden",
        b"proto=https",
        b"for=1.2.3.4;for=5.6.7.8",
        b'for="1.2.3.4',
        b"for=1.2.3.4,,",
        b"garbage",
        b"for=[2001:db8::1]:x",
    ],
)
async def test_invalid_forwarded_falls_back_to_peer(value: bytes) -> None:
    assert await resolve([(b"forwarded", value)]) == (PROXY, "http")


@pytest.mark.parametrize("proto", [b"ftp", b"javascript", b"", b"https://", b"http s"])
async def test_invalid_proto_leaves_scheme(proto: bytes) -> None:
    assert (await resolve([(b"x-forwarded-proto", proto)]))[1] == "http"


async def test_missing_client_is_unknown() -> None:
    assert (await resolve([], peer=None))[0] == UNKNOWN_CLIENT
    assert (await resolve([], peer=None, trusted=[]))[0] == UNKNOWN_CLIENT


async def test_non_ip_peer_is_not_trusted() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4")]
    assert (await resolve(headers, peer="/run/bastion.sock"))[0] == "/run/bastion.sock"


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def noop(*_: Any) -> Any:
        return None

    scope: dict[str, Any] = {"type": "lifespan"}
    await ProxyHeadersMiddleware(app, trusted_proxies=TRUSTED)(scope, noop, noop)
    assert seen == ["lifespan"]
    assert "state" not in scope


# -- parsers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:", None),
        ("192.0.2.1:999999", None),
        ("[2001:db8::1]443", None),
        ("example.com", None),
        ("", None),
        ("١٢٣.1.1.1", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    address = parse_ip(text)
    assert (str(address) if address is not None else None) == expected


def test_parse_forwarded_quoted_escapes_and_case() -> None:
    assert parse_forwarded('For="[2001:db8::1]:4711";PROTO=https, for=1.2.3.4;by="a\\"b"') == [
        {"for": "[2001:db8::1]:4711", "proto": "https"},
        {"for": "1.2.3.4", "by": 'a"b'},
    ]


def test_parse_forwarded_long_unterminated_quote_is_fast() -> None:
    # Linear time on hostile input (no catastrophic backtracking).
    assert parse_forwarded('for="' + "\\x" * 50_000) is None
