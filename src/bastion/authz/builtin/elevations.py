"""Just-in-time privilege: a user asks for a role for a while, another administrator decides.

Lifecycle of a request (``authz_elevations.status``)::

    pending --approve--> approved --(time passes)--> expired
       |                    └--revoke--> revoked
       ├--deny--> denied
       └--(request TTL passes)--> expired

Approval writes the grant as a conditional tuple of the system store (``non_expired_grant``
with ``grant_time`` = the approval time and ``grant_duration``); the engine compares it to
the check's ``current_time``, so the grant ends by itself, with no job, and no cache can
extend it. The *record* of the end (``authz:elevation:expired``) is written lazily, when the
end is first observed: by a check of the grantee meeting the ended grant, by any call of this
service (request, decision, listing), or by :meth:`ElevationService.sweep`. The sweep also
deletes the ended tuple (hygiene only: the engine already refuses it).

Self-approval is refused (``elevation_self_approval``) and recorded as a failed
``authz:elevation:denied`` event; the request stays pending for another administrator.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import RowMapping

from bastion.audit.events import EventType, Outcome
from bastion.authz.builtin.errors import (
    DurationTooLong,
    ElevationNotFound,
    ElevationNotPending,
    RoleAlreadyHeld,
    SelfApproval,
    TooManyPending,
)
from bastion.authz.builtin.model import SYSTEM_OBJECT, SYSTEM_STORE_ID, Role
from bastion.authz.builtin.models import authz_elevations
from bastion.authz.builtin.system import SystemAuthz, grant_expiry, user_of
from bastion.authz.service import Consistency, RequestInfo
from bastion.authz.settings import AuthzSettings
from bastion.authz.store import OnMissing
from bastion.authz.tuples import Tuple
from bastion.clock import Clock

__all__ = ["MAX_PENDING_PER_USER", "Elevation", "ElevationService", "Status"]

#: Pending requests one user may have at once (a flood of requests would bury real ones).
MAX_PENDING_PER_USER = 5
#: Two ends closer than this belong to the same grant (database time precision).
SAME_GRANT = timedelta(seconds=1)
#: Listing page size.
LIST_LIMIT = 100

Scope = Mapping[str, Any]


class Status:
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Elevation:
    id: str
    user_id: str
    role: str
    reason: str
    duration_seconds: int
    status: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    expires_at: datetime | None
    revoked_by: str | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: RowMapping) -> Elevation:
        return cls(**{name: row[name] for name in cls.__slots__})


class ElevationService:
    """Requests, decisions and ends of time-limited roles (see the module docstring)."""

    def __init__(self, system: SystemAuthz, settings: AuthzSettings, *, clock: Clock) -> None:
        self.system = system
        self.database = system.database
        self.max_duration = timedelta(seconds=settings.elevation_max_seconds)
        self.request_ttl = timedelta(seconds=settings.elevation_request_ttl_seconds)
        self._clock = clock
        system.on_expired_grant = self._observed_expiry

    # ------------------------------------------------------------------ requests
    async def request(
        self, user_id: str, role: Role, duration: timedelta, reason: str, *, scope: Scope
    ) -> Elevation:
        """Ask for ``role`` for ``duration``. Raises DurationTooLong, RoleAlreadyHeld or
        TooManyPending."""
        if duration > self.max_duration:
            raise DurationTooLong
        await self.sweep()
        held = await self.system.roles(user_id)
        if role.value in held and held[role.value] is None:
            raise RoleAlreadyHeld
        now = self._clock.now()
        c = authz_elevations.c
        async with self.database.engine.begin() as connection:
            pending = (
                await connection.execute(
                    select(func.count())
                    .select_from(authz_elevations)
                    .where(and_(c.user_id == user_id, c.status == Status.PENDING))
                )
            ).scalar_one()
            if pending >= MAX_PENDING_PER_USER:
                raise TooManyPending
            row = {
                "id": secrets.token_hex(16),
                "user_id": user_id,
                "role": role.value,
                "reason": reason,
                "duration_seconds": int(duration.total_seconds()),
                "status": Status.PENDING,
                "requested_at": now,
                "expiry_recorded": False,
            }
            await connection.execute(authz_elevations.insert().values(**row))
        elevation = await self.get(str(row["id"]))
        self._record(scope, EventType.AUTHZ_ELEVATION_REQUESTED, user_id, elevation)
        return elevation

    async def get(self, elevation_id: str) -> Elevation:
        query = select(authz_elevations).where(authz_elevations.c.id == elevation_id)
        async with self.database.engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        if row is None:
            raise ElevationNotFound
        return Elevation.of(row)

    async def list(self, *, user_id: str | None, status: str | None) -> list[Elevation]:
        """Newest first; ``user_id`` None for everyone's."""
        await self.sweep()
        c = authz_elevations.c
        query = select(authz_elevations).order_by(c.requested_at.desc(), c.id).limit(LIST_LIMIT)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if status is not None:
            query = query.where(c.status == status)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [Elevation.of(r) for r in rows]

    # ------------------------------------------------------------------ decisions
    async def approve(self, elevation_id: str, approver_id: str, *, scope: Scope) -> Elevation:
        """Grant the role from now for the requested duration. The caller has checked that
        ``approver_id`` may approve. Raises ElevationNotFound, SelfApproval,
        ElevationNotPending or RoleAlreadyHeld."""
        elevation = await self._pending(elevation_id, approver_id, scope)
        held = await self.system.roles(elevation.user_id)
        if held.get(elevation.role, "") is None:
            raise RoleAlreadyHeld
        now = self._clock.now()
        duration = timedelta(seconds=elevation.duration_seconds)
        await self._decide(elevation_id, Status.APPROVED, approver_id, now, expires=now + duration)
        await self.system.grant_role(
            elevation.user_id,
            Role(elevation.role),
            actor=user_of(approver_id),
            scope=scope,
            until=(now, duration),
        )
        approved = await self.get(elevation_id)
        self._record(scope, EventType.AUTHZ_ELEVATION_APPROVED, approver_id, approved)
        return approved

    async def deny(self, elevation_id: str, approver_id: str, *, scope: Scope) -> Elevation:
        await self._pending(elevation_id, approver_id, scope)
        await self._decide(elevation_id, Status.DENIED, approver_id, self._clock.now())
        denied = await self.get(elevation_id)
        self._record(scope, EventType.AUTHZ_ELEVATION_DENIED, approver_id, denied)
        return denied

    async def _pending(self, elevation_id: str, approver_id: str, scope: Scope) -> Elevation:
        await self.sweep()
        elevation = await self.get(elevation_id)
        if elevation.user_id == approver_id:
            # Four eyes: the attempt is evidence of an attack (or a misunderstanding).
            self._record(
                scope,
                EventType.AUTHZ_ELEVATION_DENIED,
                approver_id,
                elevation,
                outcome=Outcome.FAILURE,
                reason="self_approval",
            )
            raise SelfApproval
        if elevation.status != Status.PENDING:
            raise ElevationNotPending
        return elevation

    async def _decide(
        self,
        elevation_id: str,
        status: str,
        approver_id: str,
        now: datetime,
        *,
        expires: datetime | None = None,
    ) -> None:
        c = authz_elevations.c
        # Conditional on still pending: two administrators deciding at once, one wins.
        statement = (
            update(authz_elevations)
            .where(and_(c.id == elevation_id, c.status == Status.PENDING))
            .values(status=status, decided_by=approver_id, decided_at=now, expires_at=expires)
            .returning(c.id)
        )
        async with self.database.engine.begin() as connection:
            if (await connection.execute(statement)).first() is None:
                raise ElevationNotPending

    async def revoke(self, elevation_id: str, actor_id: str, *, scope: Scope) -> Elevation:
        """End an approved grant now. Raises ElevationNotFound or ElevationNotPending (not
        approved, or already over)."""
        await self.sweep()
        elevation = await self.get(elevation_id)
        c = authz_elevations.c
        statement = (
            update(authz_elevations)
            .where(and_(c.id == elevation_id, c.status == Status.APPROVED))
            .values(status=Status.REVOKED, revoked_by=actor_id, revoked_at=self._clock.now())
            .returning(c.id)
        )
        async with self.database.engine.begin() as connection:
            if (await connection.execute(statement)).first() is None:
                raise ElevationNotPending
        await self._remove_grant(elevation, actor_id, scope)
        revoked = await self.get(elevation_id)
        self._record(scope, EventType.AUTHZ_ELEVATION_REVOKED, actor_id, revoked)
        return revoked

    async def _remove_grant(
        self, elevation: Elevation, actor: str | None, scope: Scope | None
    ) -> None:
        """Delete the grant tuple of ``elevation``: never a permanent role, nor a later grant
        of the same role that replaced this one."""
        source = await self.system.authz.source(SYSTEM_STORE_ID, Consistency.HIGHER_CONSISTENCY)
        current = source.get(SYSTEM_OBJECT, elevation.role, user_of(elevation.user_id))
        ends = grant_expiry(current) if current is not None else None
        if ends is None or elevation.expires_at is None:
            return
        if abs(ends - elevation.expires_at) > SAME_GRANT:
            return
        await self.system.authz.write(
            SYSTEM_STORE_ID,
            deletes=[Tuple(SYSTEM_OBJECT, elevation.role, user_of(elevation.user_id))],
            on_missing=OnMissing.IGNORE,
            info=_info(scope, actor),
        )

    # ------------------------------------------------------------------ expiry
    async def sweep(self, *, user_id: str | None = None) -> int:
        """Record the end of every grant (and pending request) whose time is over; remove the
        ended tuples. Returns how many ends it recorded. Idempotent."""
        now = self._clock.now()
        c = authz_elevations.c
        ended = and_(c.status == Status.APPROVED, c.expires_at <= now)
        stale = and_(c.status == Status.PENDING, c.requested_at <= now - self.request_ttl)
        query = select(authz_elevations).where(ended | stale)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        count = 0
        for row in rows:
            elevation = Elevation.of(row)
            statement = (
                update(authz_elevations)
                .where(and_(c.id == elevation.id, c.status == elevation.status))
                .values(status=Status.EXPIRED, expiry_recorded=True)
                .returning(c.id)
            )
            async with self.database.engine.begin() as connection:
                if (await connection.execute(statement)).first() is None:
                    continue  # another process recorded it
            if elevation.status == Status.APPROVED:
                await self._remove_grant(elevation, None, None)
            self._record(None, EventType.AUTHZ_ELEVATION_EXPIRED, None, elevation)
            count += 1
        return count

    async def _observed_expiry(self, user_id: str) -> None:
        await self.sweep(user_id=user_id)

    # ------------------------------------------------------------------ audit
    def _record(
        self,
        scope: Scope | None,
        type_: EventType,
        actor_id: str | None,
        elevation: Elevation,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str | None = None,
    ) -> None:
        details: dict[str, Any] = {
            "elevation_id": elevation.id,
            "role": elevation.role,
            "duration_seconds": elevation.duration_seconds,
        }
        if type_ is EventType.AUTHZ_ELEVATION_REQUESTED:
            details["reason"] = elevation.reason
        self.system.record(
            scope,
            type_,
            actor=user_of(actor_id) if actor_id else None,
            subject=user_of(elevation.user_id),
            details=details,
            outcome=outcome,
            reason=reason,
        )


def _info(scope: Scope | None, actor: str | None) -> RequestInfo:
    return RequestInfo(scope=scope, actor=user_of(actor) if actor else None, source="system")
