"""`bastion check` flags passkey settings that browsers would refuse or that lack TLS."""

from __future__ import annotations

from typing import Any

from bastion.config.settings import Settings
from bastion.identity.mfa.webauthn.audits import audit_webauthn

SECRET = "x" * 48


def codes(**values: Any) -> list[str]:
    settings = Settings(**{"env": "test", "secret_key": SECRET, **values})
    return [finding.code for finding in audit_webauthn(settings)]


def test_the_defaults_and_a_public_https_url_are_clean() -> None:
    assert codes() == []
    assert codes(public_url="https://id.example.com") == []
    assert codes(webauthn={"rp_id": "example.com", "origins": ["https://id.example.com"]}) == []


def test_origins_outside_the_rp_id_or_without_tls_are_flagged() -> None:
    assert codes(
        public_url="https://id.example.com", webauthn={"origins": ["https://evil.org"]}
    ) == ["webauthn_origin_outside_rp_id"]
    assert codes(webauthn={"rp_id": "example.com", "origins": ["http://id.example.com"]}) == [
        "webauthn_origin_insecure"
    ]


def test_localhost_in_production_is_flagged() -> None:
    assert codes(env="production") == ["webauthn_rp_id_localhost"]
    assert codes(env="production", public_url="https://id.example.com") == []
