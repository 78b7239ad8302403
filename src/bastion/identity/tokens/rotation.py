"""Signing-key lifecycle: a key at first start, a new one when the active key's lifetime ends,
and rotation on demand (``bastion keys rotate``), each recorded in the audit trail.

A rotation retires the active key (it stops signing) but keeps it verifiable, and published in
the JWK Set, until every token it signed has expired (``ttl + leeway``); then it drops out.
"""

from __future__ import annotations

import asyncio

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.identity.tokens.errors import SigningKeyError
from bastion.identity.tokens.keys import SigningKey
from bastion.identity.tokens.services import AccessTokenService

__all__ = ["SigningKeyManager"]


class SigningKeyManager:
    """Makes sure a key signs now; rotates keys."""

    def __init__(
        self, tokens: AccessTokenService, *, audit: AuditRecorder | None, clock: Clock
    ) -> None:
        self.tokens = tokens
        self._audit = audit
        self._clock = clock
        self._lock = asyncio.Lock()

    async def ensure(self) -> SigningKey:
        """The active key; a new one is generated when none signs now (first start, or the
        active key reached ``not_after``). Cheap when a key is active (the store caches)."""
        try:
            key = await self.tokens.keys.active_key()
            if key.algorithm is self.tokens.settings.algorithm:
                return key
        except SigningKeyError:
            pass
        async with self._lock:
            try:
                key = await self.tokens.keys.active_key()
                if key.algorithm is self.tokens.settings.algorithm:
                    return key
            except SigningKeyError:
                pass
            key = await self._new_key()
            self._record(EventType.TOKEN_SIGNING_KEY_CREATED, key, reason="no_active_key")
            return key

    async def rotate(self) -> SigningKey:
        """A new active key now; the previous one only verifies from now on."""
        async with self._lock:
            key = await self._new_key()
        self._record(EventType.TOKEN_SIGNING_KEY_ROTATED, key, reason="rotation")
        return key

    async def _new_key(self) -> SigningKey:
        settings = self.tokens.settings
        key = SigningKey.generate(
            settings.algorithm, clock=self._clock, lifetime=settings.key_lifetime
        )
        await self.tokens.keys.rotate(key)
        return key

    def _record(self, type_: EventType, key: SigningKey, *, reason: str) -> None:
        if self._audit is None:
            return
        self._audit.record(
            AuditEvent(
                type=type_,
                outcome=Outcome.SUCCESS,
                time=self._clock.now(),
                subject=f"signing_key:{key.kid}",
                reason=reason,
                details={"algorithm": key.algorithm.value, "not_after": key.not_after.isoformat()},
            )
        )
