"""Conditional tuples (ABAC): request context, tuple context, missing parameters, expiry."""

from __future__ import annotations

import pytest

from bastion.authz.errors import ConditionError, InvalidTuple, ValidationError

from .helpers import build, tup

MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, user with in_network]
type document
  relations
    define parent: [document, document with in_network]
    define viewer: [user, user with grant, group#member with in_network, user:* with in_network] \
      or viewer from parent
    define editor: [user with in_network] and viewer
    define banned: [user with in_network]
    define reader: viewer but not banned

condition grant(current_time: timestamp, grant_time: timestamp, grant_duration: duration) {
  current_time < grant_time + grant_duration
}

condition in_network(ip: ipaddress, cidr: string) {
  ip.in_cidr(cidr)
}
"""

GRANT = {"grant_time": "2026-01-01T00:00:00Z", "grant_duration": "1h"}
NET = {"cidr": "10.0.0.0/8"}


def test_an_expiring_grant_holds_until_it_expires() -> None:
    engine, index = build(MODEL, tup("document:1#viewer@user:anne", "grant", GRANT))
    before = {"current_time": "2026-01-01T00:59:59Z"}
    after = {"current_time": "2026-01-01T01:00:00Z"}
    assert engine.check(index, "document:1", "viewer", "user:anne", context=before).allowed
    assert not engine.check(index, "document:1", "viewer", "user:anne", context=after).allowed


def test_a_missing_parameter_is_an_error_not_a_silent_deny() -> None:
    engine, index = build(MODEL, tup("document:1#viewer@user:anne", "grant", GRANT))
    with pytest.raises(ConditionError) as caught:
        engine.check(index, "document:1", "viewer", "user:anne")
    assert caught.value.openfga_code == 2000


def test_the_tuple_context_wins_over_the_request_context() -> None:
    engine, index = build(MODEL, tup("group:eng#member@user:anne", "in_network", NET))
    inside = {"ip": "10.1.2.3", "cidr": "0.0.0.0/0"}
    outside = {"ip": "192.168.1.1", "cidr": "0.0.0.0/0"}  # the request cannot widen the CIDR
    assert engine.check(index, "group:eng", "member", "user:anne", context=inside).allowed
    assert not engine.check(index, "group:eng", "member", "user:anne", context=outside).allowed


def test_conditions_apply_on_usersets_wildcards_and_tuplesets() -> None:
    engine, index = build(
        MODEL,
        "group:eng#member@user:anne",
        tup("document:1#viewer@group:eng#member", "in_network", NET),
        tup("document:2#viewer@user:*", "in_network", NET),
        "document:9#viewer@user:carl",
        tup("document:3#parent@document:9", "in_network", NET),
    )
    inside, outside = {"ip": "10.0.0.1"}, {"ip": "8.8.8.8"}
    for obj, user in [
        ("document:1", "user:anne"),
        ("document:2", "user:zed"),
        ("document:3", "user:carl"),
    ]:
        assert engine.check(index, obj, "viewer", user, context=inside).allowed, obj
        assert not engine.check(index, obj, "viewer", user, context=outside).allowed, obj


def test_union_prefers_a_true_operand_to_an_error() -> None:
    engine, index = build(
        MODEL,
        "document:1#viewer@user:anne",
        tup("document:1#parent@document:2", "in_network", NET),
    )
    # The parent branch cannot evaluate (no ip), the direct one is true: allowed.
    assert engine.check(index, "document:1", "viewer", "user:anne").allowed


def test_intersection_prefers_a_false_operand_to_an_error() -> None:
    engine, index = build(MODEL, tup("document:1#editor@user:anne", "in_network", NET))
    # editor's first operand cannot evaluate, the second (viewer) is false: denied, no error.
    assert not engine.check(index, "document:1", "editor", "user:anne").allowed


def test_difference_with_an_erroring_subtrahend_is_an_error() -> None:
    engine, index = build(
        MODEL, "document:1#viewer@user:anne", tup("document:1#banned@user:anne", "in_network", NET)
    )
    with pytest.raises(ConditionError):
        engine.check(index, "document:1", "reader", "user:anne")
    assert not engine.check(
        index, "document:1", "reader", "user:anne", context={"ip": "10.0.0.1"}
    ).allowed
    assert engine.check(
        index, "document:1", "reader", "user:anne", context={"ip": "1.1.1.1"}
    ).allowed


@pytest.mark.parametrize(
    ("tuple_", "error"),
    [
        (tup("document:1#viewer@user:anne", "nope"), ValidationError),  # undefined condition
        (tup("document:1#banned@user:anne"), ValidationError),  # condition required
        (tup("document:1#viewer@user:anne", "in_network", {"bogus": 1}), ValidationError),
        (tup("document:1#viewer@user:anne", "in_network", {"ip": "not an ip"}), ConditionError),
        (tup("document:1#owner@user:anne", "in_network"), InvalidTuple),  # no such relation
    ],
)
def test_write_validation_of_conditional_tuples(tuple_: object, error: type[Exception]) -> None:
    engine, _ = build(MODEL)
    with pytest.raises(error):
        engine.validate_tuple(tuple_)  # type: ignore[arg-type]


def test_a_tuple_missing_its_required_condition_is_ignored() -> None:
    engine, index = build(MODEL)
    # ``banned`` only takes ``user with in_network``: a tuple without the condition (written
    # under an older model) is invalid now and ignored, like OpenFGA's read filter.
    index.add(tup("document:1#banned@user:anne"))
    assert not engine.check(index, "document:1", "banned", "user:anne").allowed


def test_openfga_accepts_a_condition_from_another_form_of_the_same_type() -> None:
    # OpenFGA's validateCondition matches the user type and condition name only: ``user with
    # in_network`` is valid on ``viewer`` because ``user:* with in_network`` is allowed there.
    engine, index = build(MODEL, tup("document:1#viewer@user:anne", "in_network", NET))
    assert engine.check(
        index, "document:1", "viewer", "user:anne", context={"ip": "10.0.0.1"}
    ).allowed


def test_explain_reports_a_condition_error_instead_of_raising() -> None:
    engine, index = build(MODEL, tup("document:1#viewer@user:anne", "grant", GRANT))
    explanation = engine.explain(index, "document:1", "viewer", "user:anne")
    assert not explanation.allowed
    assert explanation.root.outcome == "error"
    leaf = explanation.root.children[0].children[0].children[0]
    assert leaf.tuple_key == "document:1#viewer@user:anne"
    assert "missing context parameters" in leaf.reason
    fine = engine.explain(
        index, "document:1", "viewer", "user:anne", context={"current_time": "2026-01-01T00:30:00Z"}
    )
    assert fine.allowed
    assert fine.path() == ["document:1#viewer@user:anne"]
