"""ListUsers computes OpenFGA's sets: an intersection or ``but not`` is applied to the users
each operand reaches (with OpenFGA's wildcard rules), so a user whose only access is a
wildcard is not listed individually because a path through ``and`` found her."""

from __future__ import annotations

import pytest

from bastion.authz.errors import ResolutionTooComplex
from bastion.authz.tuples import MemoryTupleIndex, Tuple

from .helpers import build

# Found by the differential test against OpenFGA (tests/unit/authz/engine/test_differential.py).
INTERSECTION_MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define parent: [folder]
    define f0: [group#member, user, user:*]
    define f1: [group#member, user, user:*] and f0
type doc
  relations
    define parent: [folder]
    define d0: [group#member]
    define d1: f1 from parent or d0
    define d2: [group#member, user:*] or d1
    define d3: [user] or d0
"""


def test_a_user_reached_only_through_one_operand_of_an_and_is_not_listed() -> None:
    engine, index = build(
        INTERSECTION_MODEL,
        "group:g1#member@user:anne",
        "group:g1#member@user:bob",
        "doc:d2#parent@folder:f2",
        "folder:f2#f0@user:anne",
        "doc:d2#d2@user:*",
    )
    # f1 on folder:f2 is [] and {anne} = {}: anne's only access to doc:d2 is user:*.
    assert engine.list_users(index, "doc:d2", "d2", ["user"]).items == ("user:*",)
    assert engine.check(index, "doc:d2", "d2", "user:anne").allowed


def test_the_intersection_keeps_users_of_both_sides() -> None:
    engine, index = build(
        INTERSECTION_MODEL,
        "doc:d2#parent@folder:f2",
        "folder:f2#f0@user:anne",
        "folder:f2#f1@user:anne",
        "folder:f2#f1@user:bob",
    )
    assert engine.list_users(index, "doc:d2", "d2", ["user"]).items == ("user:anne",)
    assert engine.list_users(index, "folder:f2", "f1", ["user"]).items == ("user:anne",)


def test_a_wildcard_on_one_side_of_an_and_keeps_the_other_sides_users() -> None:
    engine, index = build(
        INTERSECTION_MODEL,
        "folder:f2#f0@user:*",
        "folder:f2#f1@user:anne",
        "folder:f3#f0@user:*",
        "folder:f3#f1@user:*",
        "folder:f4#f0@user:bob",
        "folder:f4#f1@user:*",
        "folder:f4#f1@user:anne",
    )
    # user:* only when both sides have it; a user when each side has her or the wildcard.
    assert engine.list_users(index, "folder:f2", "f1", ["user"]).items == ("user:anne",)
    assert engine.list_users(index, "folder:f3", "f1", ["user"]).items == ("user:*",)
    assert engine.list_users(index, "folder:f4", "f1", ["user"]).items == ("user:bob",)


EXCLUSION_MODEL = """
model
  schema 1.1
type user
type doc
  relations
    define allowed: [user, user:*]
    define blocked: [user, user:*]
    define viewer: [user:*] or (allowed but not blocked)
    define editor: allowed but not blocked
"""


def test_a_user_subtracted_by_but_not_is_not_listed_beside_a_wildcard() -> None:
    engine, index = build(
        EXCLUSION_MODEL,
        "doc:1#viewer@user:*",
        "doc:1#allowed@user:anne",
        "doc:1#blocked@user:anne",
        "doc:1#allowed@user:bob",
    )
    # (allowed but not blocked) = {bob}: anne's only access is the wildcard.
    assert engine.list_users(index, "doc:1", "viewer", ["user"]).items == ("user:*", "user:bob")


def test_a_subtracted_wildcard_removes_every_user_of_its_type() -> None:
    engine, index = build(
        EXCLUSION_MODEL,
        "doc:1#allowed@user:anne",
        "doc:1#allowed@user:*",
        "doc:1#blocked@user:*",
        "doc:2#allowed@user:anne",
        "doc:2#allowed@user:*",
        "doc:2#blocked@user:anne",
    )
    assert engine.list_users(index, "doc:1", "editor", ["user"]).items == ()
    assert engine.list_users(index, "doc:2", "editor", ["user"]).items == ("user:*",)


NESTED_EXCLUSION_MODEL = """
model
  schema 1.1
type user
type folder
  relations
    define f0: [user]
    define f1: f0 but not f0
type doc
  relations
    define parent: [folder]
    define d0: [user, user:*]
    define d2: d0 but not f1 from parent
"""


def test_a_user_excluded_inside_the_subtracted_side_is_listed_beside_the_wildcard() -> None:
    engine, index = build(
        NESTED_EXCLUSION_MODEL,
        "doc:1#d0@user:*",
        "doc:1#parent@folder:a",
        "folder:a#f0@user:carl",
        "doc:2#d0@user:anne",
        "doc:2#parent@folder:a",
    )
    # OpenFGA's expandExclusion: carl is found *without* f1 (f0 but not f0), so "d0 but not
    # f1" gives him back with the relationship; Check agrees (through user:*).
    assert engine.list_users(index, "doc:1", "d2", ["user"]).items == ("user:*", "user:carl")
    assert engine.list_users(index, "doc:2", "d2", ["user"]).items == ("user:anne",)


def _chain(length: int) -> tuple[str, list[str]]:
    relations = "\n".join(
        f"    define r{i}: [document#r{i - 1}]" if i else "    define r0: [user]"
        for i in range(length)
    )
    model = f"model\n  schema 1.1\ntype user\ntype document\n  relations\n{relations}\n"
    tuples = ["document:1#r0@user:anne"] + [
        f"document:1#r{i}@document:1#r{i - 1}" for i in range(1, length)
    ]
    return model, tuples


def test_list_users_keeps_the_depth_limit() -> None:
    model, tuples = _chain(30)
    engine, index = build(model, *tuples)
    assert engine.list_users(index, "document:1", "r24", ["user"]).items == ("user:anne",)
    with pytest.raises(ResolutionTooComplex) as caught:
        engine.list_users(index, "document:1", "r25", ["user"])
    assert caught.value.openfga_code == 2002


def test_a_node_remembered_at_a_shallow_depth_still_counts_its_depth_below() -> None:
    # r29 reaches r5 first at depth 1 and then through the chain at depth 24: that path goes
    # 24 + 5 deep, which OpenFGA refuses even though r5 was already expanded.
    model, tuples = _chain(30)
    model = model.replace(
        "define r29: [document#r28]", "define r29: r5 or r28\n    define r30: [document#r28]"
    )
    engine, index = build(model, *tuples[:-1], "document:1#r30@document:1#r28")
    assert engine.list_users(index, "document:1", "r24", ["user"]).items == ("user:anne",)
    with pytest.raises(ResolutionTooComplex):
        engine.list_users(index, "document:1", "r29", ["user"])


def _diamonds(levels: int) -> tuple[str, list[str]]:
    """l{i}:a and l{i}:b each hold l{i+1}:a and l{i+1}:b: 2**levels paths, few nodes."""
    lines = ["model", "  schema 1.1", "type user"]
    for i in range(levels + 1):
        refs = f"user, l{i + 1}#member" if i < levels else "user"
        lines += [f"type l{i}", "  relations", f"    define member: [{refs}]"]
    tuples = [
        f"l{i}:{x}#member@l{i + 1}:{y}#member" for i in range(levels) for x in "ab" for y in "ab"
    ]
    return "\n".join(lines) + "\n", [*tuples, f"l{levels}:b#member@user:anne"]


class CountingSource(MemoryTupleIndex):
    """Counts the reads of a relation's tuples: the work a listing does."""

    __slots__ = ("reads",)

    def __init__(self, index: MemoryTupleIndex) -> None:
        super().__init__(index)
        self.reads = 0

    def by_object(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        self.reads += 1
        return super().by_object(object, relation)


def test_diamond_shaped_usersets_do_not_make_list_users_exponential() -> None:
    model, tuples = _diamonds(20)  # a million paths, 42 nodes
    engine, index = build(model, *tuples)
    source = CountingSource(index)
    assert engine.list_users(source, "l0:a", "member", ["user"]).items == ("user:anne",)
    assert source.reads <= 2 * 21 + 5  # each node read once (and the confirming check)
