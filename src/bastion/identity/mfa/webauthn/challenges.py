"""Server-stored ceremony challenges: random, short-lived, single use, bound to their purpose.

A ceremony (registration, login, second factor) starts with :meth:`ChallengeStore.issue`: a
fresh 32-byte challenge is stored with an expiry, and the client gets an opaque *handle*
(``bst_wac_...``, 256 bits) to name it when it finishes. Only the handle's SHA-256 digest is
stored. :meth:`ChallengeStore.consume` takes the challenge back exactly once: the ``UPDATE``
that marks it consumed is also the check that it was unused and unexpired, so two concurrent
finishes (two workers, a replayed response) cannot both succeed (WebAuthn §13.4.3: challenges
must be single use to defeat replay).

A challenge is bound to its purpose and to a user (registration, second factor) or to nobody
(a passwordless login: the anonymous handle is the binding). A ceremony of another purpose or
user is refused, and it is consumed all the same: a handle is worth one try.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.clock import Clock
from bastion.crypto import TokenKind, constant_time_equals, hash_token, is_well_formed, new_token
from bastion.identity.mfa.webauthn.errors import CeremonyInvalid, FailureReason
from bastion.identity.mfa.webauthn.models import webauthn_challenges
from bastion.storage import Database

__all__ = ["CHALLENGE_BYTES", "ChallengeStore", "IssuedChallenge", "Purpose"]

#: WebAuthn §13.4.3: at least 16 random bytes; 32 as for every other Bastion secret.
CHALLENGE_BYTES = 32
#: Expired challenges are purged this long after expiry, by later issues (bounded rows), at most
#: this many per issue (each begin stays cheap after a quiet spell).
PURGE_AFTER = timedelta(minutes=10)
PURGE_BATCH = 100


class Purpose(enum.StrEnum):
    REGISTER = "register"
    LOGIN = "login"  # passwordless, first factor
    SECOND_FACTOR = "second_factor"


@dataclass(frozen=True, slots=True)
class IssuedChallenge:
    handle: str
    challenge: bytes


class ChallengeStore:
    """Issues and consumes ceremony challenges in the database (shared by every worker)."""

    def __init__(self, database: Database, *, clock: Clock, ttl: timedelta) -> None:
        self.database = database
        self._clock = clock
        self.ttl = ttl

    async def issue(
        self, purpose: Purpose, *, user_id: str | None, binding: str | None = None
    ) -> IssuedChallenge:
        """Store a fresh challenge; ``binding`` is the digest of another secret the finish must
        present too (e.g. the second-factor login challenge)."""
        now = self._clock.now()
        handle = new_token(TokenKind.WEBAUTHN_CEREMONY)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        async with self.database.engine.begin() as connection:
            c = webauthn_challenges.c
            stale = select(c.handle_hash).where(c.expires_at < now - PURGE_AFTER).limit(PURGE_BATCH)
            await connection.execute(delete(webauthn_challenges).where(c.handle_hash.in_(stale)))
            await connection.execute(
                insert(webauthn_challenges).values(
                    handle_hash=hash_token(handle),
                    purpose=purpose.value,
                    user_id=user_id,
                    binding=binding,
                    challenge=challenge.hex(),
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        return IssuedChallenge(handle, challenge)

    async def consume(
        self,
        handle: str,
        purpose: Purpose,
        *,
        user_id: str | None,
        binding: str | None = None,
        connection: AsyncConnection | None = None,
    ) -> bytes:
        """The challenge of ``handle``, consumed. Raises :class:`CeremonyInvalid` when the handle
        is malformed, unknown, expired or used, or was issued for another purpose, user or
        binding. With ``connection``, in the caller's transaction (consumed only if it commits);
        else in a transaction of its own, committed at once."""
        if not is_well_formed(handle, TokenKind.WEBAUTHN_CEREMONY):
            raise CeremonyInvalid(FailureReason.CEREMONY_UNKNOWN)
        if connection is None:
            async with self.database.engine.begin() as own:
                return await self.consume(
                    handle, purpose, user_id=user_id, binding=binding, connection=own
                )
        now = self._clock.now()
        c = webauthn_challenges.c
        row = (
            await connection.execute(
                update(webauthn_challenges)
                .where(
                    c.handle_hash == hash_token(handle),
                    c.consumed_at.is_(None),
                    c.expires_at > now,
                )
                .values(consumed_at=now)
                .returning(c.purpose, c.user_id, c.binding, c.challenge)
            )
        ).first()
        if row is None:
            raise CeremonyInvalid(FailureReason.CEREMONY_UNKNOWN)
        if (
            row.purpose != purpose.value
            or row.user_id != user_id
            or not _same_binding(row.binding, binding)
        ):
            raise CeremonyInvalid(FailureReason.CEREMONY_MISMATCH)
        return bytes.fromhex(row.challenge)


def _same_binding(stored: str | None, given: str | None) -> bool:
    if stored is None or given is None:
        return stored is None and given is None
    return constant_time_equals(stored, given)
