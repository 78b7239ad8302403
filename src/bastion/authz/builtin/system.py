""":class:`SystemAuthz`: Bastion's own administration decided by its authorization engine.

Every administration decision is a check ``system:bastion#<permission>@user:<id>`` against the
built-in model (:mod:`.model`) in the reserved store, through :class:`AuthzService` (so it is in
the decision log like any check), at ``HIGHER_CONSISTENCY`` (a withdrawn role stops working in
every process at once) and with ``current_time`` from the injected clock (a time-limited grant
is refused the moment it ends: decisions are never cached, only tuples are).

``users.is_admin`` is a mirror kept for display and for the MFA policy of administrators; it
never decides. It is read once, when the reserved store is first created, to carry existing
administrators over as ``admin`` tuples (an upgrade from the role flag); after that, roles
live in the store only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bastion.audit.context import record_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.authz.builtin.model import (
    CONDITION,
    SYSTEM_OBJECT,
    SYSTEM_STORE_ID,
    SYSTEM_STORE_NAME,
    Permission,
    Role,
    system_model,
)
from bastion.authz.errors import AuthzError, LatestModelNotFound, StoreNotFound
from bastion.authz.service import (
    AuthzService,
    CheckRequest,
    Consistency,
    Decision,
    RequestInfo,
)
from bastion.authz.store import OnDuplicate, OnMissing
from bastion.authz.tuples import Tuple, TupleSource
from bastion.clock import Clock
from bastion.identity.accounts.models import users
from bastion.storage import Database

__all__ = ["SystemAuthz", "grant_expiry", "rfc3339"]

Scope = Mapping[str, Any]
ExpiryObserver = Callable[[str], Awaitable[None]]


def rfc3339(moment: datetime) -> str:
    """``moment`` as the RFC 3339 UTC string a ``timestamp`` condition parameter takes."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def grant_expiry(t: Tuple) -> datetime | None:
    """When the time-limited grant ``t`` ends (None for a permanent tuple or a bad context)."""
    if t.condition != CONDITION or not t.context:
        return None
    try:
        start = datetime.fromisoformat(str(t.context["grant_time"]))
        seconds = str(t.context["grant_duration"]).removesuffix("s")
        return start + timedelta(seconds=float(seconds))
    except (KeyError, ValueError):
        return None


def user_of(user_id: str) -> str:
    return f"user:{user_id}"


class _Unconditional:
    """A view of a tuple source without conditional tuples: what a user may do without any
    time-limited grant (to tell whether a decision relied on one)."""

    def __init__(self, source: TupleSource) -> None:
        self._source = source

    @staticmethod
    def _keep(tuples: Iterable[Tuple]) -> tuple[Tuple, ...]:
        return tuple(t for t in tuples if t.condition is None)

    def get(self, object: str, relation: str, user: str) -> Tuple | None:  # noqa: A002
        found = self._source.get(object, relation, user)
        return found if found is not None and found.condition is None else None

    def by_object(self, object: str, relation: str) -> Iterable[Tuple]:  # noqa: A002
        return self._keep(self._source.by_object(object, relation))

    def usersets(self, object: str, relation: str) -> Iterable[Tuple]:  # noqa: A002
        return self._keep(self._source.usersets(object, relation))

    def by_user(self, object_type: str, relation: str, user: str) -> Iterable[Tuple]:
        return self._keep(self._source.by_user(object_type, relation, user))

    def objects_of_type(self, object_type: str) -> Iterable[str]:
        return self._source.objects_of_type(object_type)


