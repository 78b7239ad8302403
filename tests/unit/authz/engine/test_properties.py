"""Properties over random models and tuples: lists agree with Check, grants are monotone."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.authz.tuples import MemoryTupleIndex

from .strategies import DOCS, FOLDERS, GROUPS, USERS, Scenario, queries, scenarios

PROFILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(scenarios())
def test_list_objects_is_exactly_the_objects_that_check_allowed(scenario: Scenario) -> None:
    engine = scenario.engine()
    index = MemoryTupleIndex(scenario.tuples)
    for type_, objects in (("doc", DOCS), ("folder", FOLDERS), ("group", GROUPS)):
        for relation in scenario.relations[type_]:
            if relation == "parent":
                continue
            for user in (*USERS, "user:*", "group:g1#member"):
                listed = set(engine.list_objects(index, type_, relation, user).items)
                for obj in listed:
                    assert engine.check(index, obj, relation, user).allowed, (obj, relation, user)
                allowed = {o for o in objects if engine.check(index, o, relation, user).allowed}
                assert listed == allowed, (type_, relation, user)


@PROFILE
@given(scenarios())
def test_list_users_is_exactly_the_users_that_check_allowed(scenario: Scenario) -> None:
    engine = scenario.engine()
    index = MemoryTupleIndex(scenario.tuples)
    for obj, relation, _ in {(o, r, "") for o, r, _ in queries(scenario)}:
        listed = set(engine.list_users(index, obj, relation, ["user"]).items)
        for user in listed:
            assert engine.check(index, obj, relation, user).allowed, (obj, relation, user)
        for user in (*USERS, "user:*"):
            if engine.check(index, obj, relation, user).allowed and user not in listed:
                # a user granted only through the wildcard is listed as ``user:*``
                assert "user:*" in listed, (obj, relation, user)


@PROFILE
@given(scenarios(exclusion=False), st.data())
def test_adding_a_tuple_never_removes_access_without_but_not(
    scenario: Scenario, data: st.DataObject
) -> None:
    engine = scenario.engine()
    if not scenario.tuples:
        return
    extra = data.draw(st.sampled_from(scenario.tuples))
    before = MemoryTupleIndex(t for t in scenario.tuples if t != extra)
    after = MemoryTupleIndex(scenario.tuples)
    for obj, relation, user in queries(scenario):
        if engine.check(before, obj, relation, user).allowed:
            assert engine.check(after, obj, relation, user).allowed, (extra, obj, relation, user)


@PROFILE
@given(scenarios())
def test_contextual_tuples_answer_like_stored_tuples(scenario: Scenario) -> None:
    engine = scenario.engine()
    stored = MemoryTupleIndex(scenario.tuples)
    empty = MemoryTupleIndex()
    for obj, relation, user in queries(scenario):
        expected = engine.check(stored, obj, relation, user).allowed
        got = engine.check(empty, obj, relation, user, contextual_tuples=scenario.tuples).allowed
        assert got == expected, (obj, relation, user)


@PROFILE
@given(scenarios())
def test_explain_agrees_with_check(scenario: Scenario) -> None:
    engine = scenario.engine()
    index = MemoryTupleIndex(scenario.tuples)
    for obj, relation, user in queries(scenario):
        expected = engine.check(index, obj, relation, user).allowed
        assert engine.explain(index, obj, relation, user).allowed == expected
