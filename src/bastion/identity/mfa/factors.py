"""Storage of the factors this package owns (TOTP, recovery codes), on the caller's connection.

Each check that *accepts* a secret is a conditional UPDATE whose row count is the verdict, so it
holds across workers and database backends: two requests racing with the same TOTP code or the
same recovery code cannot both succeed (the second UPDATE matches no row). Verdicts are
:class:`Verdict` values with a reason for the audit trail; callers answer one opaque error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.crypto import EnvelopeCipher, bind
from bastion.crypto.errors import DecryptionFailed
from bastion.identity.mfa import recovery, totp
from bastion.identity.mfa.models import mfa_recovery_codes, mfa_totp
from bastion.storage.prepared import PreparedStatement

__all__ = [
    "TOTP_ACTIVE",
    "Reason",
    "TotpState",
    "Verdict",
    "activate_totp",
    "delete_recovery_codes",
    "delete_totp",
    "put_pending_totp",
    "read_totp_state",
    "remaining_recovery_codes",
    "replace_recovery_codes",
    "seal_secret",
    "totp_active",
    "totp_state",
    "use_recovery_code",
    "verify_totp",
]


class Reason(enum.StrEnum):
    """Why a code was refused (audit trail only)."""

    WRONG_CODE = "wrong_code"
    REPLAYED = "replayed"
    NOT_ENROLLED = "not_enrolled"
    MALFORMED = "malformed"
    SPENT = "spent_or_unknown"
    UNREADABLE_SECRET = "unreadable_secret"  # noqa: S105 - a reason, not a secret


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: Reason | None = None


ACCEPTED = Verdict(ok=True)


class TotpState(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    ACTIVE = "active"


def _binding(user_id: str) -> bytes:
    # Bound to its row: a sealed secret copied to another user's row does not decrypt.
    return bind("mfa_totp", "secret", user_id)


def seal_secret(cipher: EnvelopeCipher, user_id: str, secret: str) -> str:
    return cipher.encrypt(secret.encode("ascii"), associated_data=_binding(user_id))


#: Built once (every password login asks): the statement of :func:`totp_state`.
_TOTP_ACTIVATED = select(mfa_totp.c.activated_at).where(mfa_totp.c.user_id == bindparam("uid"))
#: The same, run on the driver's cursor (see :mod:`bastion.storage.prepared`).
_READ_TOTP_ACTIVATED = PreparedStatement(_TOTP_ACTIVATED)
#: :func:`totp_active` as a SQL condition on the user of ``uid`` (a password login folds it
#: into the statement that starts its session).
TOTP_ACTIVE = exists().where(
    mfa_totp.c.user_id == bindparam("uid"), mfa_totp.c.activated_at.is_not(None)
)


async def totp_state(connection: AsyncConnection, user_id: str) -> TotpState:
    row = (await connection.execute(_TOTP_ACTIVATED, {"uid": user_id})).first()
    if row is None:
        return TotpState.NONE
    return TotpState.ACTIVE if row.activated_at is not None else TotpState.PENDING


def read_totp_state(connection: Connection, user_id: str) -> TotpState:
    """:func:`totp_state` on a synchronous connection (:meth:`Database.read
    <bastion.storage.Database.read>`, or a transaction's)."""
    rows = _READ_TOTP_ACTIVATED.execute(connection, {"uid": user_id})
    if not rows:
        return TotpState.NONE
    return TotpState.ACTIVE if rows[0].activated_at is not None else TotpState.PENDING


def totp_active(connection: Connection, user_id: str) -> bool:
    """Whether :func:`totp_state` is ``ACTIVE``, on a synchronous connection (a password
    login asks it inside its session's transaction)."""
    rows = _READ_TOTP_ACTIVATED.execute(connection, {"uid": user_id})
    return bool(rows) and rows[0].activated_at is not None


async def put_pending_totp(
    connection: AsyncConnection, user_id: str, sealed: str, now: datetime
) -> None:
    """Replace a pending enrollment (never an active one) with a new secret."""
    c = mfa_totp.c
    await connection.execute(delete(mfa_totp).where(c.user_id == user_id, c.activated_at.is_(None)))
    await connection.execute(
        insert(mfa_totp).values(user_id=user_id, secret_sealed=sealed, created_at=now)
    )


async def verify_totp(
    connection: AsyncConnection,
    cipher: EnvelopeCipher,
    user_id: str,
    code: str,
    now: datetime,
    *,
    pending: bool = False,
) -> Verdict:
    """Accept ``code`` for the user's active (or, with ``pending``, pending) authenticator.

    Replay protection: the matching time step must be newer than ``last_step``, and the UPDATE
    that records it is conditional on exactly that, so a code accepted once (here or on another
    worker, even concurrently) is never accepted again, nor is any older code.
    """
    c = mfa_totp.c
    active = c.activated_at.is_(None) if pending else c.activated_at.is_not(None)
    query = select(c.secret_sealed).where(c.user_id == user_id, active)
    row = (await connection.execute(query)).first()
    if row is None:
        return Verdict(ok=False, reason=Reason.NOT_ENROLLED)
    try:
        secret = cipher.decrypt(row.secret_sealed, associated_data=_binding(user_id)).decode()
    except DecryptionFailed:
        return Verdict(ok=False, reason=Reason.UNREADABLE_SECRET)
    step = totp.matching_step(secret, code, now)
    if step is None:
        return Verdict(ok=False, reason=Reason.WRONG_CODE)
    values: dict[str, object] = {"last_step": step}
    if pending:
        values["activated_at"] = now
    accepted = await connection.execute(
        update(mfa_totp)
        .where(c.user_id == user_id, active, or_(c.last_step.is_(None), c.last_step < step))
        .values(**values)
    )
    if accepted.rowcount != 1:
        return Verdict(ok=False, reason=Reason.REPLAYED)
    return ACCEPTED


async def activate_totp(
    connection: AsyncConnection, cipher: EnvelopeCipher, user_id: str, code: str, now: datetime
) -> Verdict:
    """The first correct code of a pending enrollment activates it (and counts as used)."""
    return await verify_totp(connection, cipher, user_id, code, now, pending=True)


async def delete_totp(connection: AsyncConnection, user_id: str) -> bool:
    """Remove the user's authenticator (active or pending); True if an active one existed."""
    state = await totp_state(connection, user_id)
    await connection.execute(delete(mfa_totp).where(mfa_totp.c.user_id == user_id))
    return state is TotpState.ACTIVE


async def replace_recovery_codes(
    connection: AsyncConnection, user_id: str, now: datetime
) -> list[str]:
    """Void every code of the user and store a fresh set; returns the codes (show them once)."""
    await delete_recovery_codes(connection, user_id)
    codes = recovery.new_codes()
    await connection.execute(
        insert(mfa_recovery_codes),
        [
            {
                "user_id": user_id,
                "code_hash": recovery.hash_code(recovery.normalize_code(code) or ""),
                "created_at": now,
            }
            for code in codes
        ],
    )
    return codes


async def delete_recovery_codes(connection: AsyncConnection, user_id: str) -> None:
    await connection.execute(
        delete(mfa_recovery_codes).where(mfa_recovery_codes.c.user_id == user_id)
    )


async def remaining_recovery_codes(connection: AsyncConnection, user_id: str) -> int:
    c = mfa_recovery_codes.c
    query = select(func.count()).where(c.user_id == user_id, c.used_at.is_(None))
    return int((await connection.execute(query)).scalar_one())


async def use_recovery_code(
    connection: AsyncConnection, user_id: str, code: str, now: datetime
) -> Verdict:
    """Spend one of the user's unused codes; the conditional UPDATE is the single-use check."""
    normalized = recovery.normalize_code(code)
    if normalized is None:
        return Verdict(ok=False, reason=Reason.MALFORMED)
    c = mfa_recovery_codes.c
    spent = await connection.execute(
        update(mfa_recovery_codes)
        .where(
            c.user_id == user_id,
            c.code_hash == recovery.hash_code(normalized),
            c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return ACCEPTED if spent.rowcount == 1 else Verdict(ok=False, reason=Reason.SPENT)