class SystemAuthz:
    """Roles and permissions of Bastion's administration (see the module docstring)."""

    def __init__(
        self, authz: AuthzService, database: Database, *, audit: AuditRecorder, clock: Clock
    ) -> None:
        self.authz = authz
        self.database = database
        self._audit = audit
        self._clock = clock
        #: Called with a user id when a check meets an ended grant of theirs (the elevation
        #: service records the expiry then: lazily, when first observed).
        self.on_expired_grant: ExpiryObserver | None = None
        self._ready = False

    # ------------------------------------------------------------------ setup
    async def ensure(self) -> None:
        """Create the reserved store and store the built-in model as a new version when the
        latest differs (idempotent: every process runs it at startup)."""
        await self.authz.store.ensure_store(SYSTEM_STORE_ID, SYSTEM_STORE_NAME)
        model = system_model()
        try:
            latest = await self.authz.store.read_model(SYSTEM_STORE_ID)
        except LatestModelNotFound:
            latest = None
        if latest is None or not _same_model(latest.model, model):
            await self.authz.write_model(SYSTEM_STORE_ID, model, RequestInfo(source="system"))
            if latest is None:
                await self._carry_over_admins()
        self._ready = True

    async def _carry_over_admins(self) -> None:
        """Existing administrators (the former ``is_admin`` flag) become ``admin`` tuples."""
        query = select(users.c.id).where(users.c.is_admin.is_(True))
        async with self.database.engine.connect() as connection:
            admins = [str(row[0]) for row in await connection.execute(query)]
        for user_id in admins:
            await self.grant_role(user_id, Role.ADMIN, actor=None, scope=None)

    # ------------------------------------------------------------------ decisions
    async def allowed(
        self,
        user_id: str,
        permission: Permission | str,
        *,
        scope: Scope | None = None,
        contextual_tuples: Iterable[Tuple] = (),
        object: str = SYSTEM_OBJECT,  # noqa: A002 - OpenFGA's field name
    ) -> bool:
        """Whether the enabled user ``user_id`` holds ``permission`` now (fails closed: a
        disabled or unknown account holds nothing). Recorded in the decision log."""
        user = user_of(user_id)
        now = self._clock.now()
        request = CheckRequest(
            object,
            str(permission),
            user,
            context={"current_time": rfc3339(now)},
            contextual_tuples=tuple(contextual_tuples),
        )
        info = RequestInfo(scope=scope, actor=user, source="system")
        if not await self._enabled(user_id):
            # Never asked of the engine, but still a decision: the log shows the refusal.
            self._refuse(request, scope, "account_disabled")
            return False
        if not self._ready:
            await self.ensure()  # startup could not reach the database: retry now
        try:
            outcome = await self.authz.check(
                SYSTEM_STORE_ID, request, consistency=Consistency.HIGHER_CONSISTENCY, info=info
            )
        except AuthzError as exc:
            # Fail closed. The decision log has it when the engine raised (check records it);
            # anything earlier (no store, no model) is recorded here.
            if isinstance(exc, (StoreNotFound, LatestModelNotFound)):
                self._refuse(request, scope, exc.code)
            return False
        source = await self.authz.source(SYSTEM_STORE_ID, Consistency.MINIMIZE_LATENCY)
        if outcome.allowed:
            await self._note_use(source, request, scope)
        await self._note_expired(source, user_id, now)
        return outcome.allowed

    async def check(
        self,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any],  # noqa: ARG002 - the injected clock decides current_time
        scope: Scope | None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> bool:
        """:class:`bastion.sdk.authz.Checker` over :meth:`allowed`, so Bastion's own routes
        enforce with the SDK and keep every rule of :meth:`allowed` (a disabled account holds
        nothing, the decision log, ``authz:elevation:used``, ended grants observed). The
        request's ``current_time`` is not trusted here: this service's clock decides."""
        if not user.startswith("user:"):
            return False  # only users hold roles in the built-in model
        return await self.allowed(
            user.removeprefix("user:"),
            relation,
            scope=scope,
            contextual_tuples=contextual_tuples,
            object=object,
        )

    def _refuse(self, request: CheckRequest, scope: Scope | None, reason: str) -> None:
        decision = Decision(
            allowed=False,
            store_id=SYSTEM_STORE_ID,
            model_id="",
            object=request.object,
            relation=request.relation,
            user=request.user,
            latency_ms=0.0,
            reason=reason,
            source="system",
        )
        self.authz.decisions.record(decision, scope=scope, actor=request.user)

    async def _enabled(self, user_id: str) -> bool:
        query = select(users.c.disabled).where(users.c.id == user_id)
        async with self.database.engine.connect() as connection:
            disabled = (await connection.execute(query)).scalar()
        return disabled is False

    async def _note_use(
        self, source: TupleSource, request: CheckRequest, scope: Scope | None
    ) -> None:
        """Record ``authz:elevation:used`` when the decision held only thanks to a grant."""
        roles = self.grants_of(source, request.user.removeprefix("user:"))
        if not roles:
            return
        _, engine = await self.authz.engine(SYSTEM_STORE_ID)
        without = engine.check(
            _Unconditional(source),
            request.object,
            request.relation,
            request.user,
            context=request.context,
            contextual_tuples=request.contextual_tuples,
        )
        if without.allowed:
            return
        self.record(
            scope,
            EventType.AUTHZ_ELEVATION_USED,
            actor=request.user,
            subject=request.user,
            details={"permission": request.relation, "object": request.object, "roles": roles},
        )

    async def _note_expired(self, source: TupleSource, user_id: str, now: datetime) -> None:
        if self.on_expired_grant is None:
            return
        for role in Role:
            t = source.get(SYSTEM_OBJECT, role.value, user_of(user_id))
            ends = grant_expiry(t) if t is not None else None
            if ends is not None and ends <= now:
                await self.on_expired_grant(user_id)
                return

    def grants_of(self, source: TupleSource, user_id: str) -> list[str]:
        """The roles ``user_id`` holds through a grant still running now."""
        now = self._clock.now()
        held = []
        for role in Role:
            t = source.get(SYSTEM_OBJECT, role.value, user_of(user_id))
            ends = grant_expiry(t) if t is not None else None
            if ends is not None and ends > now:
                held.append(role.value)
        return held

    async def roles(self, user_id: str) -> dict[str, str | None]:
        """Each role the user holds: ``None`` (permanent) or when its grant ends (RFC 3339,
        possibly past: the engine refuses it; the sweep removes it)."""
        source = await self.authz.source(SYSTEM_STORE_ID, Consistency.HIGHER_CONSISTENCY)
        held: dict[str, str | None] = {}
        for role in Role:
            t = source.get(SYSTEM_OBJECT, role.value, user_of(user_id))
            if t is not None:
                ends = grant_expiry(t)
                held[role.value] = rfc3339(ends) if ends is not None else None
        return held

    async def holders(self, role: Role) -> list[str]:
        """User ids holding ``role`` permanently (not through a grant)."""
        source = await self.authz.source(SYSTEM_STORE_ID, Consistency.HIGHER_CONSISTENCY)
        return [
            t.user.removeprefix("user:")
            for t in source.by_object(SYSTEM_OBJECT, role.value)
            if t.condition is None and t.user.startswith("user:") and not t.is_wildcard
        ]

    # ------------------------------------------------------------------ grants
    async def grant_role(
        self,
        user_id: str,
        role: Role,
        *,
        actor: str | None,
        scope: Scope | None,
        until: tuple[datetime, timedelta] | None = None,
    ) -> None:
        """Grant ``role`` permanently, or from ``until[0]`` for ``until[1]`` (a conditional
        tuple). A permanent ``admin`` also sets the ``is_admin`` mirror."""
        if until is None:
            t = Tuple(SYSTEM_OBJECT, role.value, user_of(user_id))
        else:
            start, duration = until
            context = {
                "grant_time": rfc3339(start),
                "grant_duration": f"{int(duration.total_seconds())}s",
            }
            t = Tuple(SYSTEM_OBJECT, role.value, user_of(user_id), CONDITION, context)
        info = RequestInfo(scope=scope, actor=actor, source="system")
        # A grant replaces whatever tuple the user had for the role (one key per role).
        await self.authz.write(
            SYSTEM_STORE_ID,
            deletes=[Tuple(SYSTEM_OBJECT, role.value, user_of(user_id))],
            on_missing=OnMissing.IGNORE,
            info=info,
        )
        await self.authz.write(
            SYSTEM_STORE_ID, writes=[t], on_duplicate=OnDuplicate.IGNORE, info=info
        )
        if until is None:
            if role is Role.ADMIN:
                await self._mirror(user_id, is_admin=True)
            self.record(
                scope,
                EventType.AUTHZ_ROLE_GRANTED,
                actor=actor,
                subject=user_of(user_id),
                details={"role": role.value},
            )

    async def grant_first_admin(self, user_id: str, scope: Scope) -> None:
        """The administrator created with the setup token becomes ``admin``."""
        await self.grant_role(user_id, Role.ADMIN, actor=None, scope=scope)

    async def revoke_role(
        self, user_id: str, role: Role, *, actor: str | None, scope: Scope | None
    ) -> None:
        """Withdraw ``role`` (permanent or granted); idempotent."""
        info = RequestInfo(scope=scope, actor=actor, source="system")
        await self.authz.write(
            SYSTEM_STORE_ID,
            deletes=[Tuple(SYSTEM_OBJECT, role.value, user_of(user_id))],
            on_missing=OnMissing.IGNORE,
            info=info,
        )
        if role is Role.ADMIN:
            await self._mirror(user_id, is_admin=False)

    async def _mirror(self, user_id: str, *, is_admin: bool) -> None:
        async with self.database.engine.begin() as connection:
            await connection.execute(
                update(users).where(users.c.id == user_id).values(is_admin=is_admin)
            )

    def record(
        self,
        scope: Scope | None,
        type_: EventType,
        *,
        actor: str | None,
        subject: str,
        details: Mapping[str, Any],
        outcome: Outcome = Outcome.SUCCESS,
        reason: str | None = None,
    ) -> None:
        """Record an audit event of roles and elevations (with the request, when any)."""
        if scope is not None:
            record_from_scope(
                self._audit,
                scope,
                type_,
                outcome,
                actor=actor,
                subject=subject,
                reason=reason,
                details=details,
                clock=self._clock,
            )
            return
        event = AuditEvent(
            type_,
            outcome,
            self._clock.now(),
            actor=actor,
            subject=subject,
            reason=reason,
            details=details,
        )
        self._audit.record(event)


def _same_model(stored: Mapping[str, Any], model: Mapping[str, Any]) -> bool:
    return {k: v for k, v in stored.items() if k != "id"} == dict(model)
