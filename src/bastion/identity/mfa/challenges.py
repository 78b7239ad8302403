"""Login challenges: what a correct password earns an account that has a second factor.

Not an access token and useless for anything else: an opaque ``bst_mfa_`` token (256 bits,
stored as its SHA-256 digest) that only ``/v1/sessions/mfa/...`` accepts, for
``challenge_ttl_seconds`` (5 minutes), once. It is consumed by a conditional UPDATE in the same
transaction that verifies the factor, so a correct factor and a used challenge go together:
either both commit or neither does (a wrong code leaves the challenge usable, counted in
``failures``; ``challenge_max_failures`` wrong codes void it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.crypto import TokenKind, hash_token, is_well_formed, new_token
from bastion.identity.mfa.models import mfa_challenges
from bastion.storage.prepared import PreparedStatement

__all__ = ["Challenge", "PendingLogin", "consume", "count_failure", "issue", "peek"]


@dataclass(frozen=True, slots=True)
class Challenge:
    """A freshly issued challenge; ``token`` exists nowhere else."""

    token: str = ""
    expires_in: int = 0


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A live challenge: whose login it is and how its tokens will travel."""

    id: int
    user_id: str
    transport: str
    expires_at: datetime


async def issue(
    connection: AsyncConnection, user_id: str, *, transport: str, ttl: timedelta, now: datetime
) -> Challenge:
    token = new_token(TokenKind.MFA_CHALLENGE)
    await connection.execute(
        insert(mfa_challenges).values(
            token_hash=hash_token(token),
            user_id=user_id,
            transport=transport,
            created_at=now,
            expires_at=now + ttl,
            failures=0,
        )
    )
    return Challenge(token=token, expires_in=int(ttl.total_seconds()))


_c = mfa_challenges.c
#: Built once (every completion of a login asks): the live, unused challenge of a digest.
_READ_PENDING = PreparedStatement(
    select(_c.id, _c.user_id, _c.transport, _c.expires_at).where(
        _c.token_hash == bindparam("digest"), _c.used_at.is_(None), _c.expires_at > bindparam("now")
    )
)


def peek(connection: Connection, token: str, now: datetime) -> PendingLogin | None:
    """The challenge if it is well formed, unused and unexpired; it stays unused. On a
    synchronous connection: a pure read (:meth:`Database.read <bastion.storage.Database.read>`),
    never what decides a login (:func:`consume` does, in the transaction of the factor)."""
    if not is_well_formed(token, TokenKind.MFA_CHALLENGE):
        return None
    rows = _READ_PENDING.execute(connection, {"digest": hash_token(token), "now": now})
    if not rows:
        return None
    row = rows[0]
    return PendingLogin(row.id, row.user_id, row.transport, row.expires_at)


async def consume(connection: AsyncConnection, token: str, now: datetime) -> PendingLogin | None:
    """Mark the challenge used, in the caller's transaction (rolled back if the factor then
    fails). Two requests with one challenge: the second UPDATE matches no row."""
    if not is_well_formed(token, TokenKind.MFA_CHALLENGE):
        return None
    c = mfa_challenges.c
    row = (
        await connection.execute(
            update(mfa_challenges)
            .where(c.token_hash == hash_token(token), c.used_at.is_(None), c.expires_at > now)
            .values(used_at=now)
            .returning(c.id, c.user_id, c.transport, c.expires_at)
        )
    ).first()
    if row is None:
        return None
    return PendingLogin(row.id, row.user_id, row.transport, row.expires_at)


async def count_failure(
    connection: AsyncConnection, challenge_id: int, *, max_failures: int, now: datetime
) -> bool:
    """Count a wrong factor; void the challenge at ``max_failures``. True if now void."""
    c = mfa_challenges.c
    row = (
        await connection.execute(
            update(mfa_challenges)
            .where(c.id == challenge_id)
            .values(failures=c.failures + 1)
            .returning(c.failures)
        )
    ).first()
    if row is None or row.failures < max_failures:
        return False
    await connection.execute(
        update(mfa_challenges).where(c.id == challenge_id, c.used_at.is_(None)).values(used_at=now)
    )
    return True
