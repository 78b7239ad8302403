"""`bastion check` findings for AccessTokenSettings."""

from __future__ import annotations

from bastion.checks import Severity
from bastion.identity.tokens import AccessTokenSettings, audit_token_settings


def test_defaults_are_clean() -> None:
    assert list(audit_token_settings(AccessTokenSettings())) == []


def test_long_lived_tokens_and_loose_clocks_are_reported() -> None:
    findings = {
        f.code: f
        for f in audit_token_settings(
            AccessTokenSettings(ttl_seconds=901, leeway_seconds=61, key_lifetime_days=366)
        )
    }
    assert findings["access_token_ttl_long"].severity is Severity.MEDIUM
    assert findings["access_token_leeway_long"].severity is Severity.LOW
    assert findings["signing_key_lifetime_long"].severity is Severity.LOW
    assert not list(audit_token_settings(AccessTokenSettings(ttl_seconds=900)))
