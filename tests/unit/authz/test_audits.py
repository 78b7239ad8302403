"""`bastion check` findings of the authorization settings."""

from __future__ import annotations

from bastion.authz.audits import audit_authz
from bastion.authz.settings import AuthzSettings
from bastion.checks import Severity, run_all
from bastion.config import Settings

KEY = "k" * 48


def codes(**authz: object) -> set[str]:
    settings = Settings(env="test", secret_key=KEY, authz=AuthzSettings(**authz))  # type: ignore[arg-type]
    return {f.code for f in audit_authz(settings)}


def test_defaults_have_no_authz_finding() -> None:
    assert codes() == set()


def test_weakened_settings_are_reported() -> None:
    assert codes(cache_staleness_seconds=30) == {"authz_cache_stale"}
    assert codes(decision_sample_rate=0.01) == {"authz_decisions_unsampled"}
    assert codes(query_users=("svc",)) == {"authz_query_users"}
    assert codes(query_users=("svc",), api_enabled=False) == set()


def test_findings_reach_bastion_check() -> None:
    settings = Settings(env="test", secret_key=KEY, authz=AuthzSettings(cache_staleness_seconds=30))
    (stale,) = [f for f in run_all(settings) if f.code == "authz_cache_stale"]
    assert stale.severity is Severity.MEDIUM
