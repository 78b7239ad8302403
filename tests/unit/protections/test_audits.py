"""`bastion check` findings for rate limiting."""

from __future__ import annotations

from bastion.checks import Severity, run_all
from bastion.config import Settings
from bastion.protections.ratelimit.settings import RateLimitSettings


def codes(settings: Settings) -> dict[str, Severity]:
    return {f.code: f.severity for f in run_all(settings)}


def test_defaults_have_no_rate_limit_finding() -> None:
    assert not [c for c in codes(Settings()) if c.startswith("ratelimit_")]


def test_disabled_rate_limiting_is_high() -> None:
    found = codes(Settings(ratelimit=RateLimitSettings(enabled=False)))
    assert found["ratelimit_disabled"] is Severity.HIGH


def test_a_disabled_login_limit_is_high() -> None:
    rl = RateLimitSettings(policies={"login": {"enabled": False}})
    assert codes(Settings(ratelimit=rl))["ratelimit_login_off"] is Severity.HIGH


def test_fail_open_login_with_redis_is_reported() -> None:
    rl = RateLimitSettings(
        storage="redis",
        redis_url="redis://127.0.0.1:6379/0",
        policies={"login": {"failure_mode": "fail_open"}},
    )
    assert "ratelimit_login_fail_open" in codes(Settings(ratelimit=rl))


def test_memory_store_in_production_is_reported() -> None:
    found = codes(Settings(env="production", secret_key="k" * 48, docs_enabled=False))
    assert found["ratelimit_memory_store"] is Severity.MEDIUM


def test_headers_off_is_informational() -> None:
    found = codes(Settings(ratelimit=RateLimitSettings(emit_headers=False)))
    assert found["ratelimit_headers_off"] is Severity.INFO
