"""Policies and the table that picks them by route template and method."""

from __future__ import annotations

import pytest

from bastion.protections.ratelimit.interfaces import FailureMode
from bastion.protections.ratelimit.policies import KeyKind, Policy, PolicyTable, normalize_path

LOGIN = Policy.per("login", 5, 60, paths=["/auth/login"], methods=["post"])
MFA = Policy.per("mfa", 5, 60, paths=["/auth/mfa{rest:path}"])
ITEM = Policy.per("item", 5, 60, keys=[KeyKind.IP, KeyKind.ROUTE], paths=["/items/{id}"])
API = Policy.per("api-ip", 100, 60, failure_mode=FailureMode.FAIL_OPEN)
TABLE = PolicyTable([API, LOGIN, MFA, ITEM], exempt_paths=["/healthz"])


def names(method: str, path: str) -> list[str]:
    return [p.name for p, _ in TABLE.match(method, path)]


def test_route_groups_compose_with_the_general_budget() -> None:
    assert names("POST", "/auth/login") == ["login", "api-ip"]
    assert names("GET", "/auth/login") == ["api-ip"]  # login counts POSTs only
    assert names("GET", "/other") == ["api-ip"]


def test_templates_with_parameters() -> None:
    assert names("POST", "/auth/mfa") == ["mfa", "api-ip"]
    assert names("POST", "/auth/mfa/totp/verify") == ["mfa", "api-ip"]
    applied = TABLE.match("GET", "/items/42")
    assert [(p.name, t) for p, t in applied] == [("item", "/items/{id}"), ("api-ip", "")]


@pytest.mark.parametrize("path", ["/auth/login/", "//auth/login", "/auth//login", "/auth/login//"])
def test_path_variants_do_not_dodge_a_policy(path: str) -> None:
    assert names("POST", path) == ["login", "api-ip"]


def test_exempt_paths() -> None:
    assert TABLE.match("GET", "/healthz") == ()


def test_normalize_path() -> None:
    assert normalize_path("/") == "/"
    assert normalize_path("//") == "/"
    assert normalize_path("/a//b///") == "/a/b"


def test_field_item_and_lookup() -> None:
    assert LOGIN.field_item == '"login";q=5;w=60'
    assert Policy.per("b", 10, 10, burst=2).field_item == '"b";q=2;w=2'
    assert TABLE["mfa"] is MFA
    with pytest.raises(KeyError):
        TABLE["nope"]
    assert TABLE
    assert not PolicyTable([])


def test_secure_defaults() -> None:
    policy = Policy.per("p", 1, 1)
    assert policy.failure_mode is FailureMode.FAIL_CLOSED
    assert policy.keys == (KeyKind.IP,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": 'bad"name'}, "policy names"),
        ({"name": "UPPER"}, "policy names"),
        ({"name": "x" * 65}, "policy names"),
        ({"keys": [KeyKind.IP, KeyKind.IP]}, "twice"),
        ({"keys": [KeyKind.ROUTE]}, "keyed by route"),
        ({"paths": ["no-slash"]}, "must start with"),
    ],
)
def test_invalid_policies(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "ok", "limit": 1, "window": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        Policy.per(**arguments)  # type: ignore[arg-type]


def test_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        PolicyTable([API, API])


def test_key_kinds_given_as_strings_are_coerced() -> None:
    assert Policy.per("p", 1, 1, keys=["ip", "user"]).keys == (KeyKind.IP, KeyKind.USER)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="'nope'"):
        Policy.per("p", 1, 1, keys=["nope"])  # type: ignore[list-item]


def test_header_bytes_are_the_field_item() -> None:
    policy = Policy.per("b", 10, 10, burst=2)
    assert policy.field_bytes == policy.field_item.encode("ascii") == b'"b";q=2;w=2'
    assert policy.limit_prefix == b'"b";r='
