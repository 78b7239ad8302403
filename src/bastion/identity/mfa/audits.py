"""`bastion check` findings of multi-factor authentication: the policy and step-up switched to
weaker settings than the secure defaults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.checks import Finding, Severity, register

if TYPE_CHECKING:
    from bastion.config.settings import Settings

__all__ = ["audit_mfa"]

#: Beyond this a "recent" authentication is not recent: a borrowed or stolen session performs
#: sensitive operations for a quarter of an hour.
MAX_RECOMMENDED_STEP_UP_SECONDS = 900
MAX_RECOMMENDED_CHALLENGE_FAILURES = 10


@register
def audit_mfa(settings: Settings) -> Iterator[Finding]:
    mfa = settings.mfa
    if not mfa.required_for_admins:
        yield Finding(
            "mfa_admins_not_required",
            Severity.HIGH,
            "Administrators may work with a password alone: one phished or reused password "
            "gives full control of every account.",
            "Unset BASTION_MFA__REQUIRED_FOR_ADMINS (default true).",
        )
    if mfa.step_up_max_age_seconds > MAX_RECOMMENDED_STEP_UP_SECONDS:
        yield Finding(
            "mfa_step_up_window_long",
            Severity.MEDIUM,
            f"Sensitive operations accept an authentication up to "
            f"{mfa.step_up_max_age_seconds} s old.",
            "Keep BASTION_MFA__STEP_UP_MAX_AGE_SECONDS at 300 (at most 900).",
        )
    if mfa.challenge_max_failures > MAX_RECOMMENDED_CHALLENGE_FAILURES:
        yield Finding(
            "mfa_challenge_failures_high",
            Severity.LOW,
            f"A login challenge survives {mfa.challenge_max_failures} wrong codes.",
            "Keep BASTION_MFA__CHALLENGE_MAX_FAILURES at 5.",
        )
