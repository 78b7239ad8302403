"""Login defenses: per-account progressive backoff and per-IP throttling of password checks.

Every password check (login, password change, email change) goes through :class:`CredentialGuard`:
``check`` before verifying, ``failed`` or ``succeeded`` after.

* **Per account**, keyed by the *normalised email*, whether or not an account has it: the
  answers for an unknown address and an existing one stay identical through the lockout too
  (same failures before the first 429, same ``Retry-After``), so "is it locked?" never becomes
  "does it exist?". After ``threshold`` failures each further failure imposes a wait that doubles
  up to ``max_delay`` (15 minutes at most: the lockout is bounded, so an attacker cannot lock a
  user out for good, and a request refused during the wait does not extend it). The counter
  decays with a half-life, so old mistakes fade. A success or an admin unlock clears it; so does
  a password reset.
* **Per client IP**, with a higher threshold: one source guessing across many accounts
  (credential stuffing) is slowed down without locking any single account.

The counters live in the rate-limiting store (:class:`~bastion.protections.ratelimit.Store`):
memory for one worker, Redis shared by all workers. They fail closed: when the store cannot
answer, logins are refused (503), never let through unthrottled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.protections.ratelimit.backoff import BackoffPolicy
from bastion.protections.ratelimit.errors import TooManyAttempts
from bastion.protections.ratelimit.interfaces import BackoffStore
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.services import DEFAULT_KEY_PREFIX, FailureBackoff

__all__ = ["CredentialGuard", "client_ip_of", "email_reference"]

UNKNOWN_IP = "unknown"


def client_ip_of(scope: Mapping[str, Any]) -> str:
    """The client IP the HTTP core decided (proxy-aware), never a raw forwarding header."""
    state = scope.get("state") or {}
    ip = state.get("client_ip")
    if ip:
        return str(ip)
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_IP


def email_reference(email_normalized: str) -> str:
    """A stable, non-reversible reference to an address for audit details: investigators can
    correlate attempts on one address without the trail storing addresses of non-users."""
    return hashlib.blake2b(email_normalized.encode(), digest_size=12).hexdigest()


class CredentialGuard:
    """Backoff per account (normalised email) and per client IP around password checks."""

    def __init__(
        self,
        store: BackoffStore,
        *,
        account_policy: BackoffPolicy,
        ip_policy: BackoffPolicy,
        audit: AuditRecorder,
        clock: Clock,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        self.account = FailureBackoff(store, account_policy, key_prefix=key_prefix)
        self.ip = FailureBackoff(store, ip_policy, key_prefix=key_prefix)
        self._audit = audit
        self._clock = clock

    async def check(self, email_normalized: str, scope: Mapping[str, Any]) -> None:
        """Raises ``TooManyAttempts`` (429 with ``Retry-After``) while a wait is in force."""
        ip, account = self.ip, self.account
        store = ip.store
        try:
            if type(store) is MemoryStore and account.store is store:
                # Both waits in one synchronous call on the in-process store (no coroutine per
                # key); the same order and answer as the two checks below.
                status = store.status_now(ip.key(client_ip_of(scope)), ip.policy)
                if not status.blocked:
                    status = store.status_now(account.key(email_normalized), account.policy)
                if status.blocked:
                    raise TooManyAttempts(retry_after=status.retry_after)  # noqa: TRY301
            else:
                await ip.check(client_ip_of(scope))
                await account.check(email_normalized)
        except TooManyAttempts as exc:
            self._record(
                scope,
                EventType.IDENTITY_LOGIN_THROTTLED,
                Outcome.FAILURE,
                email_normalized,
                reason="backoff",
                details={"retry_after_seconds": exc.retry_after},
            )
            raise

    async def failed(
        self,
        email_normalized: str,
        scope: Mapping[str, Any],
        *,
        user_id: str | None,
        reason: str,
        event: EventType = EventType.IDENTITY_LOGIN_FAILED,
    ) -> None:
        """Count a failed check for the account and the client IP, and record it."""
        status = await self.account.failed(email_normalized)
        await self.ip.failed(client_ip_of(scope))
        self._record(
            scope, event, Outcome.FAILURE, email_normalized, user_id=user_id, reason=reason
        )
        if status.blocked:
            self._record(
                scope,
                EventType.IDENTITY_ACCOUNT_LOCKED,
                Outcome.SUCCESS,
                email_normalized,
                user_id=user_id,
                reason="backoff",
                details={
                    "failures": round(status.failures, 2),
                    "retry_after_seconds": round(status.retry_after, 3),
                },
            )

    async def succeeded(self, email_normalized: str) -> None:
        account = self.account
        store = account.store
        if type(store) is MemoryStore:
            store.clear_now(account.key(email_normalized))  # no coroutine: it never waits
        else:
            await account.succeeded(email_normalized)

    async def unlock(
        self,
        email_normalized: str,
        scope: Mapping[str, Any],
        *,
        user_id: str | None,
        actor: str | None,
        reason: str,
    ) -> None:
        """Clear the account's backoff (admin unlock, password reset) and record it."""
        await self.account.succeeded(email_normalized)
        self._record(
            scope,
            EventType.IDENTITY_ACCOUNT_UNLOCKED,
            Outcome.SUCCESS,
            email_normalized,
            user_id=user_id,
            actor=actor,
            reason=reason,
        )

    def _record(
        self,
        scope: Mapping[str, Any],
        type_: EventType,
        outcome: Outcome,
        email_normalized: str,
        *,
        user_id: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        subject = f"user:{user_id}" if user_id else None
        record_from_scope(
            self._audit,
            scope,
            type_,
            outcome,
            actor=actor,
            subject=subject,
            reason=reason,
            details={"email_ref": email_reference(email_normalized), **(details or {})},
            clock=self._clock,
        )
