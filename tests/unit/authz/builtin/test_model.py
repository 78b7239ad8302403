"""The built-in model: parsed by Bastion's parser, each role holds exactly its permissions,
owners act on their own sessions and factors only, and a grant ends at its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bastion.authz.builtin.model import (
    CONDITION,
    SYSTEM_MODEL_DSL,
    SYSTEM_OBJECT,
    Permission,
    Role,
    system_model,
)
from bastion.authz.builtin.system import grant_expiry, rfc3339
from bastion.authz.engine import Engine
from bastion.authz.errors import ConditionError
from bastion.authz.model import parse_dsl, render_dsl, validate_model
from bastion.authz.tuples import MemoryTupleIndex, Tuple

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)

#: The intended permissions of each role; anything else must be refused.
EXPECTED: dict[Role, set[Permission]] = {
    Role.ADMIN: set(Permission),
    Role.SECURITY_AUDITOR: {Permission.READ_USERS, Permission.READ_AUDIT},
    Role.SUPPORT: {
        Permission.READ_USERS,
        Permission.UNLOCK_USERS,
        Permission.REVOKE_SESSIONS,
        Permission.RESET_MFA,
    },
}


def test_the_model_round_trips_through_the_printer() -> None:
    model = system_model()
    assert parse_dsl(render_dsl(model)) == model
    assert parse_dsl(SYSTEM_MODEL_DSL) == model
    assert set(model["conditions"]) == {CONDITION}


def test_the_model_is_valid() -> None:
    # system_model() no longer validates (startup would load the CEL library for it): storing
    # it does, and this test catches an invalid built-in model before any process starts.
    validate_model(system_model())


@pytest.mark.parametrize("role", list(Role))
def test_each_role_holds_exactly_its_permissions(role: Role) -> None:
    engine = Engine(system_model())
    index = MemoryTupleIndex([Tuple(SYSTEM_OBJECT, role.value, "user:u")])
    held = {p for p in Permission if engine.check(index, SYSTEM_OBJECT, p.value, "user:u").allowed}
    assert held == EXPECTED[role]
    assert not any(
        engine.check(index, SYSTEM_OBJECT, p.value, "user:other").allowed for p in Permission
    )


def _owned(kind: str, owner: str) -> tuple[Tuple, ...]:
    """Contextual tuples a route builds from the row of a session or factor."""
    return (
        Tuple(f"{kind}:1", "owner", f"user:{owner}"),
        Tuple(f"{kind}:1", "system", SYSTEM_OBJECT),
    )


@pytest.mark.parametrize(("kind", "action"), [("session", "can_revoke"), ("factor", "can_remove")])
def test_owners_act_on_their_own_only(kind: str, action: str) -> None:
    """IDOR at the model: bob's session or factor is not alice's to end, unless alice is staff
    with the matching permission."""
    engine = Engine(system_model())
    index = MemoryTupleIndex()
    owned = _owned(kind, "bob")
    assert engine.check(index, f"{kind}:1", action, "user:bob", contextual_tuples=owned).allowed
    assert not engine.check(
        index, f"{kind}:1", action, "user:alice", contextual_tuples=owned
    ).allowed
    index.add(Tuple(SYSTEM_OBJECT, "support", "user:alice"))
    assert engine.check(index, f"{kind}:1", action, "user:alice", contextual_tuples=owned).allowed
    auditor = MemoryTupleIndex([Tuple(SYSTEM_OBJECT, "security_auditor", "user:carol")])
    assert not engine.check(
        auditor, f"{kind}:1", action, "user:carol", contextual_tuples=owned
    ).allowed


def test_personal_data_export_is_the_owners_alone() -> None:
    engine = Engine(system_model())
    index = MemoryTupleIndex([Tuple(SYSTEM_OBJECT, "admin", "user:root")])
    owned = _owned("data", "bob")
    assert engine.check(index, "data:1", "can_export", "user:bob", contextual_tuples=owned).allowed
    assert not engine.check(
        index, "data:1", "can_export", "user:root", contextual_tuples=owned
    ).allowed
    assert engine.check(index, "data:1", "can_erase", "user:root", contextual_tuples=owned).allowed


def _granted(hours: float) -> Tuple:
    context = {"grant_time": rfc3339(NOW), "grant_duration": f"{int(hours * 3600)}s"}
    return Tuple(SYSTEM_OBJECT, "support", "user:u", CONDITION, context)


def test_a_grant_holds_until_its_end_and_not_a_second_more() -> None:
    engine = Engine(system_model())
    index = MemoryTupleIndex([_granted(1)])
    perm = Permission.UNLOCK_USERS.value

    def at(moment: datetime) -> bool:
        context = {"current_time": rfc3339(moment)}
        return engine.check(index, SYSTEM_OBJECT, perm, "user:u", context=context).allowed

    assert at(NOW)
    assert at(NOW + timedelta(minutes=59, seconds=59))
    assert not at(NOW + timedelta(hours=1))
    assert not at(NOW + timedelta(days=365))
    assert grant_expiry(_granted(1)) == NOW + timedelta(hours=1)


def test_a_check_without_the_time_is_an_error_not_a_silent_answer() -> None:
    engine = Engine(system_model())
    index = MemoryTupleIndex([_granted(1)])
    with pytest.raises(ConditionError):
        engine.check(index, SYSTEM_OBJECT, Permission.UNLOCK_USERS.value, "user:u")


def test_an_elevation_request_is_revoked_by_its_owner_or_an_approver() -> None:
    engine = Engine(system_model())
    index = MemoryTupleIndex([Tuple(SYSTEM_OBJECT, "admin", "user:root")])
    owned = _owned("elevation", "bob")
    for user, expected in (("bob", True), ("root", True), ("alice", False)):
        answer = engine.check(
            index, "elevation:1", "can_revoke", f"user:{user}", contextual_tuples=owned
        )
        assert answer.allowed is expected, user
    # Support cannot approve elevations, so cannot end someone else's either.
    index.add(Tuple(SYSTEM_OBJECT, "support", "user:alice"))
    assert not engine.check(
        index, "elevation:1", "can_revoke", "user:alice", contextual_tuples=owned
    ).allowed
