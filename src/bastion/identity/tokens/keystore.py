"""An in-memory :class:`~bastion.identity.tokens.interfaces.KeyStore` (tests, single process)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bastion.clock import Clock
from bastion.identity.tokens.errors import SigningKeyError
from bastion.identity.tokens.keys import SigningKey
from bastion.identity.tokens.settings import AccessTokenSettings

__all__ = ["InMemoryKeyStore"]


class InMemoryKeyStore:
    def __init__(self, clock: Clock, *, grace: timedelta) -> None:
        self._clock = clock
        self._grace = grace
        self._keys: dict[str, SigningKey] = {}

    @classmethod
    def from_settings(cls, settings: AccessTokenSettings, clock: Clock) -> InMemoryKeyStore:
        return cls(clock, grace=settings.verification_grace)

    async def active_key(self) -> SigningKey:
        now = self._clock.now()
        signing = [key for key in self._keys.values() if key.signs_at(now)]
        if not signing:
            raise SigningKeyError("No active signing key.")
        return max(signing, key=lambda key: key.created_at)

    async def verification_keys(self) -> Sequence[SigningKey]:
        now = self._clock.now()
        # Drop keys past their grace: their tokens have all expired.
        self._keys = {
            kid: key for kid, key in self._keys.items() if now <= key.not_after + self._grace
        }
        return list(self._keys.values())

    async def get(self, kid: str) -> SigningKey | None:
        key = self._keys.get(kid)
        if key is None or self._clock.now() > key.not_after + self._grace:
            return None
        return key

    async def add(self, key: SigningKey) -> None:
        existing = self._keys.get(key.kid)
        if existing is not None and existing != key:
            raise SigningKeyError("A different key with this kid is already stored.")
        self._keys[key.kid] = key

    async def rotate(self, new_key: SigningKey) -> None:
        now = self._clock.now()
        if not new_key.signs_at(now):
            raise SigningKeyError("The new signing key cannot sign now.")
        for kid, key in list(self._keys.items()):
            if key.signs_at(now) and kid != new_key.kid:
                self._keys[kid] = key.retired(now)
        await self.add(new_key)
