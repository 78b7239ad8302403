"""Check: every rewrite, usersets, wildcards, cycles, the depth limit and request validation."""

from __future__ import annotations

import pytest

from bastion.authz.engine import MAX_CONTEXTUAL_TUPLES, CheckRequest, Engine
from bastion.authz.errors import InvalidTuple, ResolutionTooComplex, ValidationError
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, Tuple

from .helpers import build, tup

DOCS = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define owner: [user]
    define viewer: [user, group#member] or owner
type document
  relations
    define parent: [folder]
    define blocked: [user, group#member]
    define owner: [user]
    define editor: [user, group#member] or owner
    define viewer: ([user, user:*, group#member] or editor or viewer from parent) but not blocked
    define approver: [user] and editor
"""


def allowed(engine: Engine, index: MemoryTupleIndex, obj: str, rel: str, user: str) -> bool:
    return engine.check(index, obj, rel, user).allowed


def test_direct_computed_and_tuple_to_userset() -> None:
    engine, index = build(
        DOCS,
        "document:1#owner@user:anne",
        "document:1#parent@folder:a",
        "folder:a#owner@user:bob",
    )
    assert allowed(engine, index, "document:1", "owner", "user:anne")
    assert allowed(engine, index, "document:1", "editor", "user:anne")  # computed
    assert allowed(engine, index, "document:1", "viewer", "user:anne")  # nested computed
    assert allowed(engine, index, "document:1", "viewer", "user:bob")  # viewer from parent
    assert not allowed(engine, index, "document:1", "editor", "user:bob")
    assert not allowed(engine, index, "document:2", "viewer", "user:anne")


def test_usersets_nest_and_wildcards_grant_everyone_of_the_type() -> None:
    engine, index = build(
        DOCS,
        "group:eng#member@user:anne",
        "group:all#member@group:eng#member",
        "document:1#editor@group:all#member",
        "group:public#member@user:*",
        "document:2#viewer@user:*",
    )
    assert allowed(engine, index, "document:1", "editor", "user:anne")
    assert allowed(engine, index, "document:1", "editor", "group:eng#member")
    assert not allowed(engine, index, "document:1", "editor", "user:bob")
    assert allowed(engine, index, "group:public", "member", "user:zed")
    assert allowed(engine, index, "document:2", "viewer", "user:zed")
    assert allowed(engine, index, "document:2", "viewer", "user:*")
    assert not allowed(engine, index, "document:1", "viewer", "user:*")


def test_a_userset_holds_itself() -> None:
    engine, index = build(DOCS)
    assert allowed(engine, index, "group:x", "member", "group:x#member")
    assert allowed(engine, index, "document:1", "editor", "document:1#owner")
    assert not allowed(engine, index, "group:y", "member", "group:x#member")


def test_but_not_and_intersection() -> None:
    engine, index = build(
        DOCS,
        "document:1#viewer@user:*",
        "document:1#blocked@user:mallory",
        "document:1#approver@user:anne",
        "document:1#approver@user:carl",
        "document:1#editor@user:anne",
    )
    assert allowed(engine, index, "document:1", "viewer", "user:anne")
    assert not allowed(engine, index, "document:1", "viewer", "user:mallory")
    assert allowed(engine, index, "document:1", "approver", "user:anne")
    assert not allowed(engine, index, "document:1", "approver", "user:carl")  # not an editor


def test_cycles_are_not_allowed_never_an_error() -> None:
    engine, index = build(
        DOCS,
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",
    )
    result = engine.check(index, "group:a", "member", "user:anne")
    assert not result.allowed
    assert result.cycle_detected
    assert "cycle" in result.reason


def test_a_cycle_in_the_subtracted_relation_denies() -> None:
    # OpenFGA: a cycle on the ``but not`` side makes the difference false.
    model = """
model
  schema 1.1
type user
type document
  relations
    define a: [user, document#b]
    define b: [user, document#a]
    define viewer: [user] but not a
"""
    engine, index = build(
        model,
        "document:1#viewer@user:anne",
        "document:1#a@document:1#b",
        "document:1#b@document:1#a",
    )
    assert not engine.check(index, "document:1", "viewer", "user:anne").allowed


def test_the_resolution_depth_limit_is_error_2002() -> None:
    relations = "\n".join(
        f"    define r{i}: [document#r{i - 1}]" if i else "    define r0: [user]" for i in range(30)
    )
    model = f"model\n  schema 1.1\ntype user\ntype document\n  relations\n{relations}\n"
    tuples = ["document:1#r0@user:anne"] + [
        f"document:1#r{i}@document:1#r{i - 1}" for i in range(1, 30)
    ]
    engine, index = build(model, *tuples)
    assert allowed(engine, index, "document:1", "r24", "user:anne")
    with pytest.raises(ResolutionTooComplex) as caught:
        engine.check(index, "document:1", "r25", "user:anne")
    assert caught.value.openfga_code == 2002


@pytest.mark.parametrize(
    ("obj", "relation", "user"),
    [
        ("document:1", "viewer", "a:b:c"),  # malformed user
        ("document:1", "viewer", "robot:1"),  # unknown user type
        ("document:1", "viewer", "group:x#nope"),  # unknown userset relation
        ("document:1", "viewer", "group:*#member"),  # wildcard in a userset
        ("document:1", "nope", "user:anne"),  # unknown relation
        ("nope:1", "viewer", "user:anne"),  # unknown object type
        ("document", "viewer", "user:anne"),  # malformed object
        ("document:*", "viewer", "user:anne"),  # wildcard object
        ("document:1", "vi ewer", "user:anne"),  # malformed relation
    ],
)
def test_bad_check_requests_are_validation_errors(obj: str, relation: str, user: str) -> None:
    engine, index = build(DOCS)
    with pytest.raises(ValidationError) as caught:
        engine.check(index, obj, relation, user)
    assert caught.value.openfga_code == 2000


def test_contextual_tuples_grant_for_one_request_only() -> None:
    engine, index = build(DOCS, "group:eng#member@user:anne")
    extra = [tup("document:1#editor@group:eng#member")]
    assert engine.check(index, "document:1", "editor", "user:anne", contextual_tuples=extra).allowed
    assert not allowed(engine, index, "document:1", "editor", "user:anne")
    assert len(index) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "folder:x#blocked@user:anne",  # relation not on type
        "robot:x#viewer@user:anne",  # type not found
        "document:1#owner@user:*",  # wildcard not allowed here
        "document:1#owner@group:x#member",  # userset not allowed here
        "document:1#parent@folder:x#viewer",  # tupleset takes objects only
        "document:1#viewer@group:x#nope",  # undefined userset relation
    ],
)
def test_invalid_contextual_tuples_are_error_2027(bad: str) -> None:
    engine, index = build(DOCS)
    with pytest.raises(InvalidTuple) as caught:
        engine.check(index, "document:1", "viewer", "user:anne", contextual_tuples=[tup(bad)])
    assert caught.value.openfga_code == 2027


def test_too_many_contextual_tuples_are_refused() -> None:
    engine, index = build(DOCS)
    many = [tup(f"document:{i}#owner@user:anne") for i in range(MAX_CONTEXTUAL_TUPLES + 1)]
    with pytest.raises(ValidationError):
        engine.check(index, "document:1", "owner", "user:anne", contextual_tuples=many)


def test_tuples_invalid_under_a_newer_model_are_ignored() -> None:
    # Written under a model that allowed user:* on viewer; read under one that does not.
    old, index = build(DOCS, "document:1#viewer@user:*")
    assert allowed(old, index, "document:1", "viewer", "user:anne")
    newer = Engine(
        parse_dsl(DOCS.replace("define viewer: ([user, user:*,", "define viewer: ([user,"))
    )
    assert not allowed(newer, index, "document:1", "viewer", "user:anne")


def test_batch_check_answers_each_item_with_a_result_or_its_error() -> None:
    engine, index = build(DOCS, "document:1#owner@user:anne")
    items = engine.batch_check(
        index,
        [
            CheckRequest("document:1", "owner", "user:anne", correlation_id="a"),
            CheckRequest("document:1", "owner", "user:bob", correlation_id="b"),
            CheckRequest("document:1", "nope", "user:bob", correlation_id="c"),
        ],
    )
    assert [i.correlation_id for i in items] == ["a", "b", "c"]
    assert items[0].result is not None
    assert items[0].result.allowed
    assert items[1].result is not None
    assert not items[1].result.allowed
    assert items[2].result is None
    assert isinstance(items[2].error, ValidationError)


def test_engine_refuses_models_with_dangling_references() -> None:
    model = {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "document", "relations": {"viewer": {"computedUserset": {"relation": "nope"}}}}
        ],
    }
    with pytest.raises(ValidationError):
        Engine(model)


@pytest.mark.parametrize(
    "bad",
    [
        "robot:x#viewer@user:anne",
        "document:1#owner@user:*",
        "document:1#parent@folder:x#viewer",
        "group:x#member@group:x#member",  # implicit: OpenFGA's Write refuses it
    ],
)
def test_write_validation_answers_2000_like_openfga_write(bad: str) -> None:
    engine, _ = build(DOCS)
    with pytest.raises(ValidationError) as caught:
        engine.validate_write(tup(bad))
    assert caught.value.openfga_code == 2000


def test_a_valid_write_passes() -> None:
    engine, _ = build(DOCS)
    engine.validate_write(tup("group:x#member@group:y#member"))
    engine.validate_write(tup("document:1#viewer@user:*"))


def test_decisions_carry_a_reason() -> None:
    engine, index = build(DOCS, "document:1#owner@user:anne")
    assert engine.check(index, "document:1", "owner", "user:anne").reason.startswith("a relation")
    assert engine.check(index, "document:1", "owner", "user:bob").reason.startswith("no relation")


def _diamonds(levels: int) -> tuple[str, list[str]]:
    """Types l0..lN, each l{i}:a and l{i}:b holding both l{i+1}:a and l{i+1}:b: 2**N paths
    from the top to the bottom, through an acyclic relation graph."""
    lines = ["model", "  schema 1.1", "type user"]
    for i in range(levels + 1):
        refs = f"user, l{i + 1}#member" if i < levels else "user"
        lines += [f"type l{i}", "  relations", f"    define member: [{refs}]"]
    tuples = [
        f"l{i}:{x}#member@l{i + 1}:{y}#member" for i in range(levels) for x in "ab" for y in "ab"
    ]
    return "\n".join(lines) + "\n", tuples


class CountingSource(MemoryTupleIndex):
    """Counts the userset reads: the work a check does."""

    __slots__ = ("reads",)

    def __init__(self, index: MemoryTupleIndex) -> None:
        super().__init__(index)
        self.reads = 0

    def usersets(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        self.reads += 1
        return super().usersets(object, relation)


def test_diamond_shaped_usersets_do_not_make_a_check_exponential() -> None:
    model, tuples = _diamonds(20)  # a million paths without memoization, 42 nodes with it
    engine, index = build(model, *tuples)
    source = CountingSource(index)
    assert not engine.check(source, "l0:a", "member", "user:nobody").allowed
    assert source.reads <= 2 * 21  # each (object, relation) node read once
    source.add(tup("l20:b#member@user:anne"))
    assert engine.check(source, "l0:a", "member", "user:anne").allowed


def test_explain_stops_on_a_hostile_graph() -> None:
    model, tuples = _diamonds(20)
    engine, index = build(model, *tuples)
    with pytest.raises(ResolutionTooComplex):
        engine.explain(index, "l0:a", "member", "user:nobody")
