"""A :class:`~bastion.identity.tokens.interfaces.KeyStore` in the database, shared by every
worker and machine.

Private keys are stored sealed (:func:`~bastion.identity.tokens.keys.seal`). Each process keeps
the unsealed keys in memory and reloads the table at most every ``refresh_seconds`` (so a
rotation made by ``bastion keys rotate`` or another worker is picked up within that time), and
on a token naming a kid it does not know, at most once per ``refetch_seconds``: a flood of
tokens with invented kids costs one query per interval, not one per token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bastion.clock import Clock
from bastion.crypto import EnvelopeCipher
from bastion.crypto.errors import DecryptionFailed
from bastion.identity.tokens.errors import SigningKeyError
from bastion.identity.tokens.keys import (
    SealedSigningKey,
    SigningAlgorithm,
    SigningKey,
    seal,
    unseal,
)
from bastion.identity.tokens.models import signing_keys
from bastion.logging import get_logger
from bastion.storage import Database

__all__ = ["DatabaseKeyStore"]

logger = get_logger("bastion.identity.tokens")

#: Reload interval: shorter than the default leeway, so a worker never signs with a key that
#: other workers consider retired for longer than tokens tolerate.
DEFAULT_REFRESH_SECONDS = 10.0
#: Unknown-kid reloads at most this often.
DEFAULT_REFETCH_SECONDS = 1.0


class DatabaseKeyStore:
    """Signing keys in the ``signing_keys`` table, cached per process."""

    def __init__(
        self,
        database: Database,
        cipher: EnvelopeCipher,
        clock: Clock,
        *,
        grace: timedelta,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        refetch_seconds: float = DEFAULT_REFETCH_SECONDS,
    ) -> None:
        self._database = database
        self._cipher = cipher
        self._clock = clock
        self._grace = grace
        self._refresh = timedelta(seconds=refresh_seconds)
        self._refetch = timedelta(seconds=refetch_seconds)
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()
        #: The last active key, with the keys it was chosen among and the span it holds for.
        self._active: tuple[dict[str, SigningKey], datetime, datetime, SigningKey] | None = None

    def _verifiable(self, key: SigningKey, now: datetime) -> bool:
        return now <= key.not_after + self._grace

    async def _reload(self, *, if_older_than: timedelta) -> None:
        async with self._lock:
            now = self._clock.now()
            if self._loaded_at is not None and now - self._loaded_at < if_older_than:
                return  # another coroutine reloaded while this one waited
            c = signing_keys.c
            query = select(signing_keys).where(c.not_after >= now - self._grace)
            async with self._database.engine.connect() as connection:
                rows = (await connection.execute(query)).all()
            keys: dict[str, SigningKey] = {}
            for row in rows:
                cached = self._keys.get(row.kid)
                if cached is not None:
                    # Key material never changes for a kid; only its window can (retirement).
                    keys[row.kid] = SigningKey(
                        cached.kid, cached.algorithm, row.created_at, row.not_after, cached.key
                    )
                    continue
                key = self._unseal(row)
                if key is not None:
                    keys[row.kid] = key
            self._keys = keys
            self._loaded_at = now

    def _unseal(self, row: Any) -> SigningKey | None:
        try:
            return unseal(
                SealedSigningKey(
                    row.kid,
                    SigningAlgorithm(row.algorithm),
                    row.created_at,
                    row.not_after,
                    row.sealed_private_key,
                ),
                self._cipher,
            )
        except (DecryptionFailed, SigningKeyError, ValueError) as exc:
            # Sealed under another secret key (BASTION_SECRET_KEY changed) or tampered with:
            # that key is unusable here. Skip it rather than fail every token; with no usable
            # key left, a new one is generated.
            logger.error(  # noqa: TRY400 - no traceback: the envelope must not reach a log
                "signing key cannot be unsealed",
                kid=row.kid,
                error=getattr(exc, "reason", None) or type(exc).__name__,
            )
            return None

    async def _fresh(self) -> None:
        now = self._clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self._refresh:
            await self._reload(if_older_than=self._refresh)

    async def active_key(self) -> SigningKey:
        await self._fresh()
        now = self._clock.now()
        keys = self._keys
        memo = self._active
        if memo is not None and memo[0] is keys and memo[1] <= now < memo[2]:
            return memo[3]
        signing = [key for key in keys.values() if key.signs_at(now)]
        if not signing:
            raise SigningKeyError("No active signing key.")
        active = max(signing, key=lambda key: key.created_at)
        # Which keys sign changes only at a key's created_at or not_after: until the next such
        # instant (and from the last one), with the same keys loaded, the answer is the same.
        edges = [edge for key in keys.values() for edge in (key.created_at, key.not_after)]
        since = max(edge for edge in edges if edge <= now)  # active.created_at is one
        until = min(edge for edge in edges if edge > now)  # active.not_after is one
        self._active = (keys, since, until, active)
        return active

    async def verification_keys(self) -> Sequence[SigningKey]:
        await self._fresh()
        now = self._clock.now()
        return sorted(
            (key for key in self._keys.values() if self._verifiable(key, now)),
            key=lambda key: key.created_at,
            reverse=True,
        )

    async def get(self, kid: str) -> SigningKey | None:
        await self._fresh()
        key = self._keys.get(kid)
        if key is None:
            await self._reload(if_older_than=self._refetch)
            key = self._keys.get(kid)
        if key is None or not self._verifiable(key, self._clock.now()):
            return None
        return key

    async def add(self, key: SigningKey) -> None:
        sealed = seal(key, self._cipher)
        async with self._database.engine.begin() as connection:
            existing = (
                await connection.execute(
                    select(signing_keys.c.kid).where(signing_keys.c.kid == key.kid)
                )
            ).first()
            if existing is None:
                await connection.execute(insert(signing_keys).values(**_row(sealed)))
        self._loaded_at = None

    async def rotate(self, new_key: SigningKey) -> None:
        now = self._clock.now()
        if not new_key.signs_at(now):
            raise SigningKeyError("The new signing key cannot sign now.")
        sealed = seal(new_key, self._cipher)
        c = signing_keys.c
        async with self._database.engine.begin() as connection:
            # Retire, don't delete: the old key keeps verifying the tokens it signed.
            await connection.execute(
                update(signing_keys)
                .where(c.not_after > now, c.kid != new_key.kid)
                .values(not_after=now, retired_at=now)
            )
            await connection.execute(insert(signing_keys).values(**_row(sealed)))
        self._loaded_at = None


def _row(sealed: SealedSigningKey) -> dict[str, object]:
    return {
        "kid": sealed.kid,
        "algorithm": sealed.algorithm.value,
        "created_at": sealed.created_at,
        "not_after": sealed.not_after,
        "sealed_private_key": sealed.sealed_private_key,
    }
