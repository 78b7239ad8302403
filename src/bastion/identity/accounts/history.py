"""Password history: refuse the last ``history_size`` passwords (an option, off by default).

NIST SP 800-63B does not ask for it; some compliance regimes (PCI DSS 8.3.7: the last four) do.
The last N passwords are the current one (``users.password_hash``) and the N-1 before it,
kept in ``password_history``. When a password is replaced (change, reset, an administrator's
forced reset), the replaced hash is remembered and older rows beyond N-1 are deleted; with the
option off (N = 0) nothing is kept and earlier rows are deleted at the next change: old hashes
are a liability if the database leaks (users reuse passwords across sites).

Checking costs one hash verification per remembered password, in the bounded hashing pool.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.accounts.models import password_history
from bastion.identity.accounts.users import User, set_password

__all__ = ["recent_hashes", "remember_replaced", "replace_password"]


async def recent_hashes(connection: AsyncConnection, user: User | None, size: int) -> list[str]:
    """The hashes of the user's last ``size`` passwords, newest (the current one) first."""
    if size <= 0 or user is None:
        return []
    hashes = [user.password_hash] if user.password_hash is not None else []
    query = (
        select(password_history.c.password_hash)
        .where(password_history.c.user_id == user.id)
        .order_by(password_history.c.id.desc())
        .limit(size)
    )
    hashes.extend((await connection.execute(query)).scalars())
    return hashes[:size]


async def remember_replaced(
    connection: AsyncConnection, user_id: str, replaced: str | None, size: int, now: datetime
) -> None:
    """Keep ``replaced`` (the hash a new password replaces) among the ``size - 1`` earlier
    passwords; forget the older ones (all of them when the option is off)."""
    keep = max(size - 1, 0)
    if replaced is not None and keep > 0:
        await connection.execute(
            insert(password_history).values(user_id=user_id, password_hash=replaced, created_at=now)
        )
    newest = (
        select(password_history.c.id)
        .where(password_history.c.user_id == user_id)
        .order_by(password_history.c.id.desc())
        .limit(keep)
    )
    kept = list((await connection.execute(newest)).scalars()) if keep > 0 else []
    stale = delete(password_history).where(password_history.c.user_id == user_id)
    if kept:
        stale = stale.where(password_history.c.id.not_in(kept))
    await connection.execute(stale)


async def replace_password(
    connection: AsyncConnection, user: User, password_hash: str | None, size: int, now: datetime
) -> None:
    """Set the password (``None``: unusable until a reset) and remember the one it replaces."""
    await set_password(connection, user.id, password_hash, now)
    await remember_replaced(connection, user.id, user.password_hash, size, now)
