"""Keys: from the proxy-aware state, never from headers; bounded; IPv6 folded to /64."""

from __future__ import annotations

from typing import Any

from bastion.protections.ratelimit.keys import (
    UNKNOWN_IP,
    Identity,
    bucket_key,
    fold_ip,
    identity_of,
)
from bastion.protections.ratelimit.policies import KeyKind, Policy

PER_IP = Policy.per("ip", 1, 1)
PER_USER = Policy.per("user", 1, 1, keys=[KeyKind.USER])
PER_USER_CLIENT = Policy.per("uc", 1, 1, keys=[KeyKind.USER, KeyKind.CLIENT])
PER_ROUTE = Policy.per("route", 1, 1, keys=[KeyKind.ROUTE], paths=["/a/{id}", "/b/{id}"])
GLOBAL = Policy.per("global", 1, 1, keys=[])


def scope(**state: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "client": ("203.0.113.9", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.1")],
        "state": state,
    }


def test_identity_prefers_the_proxy_aware_ip_and_ignores_headers() -> None:
    assert identity_of(scope()).ip == "203.0.113.9"  # X-Forwarded-For is never read here
    assert identity_of(scope(client_ip="192.0.2.7")).ip == "192.0.2.7"
    assert identity_of({"type": "http", "client": None}).ip == UNKNOWN_IP


def test_identity_user_and_client() -> None:
    ident = identity_of(scope(user_id=42, oauth_client_id="app"))
    assert ident == Identity(ip="203.0.113.9", user="42", client="app")


def test_ipv6_is_folded_to_its_network() -> None:
    assert fold_ip("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert fold_ip("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert fold_ip("2001:db8:1:2::1", 128) == "2001:db8:1:2::1/128"
    assert fold_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert fold_ip("192.0.2.1") == "192.0.2.1"
    assert fold_ip("not:an:ip") == "not:an:ip"


def test_keys_are_short_fixed_size_and_prefixed() -> None:
    huge = Identity(ip="192.0.2.1", user="u" * 65_536)
    key = bucket_key("p:", (PER_USER, ""), huge)
    assert key is not None
    assert key.startswith("p:user:")
    assert len(key) == len("p:user:") + 32
    assert "u" * 10 not in key


def test_keys_differ_per_value_and_policy() -> None:
    a, b = Identity(ip="192.0.2.1"), Identity(ip="192.0.2.2")
    assert bucket_key("p:", (PER_IP, ""), a) != bucket_key("p:", (PER_IP, ""), b)
    assert bucket_key("p:", (PER_IP, ""), a) == bucket_key("p:", (PER_IP, ""), a)
    other = Policy.per("other", 1, 1)
    assert bucket_key("p:", (PER_IP, ""), a) != bucket_key("p:", (other, ""), a)


def test_a_value_cannot_imitate_another_split_of_the_parts() -> None:
    one = Identity(ip="x", user="a\x1fclient=b", client="c")
    two = Identity(ip="x", user="a", client="b\x1fclient=c")
    assert bucket_key("p:", (PER_USER_CLIENT, ""), one) != bucket_key(
        "p:", (PER_USER_CLIENT, ""), two
    )


def test_policies_needing_an_unknown_part_do_not_apply() -> None:
    anonymous = Identity(ip="192.0.2.1")
    assert bucket_key("p:", (PER_USER, ""), anonymous) is None
    assert bucket_key("p:", (PER_IP, ""), anonymous) is not None


def test_route_and_global_keys() -> None:
    ident_a, ident_b = Identity(ip="192.0.2.1"), Identity(ip="192.0.2.2")
    first = bucket_key("p:", (PER_ROUTE, "/a/{id}"), ident_a)
    assert first == bucket_key("p:", (PER_ROUTE, "/a/{id}"), ident_b)  # per route, any client
    assert first != bucket_key("p:", (PER_ROUTE, "/b/{id}"), ident_a)
    assert bucket_key("p:", (GLOBAL, ""), ident_a) == bucket_key("p:", (GLOBAL, ""), ident_b)
