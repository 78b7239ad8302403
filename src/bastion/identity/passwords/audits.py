"""`bastion check` audits of :class:`PasswordSettings`.

Registered by :mod:`bastion.identity.audits` (``settings.passwords``).
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.checks import Finding, Severity
from bastion.identity.passwords.settings import PasswordSettings

__all__ = ["audit_password_settings"]

RECOMMENDED_MIN_LENGTH = 12
RECOMMENDED_MIN_SCORE = 3


def audit_password_settings(settings: PasswordSettings) -> Iterator[Finding]:
    """Findings for password hashing and policy settings."""
    if not settings.hash_parameters_meet_owasp:
        yield Finding(
            "password_hash_weak",
            Severity.HIGH,
            f"Argon2id parameters (m={settings.hash_memory_kib} KiB, t={settings.hash_time_cost})"
            " are below OWASP's minimum: stolen hashes are cheap to crack.",
            "Use at least 19456 KiB and 2 passes (the default) and unset "
            "allow_insecure_hash_parameters.",
            blocks_production=True,
        )
    if settings.min_length < RECOMMENDED_MIN_LENGTH:
        yield Finding(
            "password_min_length_short",
            Severity.MEDIUM,
            f"Passwords may be as short as {settings.min_length} characters.",
            f"Require at least {RECOMMENDED_MIN_LENGTH} characters (the default).",
        )
    if settings.min_strength_score < RECOMMENDED_MIN_SCORE:
        yield Finding(
            "password_strength_low",
            Severity.MEDIUM,
            f"Passwords with a zxcvbn score of {settings.min_strength_score} are accepted: "
            "easily guessed passwords pass.",
            f"Require a score of at least {RECOMMENDED_MIN_SCORE} (the default).",
        )
    if not settings.breach_check:
        yield Finding(
            "password_breach_check_off",
            Severity.LOW,
            "New passwords are screened against the bundled common-password list only, not "
            "against the breach corpus of Have I Been Pwned.",
            "Enable breach_check if the server may reach api.pwnedpasswords.com "
            "(k-anonymity: only 5 hex characters of a SHA-1 leave the server).",
        )
    if settings.min_character_classes:
        yield Finding(
            "password_composition_rules",
            Severity.INFO,
            "Composition rules are on; NIST SP 800-63B advises against them (they push users "
            "to predictable patterns such as 'Password1!').",
            "Set min_character_classes=0 and rely on length, the common list and the score.",
        )
