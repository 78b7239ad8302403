"""SystemAuthz and ElevationService over the real store (SQLite and PostgreSQL): the reserved
store is created once, decisions come from the engine and are logged, an expired grant is
refused through every cache, self-approval is refused, and every end is recorded once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from bastion.audit.events import AuditEvent, EventType
from bastion.authz.builtin import (
    ElevationService,
    Permission,
    Role,
    SystemAdministration,
    build_system_admin,
)
from bastion.authz.builtin.audits import admin_findings, audit_elevation
from bastion.authz.builtin.errors import (
    DurationTooLong,
    ElevationNotPending,
    RoleAlreadyHeld,
    SelfApproval,
)
from bastion.authz.builtin.model import SYSTEM_OBJECT, SYSTEM_STORE_ID
from bastion.authz.service import AuthzService, CheckRequest, Consistency, RequestInfo
from bastion.authz.settings import AuthzSettings
from bastion.authz.store import SqlAuthzStore
from bastion.authz.tuples import Tuple
from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import insert_user
from bastion.storage import Database

SCOPE: dict[str, object] = {"type": "http", "headers": [], "state": {}}
HOUR = timedelta(hours=1)


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def of(self, type_: EventType) -> list[AuditEvent]:
        return [e for e in self.events if e.type is type_]


@pytest.fixture
def recorder() -> ListRecorder:
    return ListRecorder()


def _service(database: Database, clock: FrozenClock, recorder: ListRecorder) -> AuthzService:
    # A generous staleness bound: MINIMIZE_LATENCY answers from a warm index.
    return AuthzService(
        SqlAuthzStore(database, clock=clock),
        audit=recorder,
        clock=clock,
        staleness_seconds=60.0,
        max_cached_stores=8,
        decision_sample_rate=1.0,
    )


@pytest.fixture
def admin(database: Database, clock: FrozenClock, recorder: ListRecorder) -> SystemAdministration:
    return build_system_admin(
        AuthzSettings(),
        authz=_service(database, clock, recorder),
        database=database,
        audit=recorder,
        clock=clock,
    )


async def _user(database: Database, clock: FrozenClock, *, is_admin: bool = False) -> str:
    # A random address: id(object()) repeats once the object is freed (a duplicate-email flake).
    local = uuid.uuid4().hex
    async with database.engine.begin() as connection:
        user = await insert_user(
            connection,
            email=f"{local}@example.com",
            email_normalized=f"{local}@example.com",
            display_name="x",
            password_hash=None,
            now=clock.now(),
            is_admin=is_admin,
        )
    return user.id


async def test_startup_is_idempotent_and_carries_existing_admins_over(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    legacy = await _user(database, clock, is_admin=True)
    await admin.start()
    await admin.start()
    models = await admin.system.authz.list_models(SYSTEM_STORE_ID, page_size=10, token="")
    assert len(models.items) == 1
    assert await admin.system.roles(legacy) == {"admin": None}
    assert await admin.system.allowed(legacy, Permission.MANAGE_USERS)
    # Carried over once: a later restart does not resurrect a withdrawn role from the mirror.
    await admin.system.revoke_role(legacy, Role.ADMIN, actor=None, scope=None)
    async with database.engine.begin() as connection:
        await connection.execute(users.update().values(is_admin=True))
    await admin.start()
    assert not await admin.system.allowed(legacy, Permission.MANAGE_USERS)


async def test_decisions_are_logged_and_disabled_accounts_hold_nothing(
    database: Database, clock: FrozenClock, admin: SystemAdministration, recorder: ListRecorder
) -> None:
    await admin.start()
    user = await _user(database, clock)
    await admin.system.grant_role(user, Role.SUPPORT, actor=None, scope=None)
    assert await admin.system.allowed(user, Permission.UNLOCK_USERS, scope=SCOPE)
    assert not await admin.system.allowed(user, Permission.ROTATE_KEYS, scope=SCOPE)
    async with database.engine.begin() as connection:
        await connection.execute(users.update().where(users.c.id == user).values(disabled=True))
    assert not await admin.system.allowed(user, Permission.UNLOCK_USERS)
    allowed = recorder.of(EventType.AUTHZ_CHECK_ALLOWED)
    denied = recorder.of(EventType.AUTHZ_CHECK_DENIED)
    assert [e.details["relation"] for e in allowed] == ["can_unlock_users"]
    assert [e.reason for e in denied][-1] == "account_disabled"
    assert [e.details["relation"] for e in denied] == ["can_rotate_keys", "can_unlock_users"]
    assert not await admin.system.allowed("no-such-user", Permission.READ_USERS)


async def test_an_expired_grant_is_refused_through_the_warm_index(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    """SpiceDB's bug: a cached decision outliving the grant. Bastion caches tuples, never
    decisions: the same warm index answers no once the clock passes the grant's end."""
    await admin.start()
    user = await _user(database, clock)
    start = clock.now()
    await admin.system.grant_role(user, Role.SUPPORT, actor=None, scope=None, until=(start, HOUR))
    authz = admin.system.authz

    async def minimize_latency() -> bool:
        request = CheckRequest(
            SYSTEM_OBJECT,
            Permission.UNLOCK_USERS.value,
            f"user:{user}",
            context={"current_time": clock.now().isoformat()},
        )
        outcome = await authz.check(
            SYSTEM_STORE_ID, request, consistency=Consistency.MINIMIZE_LATENCY, info=RequestInfo()
        )
        return outcome.allowed

    assert await minimize_latency()
    clock.advance(HOUR)
    assert not await minimize_latency()  # the index still holds the tuple
    source = await authz.source(SYSTEM_STORE_ID, Consistency.MINIMIZE_LATENCY)
    assert source.get(SYSTEM_OBJECT, "support", f"user:{user}") is not None
    assert not await admin.system.allowed(user, Permission.UNLOCK_USERS)


