"""`bastion check` findings for PasswordSettings."""

from __future__ import annotations

from bastion.checks import Finding, Severity
from bastion.identity.passwords import PasswordSettings, audit_password_settings


def _findings(**kwargs: object) -> dict[str, Finding]:
    return {f.code: f for f in audit_password_settings(PasswordSettings(**kwargs))}  # type: ignore[arg-type]


def test_defaults_only_note_the_breach_check() -> None:
    findings = _findings()
    assert set(findings) == {"password_breach_check_off"}
    assert findings["password_breach_check_off"].severity is Severity.LOW
    assert not _findings(breach_check=True)


def test_weak_hashing_is_high_and_blocks_production() -> None:
    finding = _findings(hash_memory_kib=64, hash_time_cost=1, allow_insecure_hash_parameters=True)[
        "password_hash_weak"
    ]
    assert finding.severity is Severity.HIGH
    assert finding.blocks_production
    assert "m=64 KiB" in finding.message


def test_policy_loosening_is_reported() -> None:
    findings = _findings(min_length=8, min_strength_score=2, min_character_classes=3)
    assert findings["password_min_length_short"].severity is Severity.MEDIUM
    assert findings["password_strength_low"].severity is Severity.MEDIUM
    assert findings["password_composition_rules"].severity is Severity.INFO
    for finding in findings.values():
        assert finding.fix
