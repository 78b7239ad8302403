"""`bastion check` findings of the identity domain.

Registered audits (``Settings -> findings``): password hashing and policy
(:func:`~bastion.identity.passwords.audits.audit_password_settings`), access-token lifetimes
(:func:`~bastion.identity.tokens.audits.audit_token_settings`), multi-factor policy and step-up
(:func:`~bastion.identity.mfa.audits.audit_mfa`), and the session, mail and lockout settings
below. Cookie flags are the core audit's (``cookie_insecure``).

:func:`signing_key_findings` needs the database (the age of the active signing key), so the
``check`` command runs it after the registered audits, when the database is reachable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from bastion.checks import Finding, Severity, register
from bastion.identity.mfa import audits as mfa_audits  # noqa: F401 - registers the MFA audits
from bastion.identity.mfa.webauthn import audits as webauthn_audits  # noqa: F401 - registers
from bastion.identity.passwords.audits import audit_password_settings
from bastion.identity.tokens.audits import audit_token_settings

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.services import Services

__all__ = ["audit_identity", "audit_passwords", "audit_tokens", "signing_key_findings"]

#: NIST SP 800-63B §4.1.3: reauthentication at AAL1 at least every 30 days.
MAX_RECOMMENDED_SESSION_SECONDS = 30 * 86_400
MAX_RECOMMENDED_GRACE_SECONDS = 30
MAX_RECOMMENDED_REVOCATION_BOUND_SECONDS = 15


@register
def audit_passwords(settings: Settings) -> Iterator[Finding]:
    return audit_password_settings(settings.passwords)


@register
def audit_tokens(settings: Settings) -> Iterator[Finding]:
    return audit_token_settings(settings.access_tokens)


@register
def audit_identity(settings: Settings) -> Iterator[Finding]:
    """Sessions, refresh grace, revocation bound, mail transport."""
    if settings.session_absolute_seconds > MAX_RECOMMENDED_SESSION_SECONDS:
        yield Finding(
            "session_lifetime_long",
            Severity.MEDIUM,
            f"Sessions last up to {settings.session_absolute_seconds // 86_400} days without "
            "a new login; a stolen refresh token stays useful that long.",
            "Keep BASTION_SESSION_ABSOLUTE_SECONDS at 30 days or less (NIST SP 800-63B AAL1).",
        )
    if settings.refresh_grace_seconds > MAX_RECOMMENDED_GRACE_SECONDS:
        yield Finding(
            "refresh_grace_long",
            Severity.LOW,
            f"A reused refresh token is tolerated for {settings.refresh_grace_seconds} s as a "
            "retry: a thief racing the user within that window is not detected.",
            "Keep BASTION_REFRESH_GRACE_SECONDS at a few seconds (default 10).",
        )
    if settings.revocation_bound_seconds > MAX_RECOMMENDED_REVOCATION_BOUND_SECONDS:
        yield Finding(
            "revocation_bound_long",
            Severity.LOW,
            f"A revoked session's access tokens keep working for up to "
            f"{settings.revocation_bound_seconds} s.",
            "Keep BASTION_REVOCATION_BOUND_SECONDS at 5 s or less.",
        )
    if settings.is_production and settings.mailer != "smtp":
        yield Finding(
            "mailer_not_smtp",
            Severity.MEDIUM,
            f"The {settings.mailer} mailer is configured: verification and reset mails (with "
            "their tokens) go to the server's stderr or disk instead of the users.",
            "Set BASTION_MAILER=smtp and BASTION_SMTP_HOST.",
        )
    if settings.mailer == "smtp" and not (settings.smtp_starttls or settings.smtp_tls):
        local = _is_loopback(settings.smtp_host)
        yield Finding(
            "smtp_cleartext",
            Severity.LOW if local else Severity.HIGH,
            "SMTP is used without STARTTLS or TLS: verification and reset tokens, and the SMTP "
            "password, cross the network in clear"
            + (" (to a relay on this host)." if local else "."),
            "Set BASTION_SMTP_STARTTLS=true (port 587) or BASTION_SMTP_TLS=true (port 465).",
            # A relay on the loopback interface (a local MTA) never puts mail on the network.
            blocks_production=not local,
        )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def signing_key_findings(services: Services) -> list[Finding]:
    """The active signing key is older than ``key_lifetime_days`` (rotation is overdue)."""
    keys = await services.access_tokens.keys.verification_keys()
    now = services.clock.now()
    lifetime = timedelta(days=services.settings.access_tokens.key_lifetime_days)
    active = [key for key in keys if key.signs_at(now)]
    if not active:
        return []
    newest = max(active, key=lambda key: key.created_at)
    if now - newest.created_at <= lifetime:
        return []
    return [
        Finding(
            "signing_key_old",
            Severity.MEDIUM,
            f"The active signing key ({newest.kid[:12]}...) is "
            f"{(now - newest.created_at).days} days old, beyond the rotation period of "
            f"{lifetime.days} days.",
            "Run `bastion keys rotate`.",
        )
    ]