async def test_elevation_lifecycle_and_audit(
    database: Database, clock: FrozenClock, admin: SystemAdministration, recorder: ListRecorder
) -> None:
    await admin.start()
    elevations: ElevationService = admin.elevations
    approver, user = await _user(database, clock), await _user(database, clock)
    await admin.system.grant_role(approver, Role.ADMIN, actor=None, scope=None)
    with pytest.raises(DurationTooLong):
        await elevations.request(user, Role.ADMIN, timedelta(hours=5), "why", scope=SCOPE)
    with pytest.raises(RoleAlreadyHeld):
        await elevations.request(approver, Role.ADMIN, HOUR, "why", scope=SCOPE)

    pending = await elevations.request(user, Role.SECURITY_AUDITOR, HOUR, "audit", scope=SCOPE)
    with pytest.raises(SelfApproval):
        await elevations.approve(pending.id, user, scope=SCOPE)
    approved = await elevations.approve(pending.id, approver, scope=SCOPE)
    assert approved.expires_at == clock.now() + HOUR
    with pytest.raises(ElevationNotPending):
        await elevations.deny(pending.id, approver, scope=SCOPE)
    assert await admin.system.allowed(user, Permission.READ_AUDIT)
    assert not await admin.system.allowed(user, Permission.MANAGE_USERS)
    assert len(recorder.of(EventType.AUTHZ_ELEVATION_USED)) == 1

    clock.advance(HOUR)
    assert not await admin.system.allowed(user, Permission.READ_AUDIT)  # observed: recorded
    assert await elevations.sweep() == 0  # once only
    (expired,) = recorder.of(EventType.AUTHZ_ELEVATION_EXPIRED)
    assert expired.details["elevation_id"] == pending.id
    assert (await elevations.get(pending.id)).status == "expired"
    assert await admin.system.roles(user) == {}  # the ended tuple was removed
    types = [e.type for e in recorder.events if e.type.value.startswith("authz:elevation")]
    assert types == [
        EventType.AUTHZ_ELEVATION_REQUESTED,
        EventType.AUTHZ_ELEVATION_DENIED,  # the self-approval attempt
        EventType.AUTHZ_ELEVATION_APPROVED,
        EventType.AUTHZ_ELEVATION_USED,
        EventType.AUTHZ_ELEVATION_EXPIRED,
    ]


async def test_concurrent_decisions_on_one_request_have_one_winner(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    await admin.start()
    first = await _user(database, clock)
    second = await _user(database, clock)
    user_id = await _user(database, clock)
    pending = await admin.elevations.request(user_id, Role.SUPPORT, HOUR, "x", scope=SCOPE)
    results = await asyncio.gather(
        admin.elevations.approve(pending.id, first, scope=SCOPE),
        admin.elevations.deny(pending.id, second, scope=SCOPE),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ElevationNotPending) for r in results) == 1
    final = (await admin.elevations.get(pending.id)).status
    assert (final == "approved") == bool(await admin.system.roles(user_id))


