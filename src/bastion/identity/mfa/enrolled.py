"""What second factors an account holds, asked in one statement.

:class:`EnrollmentRead` answers, for one user, the authenticator app's state, whether the user
holds each registered factor source's factor (its ``SqlEnrollment`` condition) and how many
unused recovery codes are left: one ``SELECT`` of ``EXISTS`` and ``COUNT`` subqueries (one row,
no ``FROM``), so one round trip and one snapshot where asking each question took three or more
statements. It runs on a synchronous connection: in :meth:`bastion.storage.Database.read` for a
pure read (no transaction on PostgreSQL), or in the caller's transaction through
``AsyncConnection.run_sync`` (what that transaction then writes sees the same answer it would
have had statement by statement: each of those statements saw its own snapshot too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.mfa import factors
from bastion.identity.mfa.attempts import Method
from bastion.identity.mfa.factors import TOTP_ACTIVE, TotpState
from bastion.identity.mfa.interfaces import FactorSource
from bastion.identity.mfa.models import mfa_recovery_codes, mfa_totp
from bastion.storage.prepared import PreparedStatement

__all__ = ["EnrollmentRead", "MfaStatus", "ask_each", "holds_factor"]

_r = mfa_recovery_codes.c
#: Whether the user has an authenticator app, active or pending.
_TOTP_ROW = exists().where(mfa_totp.c.user_id == bindparam("uid"))
#: The user's unused recovery codes.
_UNUSED_CODES = (
    select(func.count())
    .select_from(mfa_recovery_codes)
    .where(_r.user_id == bindparam("uid"), _r.used_at.is_(None))
    .scalar_subquery()
)


@dataclass(frozen=True, slots=True)
class MfaStatus:
    totp: TotpState
    recovery_codes_remaining: int
    #: The methods that can complete a challenge of the user (empty: no second factor):
    #: ``otp`` for an active authenticator app, each held source's methods, then ``recovery``
    #: when the user has a factor and unused recovery codes (recovery codes alone are none).
    methods: list[str]

    @property
    def enrolled(self) -> bool:
        return bool(self.methods)


class EnrollmentRead:
    """``read(connection, user_id)``: the user's :class:`MfaStatus`, one statement.

    ``sources``: each registered factor source's methods and ``SqlEnrollment`` condition (on
    the bound parameter ``uid``), in registration order."""

    __slots__ = ("_methods", "_statement")

    def __init__(self, sources: Sequence[tuple[tuple[str, ...], ColumnElement[bool]]]) -> None:
        self._methods = tuple(methods for methods, _ in sources)
        held = [condition.label(f"source_{i}") for i, (_, condition) in enumerate(sources)]
        self._statement = PreparedStatement(
            select(
                _TOTP_ROW.label("totp_row"),
                TOTP_ACTIVE.label("totp_active"),
                _UNUSED_CODES.label("unused_codes"),
                *held,
            )
        )

    def __call__(self, connection: Connection, user_id: str) -> MfaStatus:
        row = self._statement.execute(connection, {"uid": user_id})[0]
        active = bool(row.totp_active)
        held = [names for holds, names in zip(row[3:], self._methods, strict=True) if holds]
        remaining = int(row.unused_codes)
        methods = _methods(active, held, remaining)
        pending = TotpState.PENDING if row.totp_row else TotpState.NONE
        totp = TotpState.ACTIVE if active else pending
        return MfaStatus(totp=totp, recovery_codes_remaining=remaining, methods=methods)


def _methods(active: bool, held: Sequence[tuple[str, ...]], unused_codes: int) -> list[str]:
    """:attr:`MfaStatus.methods` of an active authenticator app (or none), the methods of each
    factor source the user holds a factor of, and the unused recovery codes."""
    methods = [Method.OTP.value] if active else []
    for names in held:
        methods += [name for name in names if name not in methods]
    if methods and unused_codes:
        methods.append(Method.RECOVERY.value)
    return methods


async def ask_each(
    sources: Sequence[FactorSource], connection: AsyncConnection, user_id: str
) -> MfaStatus:
    """:class:`MfaStatus` asked question by question, each source through its ``is_enrolled``
    (when a registered source is not a ``SqlEnrollment``)."""
    totp = await factors.totp_state(connection, user_id)
    held = [s.methods for s in sources if await s.is_enrolled(connection, user_id)]
    unused = await factors.remaining_recovery_codes(connection, user_id)
    methods = _methods(totp is TotpState.ACTIVE, held, unused)
    return MfaStatus(totp=totp, recovery_codes_remaining=unused, methods=methods)


def holds_factor(
    sources: tuple[Callable[[Connection, str], bool], ...], connection: Connection, user_id: str
) -> bool:
    """:attr:`MfaStatus.methods` is not empty: an active authenticator app, or a factor of a
    registered source (recovery codes alone are no factor), each source asked through its
    ``SyncEnrollment`` check (a password login asks it inside its session's transaction)."""
    return factors.totp_active(connection, user_id) or any(
        holds(connection, user_id) for holds in sources
    )
