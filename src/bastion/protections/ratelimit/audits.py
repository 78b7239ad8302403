"""`bastion check` findings for rate limiting, backoff and overload protection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.checks import Finding, Severity, register
from bastion.protections.ratelimit.interfaces import FailureMode

if TYPE_CHECKING:
    from bastion.config.settings import Settings

#: Policies guarding the endpoints that attackers automate (credential guessing, mail bombing).
AUTH_POLICIES = ("login", "registration", "password-reset", "email-verification", "mfa", "token")


@register
def audit_rate_limits(settings: Settings) -> Iterator[Finding]:
    """Rate limiting switched off, weakened on authentication endpoints, or not shared."""
    rl = settings.ratelimit
    if not rl.enabled:
        yield Finding(
            "ratelimit_disabled",
            Severity.HIGH,
            "Rate limiting is switched off: logins, registrations and resets can be automated.",
            "Remove BASTION_RATELIMIT__ENABLED=false.",
        )
        return
    policies = {p.name: p for p in rl.build_policies()}
    for name in AUTH_POLICIES:
        policy = policies.get(name)
        if policy is None:
            yield Finding(
                f"ratelimit_{name}_off",
                Severity.HIGH,
                f"The '{name}' rate limit is disabled: its endpoints can be attacked at full "
                "speed.",
                f"Re-enable the '{name}' policy in BASTION_RATELIMIT.",
            )
        elif policy.failure_mode is FailureMode.FAIL_OPEN and rl.storage == "redis":
            yield Finding(
                f"ratelimit_{name}_fail_open",
                Severity.MEDIUM,
                f"The '{name}' limit fails open: a Redis outage lifts the shared limit on an "
                "authentication endpoint (each worker falls back to its own budget).",
                f"Set failure_mode=fail_closed on the '{name}' policy.",
            )
    if rl.storage == "memory" and settings.is_production:
        yield Finding(
            "ratelimit_memory_store",
            Severity.MEDIUM,
            "Limits are kept in each worker's memory: N workers or machines give N budgets.",
            "Set BASTION_RATELIMIT__STORAGE=redis and BASTION_RATELIMIT__REDIS_URL.",
        )
    if not rl.emit_headers:
        yield Finding(
            "ratelimit_headers_off",
            Severity.INFO,
            "RateLimit headers are not sent: well-behaved clients cannot pace themselves.",
            "Remove BASTION_RATELIMIT__EMIT_HEADERS=false.",
        )
