"""`bastion check` findings of the authorization service's settings (``BASTION_AUTHZ__*``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.checks import Finding, Severity, register

if TYPE_CHECKING:
    from bastion.config.settings import Settings

__all__ = ["audit_authz"]

#: Beyond this, a revoked tuple may still be honoured for a noticeable time by
#: MINIMIZE_LATENCY checks in other processes.
MAX_RECOMMENDED_STALENESS_SECONDS = 5.0
#: Below this share of allowed decisions, the trail can no longer reconstruct who accessed what.
MIN_RECOMMENDED_SAMPLE_RATE = 0.1


@register
def audit_authz(settings: Settings) -> Iterator[Finding]:
    authz = settings.authz
    if authz.cache_staleness_seconds > MAX_RECOMMENDED_STALENESS_SECONDS:
        yield Finding(
            code="authz_cache_stale",
            severity=Severity.MEDIUM,
            message=(
                f"MINIMIZE_LATENCY checks may use tuples {authz.cache_staleness_seconds:g} s "
                "stale: a revoked grant stays usable that long in other workers"
            ),
            fix=f"BASTION_AUTHZ__CACHE_STALENESS_SECONDS<={MAX_RECOMMENDED_STALENESS_SECONDS:g}, "
            "or send HIGHER_CONSISTENCY for sensitive checks",
        )
    if authz.decision_sample_rate < MIN_RECOMMENDED_SAMPLE_RATE:
        yield Finding(
            code="authz_decisions_unsampled",
            severity=Severity.LOW,
            message=(
                f"only {authz.decision_sample_rate:.0%} of allowed decisions reach the audit "
                "trail (denied ones always do)"
            ),
            fix="raise BASTION_AUTHZ__DECISION_SAMPLE_RATE (1.0 records every decision)",
        )
    if authz.api_enabled and authz.query_users:
        yield Finding(
            code="authz_query_users",
            severity=Severity.INFO,
            message=(
                f"{len(authz.query_users)} non-administrator account(s) may query every "
                "authorization store"
            ),
            fix="keep BASTION_AUTHZ__QUERY_USERS to the service accounts that need decisions",
        )
