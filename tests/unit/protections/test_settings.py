"""Rate limit settings: strict defaults, overrides merged by name, loud failures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.protections.ratelimit.interfaces import FailureMode
from bastion.protections.ratelimit.policies import KeyKind
from bastion.protections.ratelimit.settings import DEFAULT_POLICIES, RateLimitSettings

AUTH_POLICIES = {"login", "registration", "password-reset", "email-verification", "mfa", "token"}


def test_defaults_cover_every_sensitive_endpoint_and_fail_closed() -> None:
    policies = {p.name: p for p in RateLimitSettings().build_policies()}
    assert set(policies) >= AUTH_POLICIES
    for name in AUTH_POLICIES | {"token-client"}:
        assert policies[name].failure_mode is FailureMode.FAIL_CLOSED, name
        assert policies[name].paths, name
    assert policies["api-ip"].failure_mode is FailureMode.FAIL_OPEN
    assert policies["api-ip"].paths == ()
    assert policies["api-user"].keys == (KeyKind.USER,)
    assert policies["token-client"].keys == (KeyKind.CLIENT,)
    assert policies["login"].methods == frozenset({"POST"})


def test_defaults() -> None:
    settings = RateLimitSettings()
    assert settings.storage == "memory"
    assert settings.emit_headers
    assert settings.ipv6_prefix == 64
    assert set(settings.backoff) == {"password", "totp", "recovery_code"}
    assert settings.backoff_policy("totp").threshold == 3


def test_overrides_merge_by_name() -> None:
    settings = RateLimitSettings(
        policies={
            "login": {"limit": 50},
            "mfa": {"enabled": False},
            "search": {"limit": 30, "window_seconds": 60, "paths": ["/v1/search"]},
        },
        backoff={"password": {"threshold": 10}},
    )
    policies = {p.name: p for p in settings.build_policies()}
    assert policies["login"].rate.limit == 50
    assert policies["login"].rate.period == DEFAULT_POLICIES["login"]["window_seconds"]
    assert policies["login"].paths == DEFAULT_POLICIES["login"]["paths"]
    assert "mfa" not in policies
    assert policies["search"].failure_mode is FailureMode.FAIL_CLOSED
    assert settings.backoff_policy("password").threshold == 10
    assert settings.backoff_policy("password").max_delay == 900.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"storage": "redis"},  # without a URL
        {"policies": {"login": {"limit": 0}}},
        {"policies": {"Bad Name": {"limit": 1, "window_seconds": 1}}},
        {"policies": {"x": {"limit": 1, "window_seconds": 1, "keys": ["route"]}}},
        {"policies": {"x": {"limit": 1, "window_seconds": 1, "paths": ["relative"]}}},
        {"policies": {"x": {"limit": 1, "window_seconds": 1, "keys": ["header"]}}},
        {"unknown": True},
    ],
)
def test_invalid_settings_fail_loudly(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RateLimitSettings(**kwargs)  # type: ignore[arg-type]


def test_redis_url_is_secret() -> None:
    settings = RateLimitSettings(storage="redis", redis_url="redis://:hunter2@db:6379/0")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
