"""Second-factor attempts: the methods, the failure backoff around every check, and the audit
trail of what happened.

Every code check first passes the failure backoff (the mechanism of password logins,
:class:`~bastion.protections.ratelimit.services.FailureBackoff`, in the same store, so it holds
across workers): per user with ``TOTP_BACKOFF`` for TOTP codes and passkeys,
``RECOVERY_CODE_BACKOFF`` for recovery codes, and per client IP with the login IP policy. A
wrong code counts a failure; a correct one clears the user's counter.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.identity.accounts.guard import CredentialGuard, client_ip_of
from bastion.identity.mfa.errors import MfaError
from bastion.identity.mfa.factors import Verdict
from bastion.identity.tokens.claims import AuthMethod
from bastion.protections.ratelimit.backoff import RECOVERY_CODE_BACKOFF, TOTP_BACKOFF
from bastion.protections.ratelimit.errors import TooManyAttempts
from bastion.protections.ratelimit.interfaces import BackoffStore
from bastion.protections.ratelimit.services import FailureBackoff

__all__ = ["AMR_OF", "CODE_METHODS", "Attempts", "Method", "Refused", "require", "user_agent"]

Scope = Mapping[str, Any]


class Method(enum.StrEnum):
    """How a second factor is proven (the ``method`` of the HTTP API)."""

    OTP = "otp"
    RECOVERY = "recovery"
    HWK = "hwk"
    SWK = "swk"


#: The ``amr`` each method adds. A recovery code is a one-time look-up secret (NIST SP
#: 800-63B §5.1.2): RFC 8176 has no name for it, so it reports as ``otp``.
AMR_OF = {
    Method.OTP: AuthMethod.OTP,
    Method.RECOVERY: AuthMethod.OTP,
    Method.HWK: AuthMethod.HARDWARE_KEY,
    Method.SWK: AuthMethod.SOFTWARE_KEY,
}
CODE_METHODS = frozenset({Method.OTP, Method.RECOVERY})


class Refused(Exception):
    """Rolls back the transaction of a refused factor; carries the verdict (and the factor's
    own error, for factors verified by another module)."""

    def __init__(self, verdict: Verdict, error: MfaError | None = None) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.error = error


def require(verdict: Verdict) -> None:
    """Raises :class:`Refused` unless the verdict accepts."""
    if not verdict.ok:
        raise Refused(verdict)


def user_agent(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == b"user-agent":
            return bytes(value).decode("latin-1")
    return None


class Attempts:
    """Backoff and audit around second-factor checks."""

    def __init__(
        self,
        backoff_store: BackoffStore,
        *,
        guard: CredentialGuard,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self.guard = guard
        self._audit = audit
        self._clock = clock
        self._totp = FailureBackoff(backoff_store, TOTP_BACKOFF)
        self._recovery = FailureBackoff(backoff_store, RECOVERY_CODE_BACKOFF)

    def _backoff(self, method: Method) -> FailureBackoff:
        return self._recovery if method is Method.RECOVERY else self._totp

    async def check(self, user_id: str, method: Method, scope: Scope) -> None:
        """Raises ``TooManyAttempts`` (429, ``Retry-After``) while a wait is in force."""
        try:
            await self.guard.ip.check(client_ip_of(scope))
            await self._backoff(method).check(user_id)
        except TooManyAttempts as exc:
            self.record(
                scope,
                EventType.IDENTITY_MFA_THROTTLED,
                user_id,
                outcome=Outcome.FAILURE,
                reason="backoff",
                details={"method": method.value, "retry_after_seconds": exc.retry_after},
            )
            raise

    async def failed(
        self, user_id: str, method: Method, refused: Refused, scope: Scope, *, purpose: str
    ) -> None:
        """Count the failure (user and address) and record why it failed."""
        await self._backoff(method).failed(user_id)
        await self.guard.ip.failed(client_ip_of(scope))
        reason = refused.verdict.reason
        code = refused.error.code if refused.error is not None else None
        self.record(
            scope,
            EventType.IDENTITY_MFA_FAILED,
            user_id,
            outcome=Outcome.FAILURE,
            reason=reason.value if reason is not None else code,
            details={"method": method.value, "purpose": purpose},
        )

    async def succeeded(self, user_id: str, method: Method) -> None:
        await self._backoff(method).succeeded(user_id)

    def record(
        self,
        scope: Scope,
        type_: EventType,
        user_id: str | None,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        subject = f"user:{user_id}" if user_id else None
        record_from_scope(
            self._audit,
            scope,
            type_,
            outcome,
            actor=actor or subject,
            subject=subject,
            reason=reason,
            details=details,
            clock=self._clock,
        )
