"""How a session was authenticated, and when: the data step-up decisions read and factor
verifiers write.

A session row carries ``amr`` (methods used), ``acr`` (assurance level) and ``auth_time`` (the
last time the user proved who they are; NULL means the login, ``created_at``). A successful
re-authentication (step-up) or factor enrollment calls :func:`mark_authenticated`: it adds the
methods to ``amr``, raises ``acr`` (never lowers it) and sets ``auth_time`` to now. Access tokens
issued afterwards (refresh, or the token the step-up answer carries) carry the new ``amr`` and
``acr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.sessions.models import sessions
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod
from bastion.storage.prepared import PreparedStatement

__all__ = [
    "SessionAuth",
    "level_at_least",
    "mark_authenticated",
    "read_session_auth",
    "session_auth_of",
]

_RANK = {AssuranceLevel.AAL1: 1, AssuranceLevel.AAL2: 2, AssuranceLevel.AAL3: 3}


def level_at_least(level: AssuranceLevel | str, needed: AssuranceLevel) -> bool:
    try:
        return _RANK[AssuranceLevel(level)] >= _RANK[needed]
    except ValueError:
        return False


def _higher(a: AssuranceLevel, b: AssuranceLevel) -> AssuranceLevel:
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class SessionAuth:
    session_id: str
    user_id: str
    amr: tuple[str, ...]
    acr: AssuranceLevel
    auth_time: datetime


_s = sessions.c
_SESSION_AUTH = select(_s.amr, _s.acr, _s.auth_time, _s.created_at).where(
    _s.id == bindparam("sid"), _s.user_id == bindparam("uid"), _s.revoked_at.is_(None)
)
#: The same, run on the driver's cursor (every step-up check asks; see
#: :mod:`bastion.storage.prepared`).
_READ_SESSION_AUTH = PreparedStatement(_SESSION_AUTH)


def _state(session_id: str, user_id: str, row: Any) -> SessionAuth:
    return SessionAuth(
        session_id=session_id,
        user_id=user_id,
        amr=tuple(row.amr or ()),
        acr=AssuranceLevel(row.acr),
        auth_time=row.auth_time or row.created_at,
    )


async def read_session_auth(
    connection: AsyncConnection, session_id: str, user_id: str
) -> SessionAuth | None:
    """The live (unrevoked) session's authentication state; None if there is none."""
    row = (await connection.execute(_SESSION_AUTH, {"sid": session_id, "uid": user_id})).first()
    return _state(session_id, user_id, row) if row is not None else None


def session_auth_of(connection: Connection, session_id: str, user_id: str) -> SessionAuth | None:
    """:func:`read_session_auth` on a synchronous connection (:meth:`Database.read
    <bastion.storage.Database.read>`)."""
    rows = _READ_SESSION_AUTH.execute(connection, {"sid": session_id, "uid": user_id})
    return _state(session_id, user_id, rows[0]) if rows else None


async def mark_authenticated(
    connection: AsyncConnection,
    *,
    session_id: str,
    user_id: str,
    methods: Sequence[AuthMethod],
    level: AssuranceLevel,
    now: datetime,
) -> SessionAuth | None:
    """Record a successful (re-)authentication of the session; None if it is not live."""
    current = await read_session_auth(connection, session_id, user_id)
    if current is None:
        return None
    amr = list(current.amr)
    for method in methods:
        if AuthMethod(method).value not in amr:
            amr.append(AuthMethod(method).value)
    second = {AuthMethod.OTP.value, AuthMethod.HARDWARE_KEY.value, AuthMethod.SOFTWARE_KEY.value}
    if AuthMethod.PASSWORD.value in amr and second & set(amr) and AuthMethod.MFA.value not in amr:
        amr.append(AuthMethod.MFA.value)
    acr = _higher(current.acr, level)
    s = sessions.c
    await connection.execute(
        update(sessions)
        .where(s.id == session_id, s.user_id == user_id, s.revoked_at.is_(None))
        .values(amr=amr, acr=acr.value, auth_time=now)
    )
    return SessionAuth(session_id, user_id, tuple(amr), acr, now)
