"""`bastion check` audits of :class:`AccessTokenSettings`.

Registered by :mod:`bastion.identity.audits` (``settings.access_tokens``).
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.checks import Finding, Severity
from bastion.identity.tokens.settings import AccessTokenSettings

__all__ = ["audit_token_settings"]

#: A stolen access token cannot be revoked: keep its useful life short.
MAX_RECOMMENDED_TTL_SECONDS = 15 * 60
MAX_RECOMMENDED_LEEWAY_SECONDS = 60
MAX_RECOMMENDED_KEY_LIFETIME_DAYS = 365


def audit_token_settings(settings: AccessTokenSettings) -> Iterator[Finding]:
    """Findings for access-token settings."""
    if settings.ttl_seconds > MAX_RECOMMENDED_TTL_SECONDS:
        yield Finding(
            "access_token_ttl_long",
            Severity.MEDIUM,
            f"Access tokens live {settings.ttl_seconds} s; a stolen one stays usable that long "
            "and cannot be revoked.",
            "Keep access tokens at 15 minutes or less (default 5) and renew with a refresh "
            "token or the session.",
        )
    if settings.leeway_seconds > MAX_RECOMMENDED_LEEWAY_SECONDS:
        yield Finding(
            "access_token_leeway_long",
            Severity.LOW,
            f"A clock skew of {settings.leeway_seconds} s is tolerated on token times.",
            "Synchronise clocks (NTP) and keep the leeway at 60 s or less (default 30).",
        )
    if settings.key_lifetime_days > MAX_RECOMMENDED_KEY_LIFETIME_DAYS:
        yield Finding(
            "signing_key_lifetime_long",
            Severity.LOW,
            f"Signing keys are rotated only every {settings.key_lifetime_days} days.",
            "Rotate signing keys at least yearly (default 90 days).",
        )