async def test_pending_requests_expire(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    await admin.start()
    approver, user = await _user(database, clock), await _user(database, clock)
    pending = await admin.elevations.request(user, Role.SUPPORT, HOUR, "x", scope=SCOPE)
    clock.advance(timedelta(days=1))
    with pytest.raises(ElevationNotPending):
        await admin.elevations.approve(pending.id, approver, scope=SCOPE)


async def test_check_findings(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    await admin.start()
    assert [f.code for f in await admin_findings(admin.system)] == ["authz_single_admin"]
    for _ in range(2):
        await admin.system.grant_role(
            await _user(database, clock), Role.ADMIN, actor=None, scope=None
        )
    assert await admin_findings(admin.system) == []
    long = Settings(env="test", authz=AuthzSettings(elevation_max_seconds=9 * 3600))
    assert [f.code for f in audit_elevation(long)] == ["authz_elevation_too_long"]
    assert list(audit_elevation(Settings(env="test"))) == []


async def test_a_decision_before_startup_creates_the_store_first(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    """Startup could not reach the database: the first decision ensures the store, then asks
    the engine (never an error, never an allow by default)."""
    user = await _user(database, clock)
    assert not await admin.system.allowed(user, Permission.READ_USERS)
    await admin.system.grant_role(user, Role.SUPPORT, actor=None, scope=None)
    assert await admin.system.allowed(user, Permission.READ_USERS)


async def test_the_end_of_an_old_grant_does_not_cut_a_newer_one(
    database: Database, clock: FrozenClock, admin: SystemAdministration
) -> None:
    await admin.start()
    approver, user = await _user(database, clock), await _user(database, clock)
    first = await admin.elevations.request(user, Role.SUPPORT, HOUR, "x", scope=SCOPE)
    await admin.elevations.approve(first.id, approver, scope=SCOPE)
    clock.advance(timedelta(minutes=30))
    second = await admin.elevations.request(user, Role.SUPPORT, HOUR, "y", scope=SCOPE)
    await admin.elevations.approve(second.id, approver, scope=SCOPE)
    clock.advance(timedelta(minutes=45))  # the first grant's end has passed, not the second's
    assert await admin.elevations.sweep() == 1
    assert (await admin.elevations.get(first.id)).status == "expired"
    assert await admin.system.allowed(user, Permission.UNLOCK_USERS)


async def test_the_sdk_checker_keeps_every_rule_of_allowed(
    database: Database, clock: FrozenClock, admin: SystemAdministration, recorder: ListRecorder
) -> None:
    """``SystemAuthz.check`` (the SDK Checker of Bastion's own routes): time-limited grants end
    by the system's clock whatever ``current_time`` the caller sends, a grant's use is recorded,
    ownership comes from contextual tuples, a disabled account holds nothing."""
    await admin.start()
    system = admin.system
    user, other = await _user(database, clock), await _user(database, clock)
    await system.grant_role(user, Role.SUPPORT, actor=None, scope=None, until=(clock.now(), HOUR))
    stale = {"current_time": clock.now().isoformat()}
    unlock = Permission.UNLOCK_USERS.value
    assert await system.check(SYSTEM_OBJECT, unlock, f"user:{user}", context=stale, scope=SCOPE)
    assert len(recorder.of(EventType.AUTHZ_ELEVATION_USED)) == 1
    clock.advance(HOUR)
    # A context claiming an earlier time does not revive the grant.
    assert not await system.check(SYSTEM_OBJECT, unlock, f"user:{user}", context=stale, scope=None)
    # Only accounts hold roles: a userset, or a wildcard (no such account), holds nothing.
    for subject in ("group:staff#member", "user:*"):
        assert not await system.check(SYSTEM_OBJECT, unlock, subject, context={}, scope=None)

    def owned_by(owner: str) -> list[Tuple]:
        return [
            Tuple("elevation:e1", "owner", f"user:{owner}"),
            Tuple("elevation:e1", "system", SYSTEM_OBJECT),
        ]

    for who, expected in ((user, True), (other, False)):
        allowed = await system.check(
            "elevation:e1",
            "can_revoke",
            f"user:{who}",
            context={},
            scope=None,
            contextual_tuples=owned_by(user),
        )
        assert allowed is expected
    async with database.engine.begin() as connection:
        await connection.execute(users.update().where(users.c.id == user).values(disabled=True))
    assert not await system.check(
        "elevation:e1",
        "can_revoke",
        f"user:{user}",
        context={},
        scope=None,
        contextual_tuples=owned_by(user),
    )
    assert recorder.of(EventType.AUTHZ_CHECK_DENIED)[-1].reason == "account_disabled"
