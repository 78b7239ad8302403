"""A whole check answered by one flat search (``engine._search``) over folder trees: the same
answers, cycles, depth-limit errors and conditions as the downward walk, which answers for any
other source type (compared here through an overlay with no extra tuples)."""

from __future__ import annotations

import random

import pytest

from bastion.authz.engine import Engine, _search
from bastion.authz.engine._search import UNSURE, search
from bastion.authz.errors import AuthzError, ResolutionTooComplex
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, OverlayTupleSource, Tuple

MODEL = """
model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type organization
  relations
    define admin: [user]
    define member: [user, team#member]
type folder
  relations
    define org: [organization]
    define parent: [folder]
    define editor: [user, team#member] or editor from parent or admin from org
    define viewer: [user, team#member, user:*] or editor or viewer from parent or member from org
type document
  relations
    define parent: [folder, document]
    define owner: [user]
    define editor: [user, team#member] or owner or editor from parent
    define viewer: [user, team#member, user:*] or editor or viewer from parent
    define blocked: [user]
    define open: viewer but not blocked
"""


def _engine() -> Engine:
    return Engine(parse_dsl(MODEL))


def _answer(engine: Engine, source: object, obj: str, relation: str, user: str) -> object:
    try:
        result = engine.check(source, obj, relation, user)  # type: ignore[arg-type]
    except AuthzError as error:
        return type(error)
    return (result.allowed, result.cycle_detected)


def _downward(index: MemoryTupleIndex) -> OverlayTupleSource:
    return OverlayTupleSource(index, MemoryTupleIndex())


def _searched(engine: Engine, index: MemoryTupleIndex, obj: str, relation: str, user: str) -> int:
    otype, user_type = obj.partition(":")[0], user.partition(":")[0]
    plan = engine._plans[otype][relation]
    return search(plan, obj, user, user_type, user_type + ":*", index, {})


def _chain(length: int) -> list[Tuple]:
    return [Tuple(f"folder:{i}", "parent", f"folder:{i + 1}") for i in range(length)]


def test_the_search_answers_a_folder_chain_and_leaves_the_rest_to_the_walk() -> None:
    engine = _engine()
    assert "open" not in engine._plans["document"]  # a difference: the walk only
    index = MemoryTupleIndex(
        [
            *_chain(5),
            Tuple("document:1", "parent", "folder:0"),
            Tuple("folder:5", "viewer", "team:t#member"),
            Tuple("team:t", "member", "user:anne"),
            Tuple("folder:3", "editor", "user:bob"),
        ]
    )
    assert _searched(engine, index, "document:1", "viewer", "user:anne") == 1
    assert _searched(engine, index, "document:1", "viewer", "user:bob") == 1
    assert _searched(engine, index, "document:1", "editor", "user:anne") == 0
    assert _searched(engine, index, "document:1", "viewer", "user:nobody") == 0
    index.add(Tuple("folder:5", "parent", "folder:0"))  # a cycle: the walk must answer
    assert _searched(engine, index, "document:1", "viewer", "user:nobody") == UNSURE
    result = engine.check(index, "document:1", "viewer", "user:nobody")
    assert (result.allowed, result.cycle_detected) == (False, True)
    assert engine.check(index, "document:1", "viewer", "user:anne").allowed


def test_a_chain_past_the_depth_limit_is_still_an_error() -> None:
    engine = _engine()
    index = MemoryTupleIndex([*_chain(30), Tuple("document:1", "parent", "folder:0")])
    assert _searched(engine, index, "document:1", "viewer", "user:nobody") == UNSURE
    with pytest.raises(ResolutionTooComplex):
        engine.check(index, "document:1", "viewer", "user:nobody")
    index.add(Tuple("folder:2", "editor", "user:near"))
    assert engine.check(index, "document:1", "viewer", "user:near").allowed  # a short path
    index.add(Tuple("folder:28", "editor", "user:far"))
    with pytest.raises(ResolutionTooComplex):
        engine.check(index, "document:1", "viewer", "user:far")


def test_nested_teams_below_a_chain_count_towards_the_depth_limit() -> None:
    engine = _engine()
    teams = [Tuple(f"team:{i}", "member", f"team:{i + 1}#member") for i in range(12)]
    index = MemoryTupleIndex(
        [
            *_chain(12),
            *teams,
            Tuple("document:1", "parent", "folder:0"),
            Tuple("folder:12", "viewer", "team:0#member"),
        ]
    )
    # The walk goes 14 folders deep, then 13 teams: 2002 although no path is 25 folders long.
    assert _searched(engine, index, "document:1", "viewer", "user:nobody") == UNSURE
    with pytest.raises(ResolutionTooComplex):
        engine.check(index, "document:1", "viewer", "user:nobody")
    assert not engine.check(index, "folder:10", "viewer", "user:nobody").allowed
    assert _searched(engine, index, "folder:10", "viewer", "user:nobody") == 0


def test_conditioned_tuples_the_model_does_not_allow_never_grant() -> None:
    engine = _engine()
    index = MemoryTupleIndex(
        [
            Tuple("document:1", "parent", "folder:0", "cond", {"x": 1}),
            Tuple("folder:0", "viewer", "user:anne"),
            Tuple("document:1", "viewer", "user:bob", "cond", {"x": 1}),
        ]
    )
    assert _searched(engine, index, "document:1", "viewer", "user:anne") == 0
    assert _searched(engine, index, "document:1", "viewer", "user:bob") == 0


def _random_tuples(rng: random.Random) -> set[Tuple]:  # noqa: PLR0912 - test data
    folders = rng.randrange(3, 40)
    teams = rng.randrange(2, 12)
    users = [f"user:{u}" for u in range(6)]
    tuples: set[Tuple] = set()
    for f in range(1, folders):
        parent = rng.randrange(f)
        if rng.random() < 0.05:
            parent = rng.randrange(f, folders)  # sometimes a cycle
        tuples.add(Tuple(f"folder:{f}", "parent", f"folder:{parent}"))
        if rng.random() < 0.1:
            tuples.add(Tuple(f"folder:{f}", "parent", f"folder:{rng.randrange(folders)}"))
    if rng.random() < 0.3:
        tuples.update(Tuple(f"folder:{100 + i}", "parent", f"folder:{101 + i}") for i in range(30))
        tuples.add(Tuple(f"folder:{rng.randrange(folders)}", "parent", "folder:100"))
    if rng.random() < 0.3:
        depth = rng.randrange(5, 15)
        tuples.update(Tuple(f"team:{a}", "member", f"team:{a + 1}#member") for a in range(depth))
    for a in range(teams):
        if rng.random() < 0.5:
            b = rng.randrange(teams)
            if a != b and (a < b or rng.random() < 0.2):
                tuples.add(Tuple(f"team:{a}", "member", f"team:{b}#member"))
    for user in users:
        for _ in range(rng.randrange(3)):
            tuples.add(Tuple(f"team:{rng.randrange(teams)}", "member", user))
    tuples.add(Tuple("folder:0", "org", "organization:0"))
    tuples.add(Tuple("organization:0", "admin", rng.choice(users)))
    tuples.add(Tuple("organization:0", "member", f"team:{rng.randrange(teams)}#member"))
    for f in range(folders):
        for relation in ("viewer", "editor"):
            roll = rng.random()
            if roll < 0.15:
                tuples.add(Tuple(f"folder:{f}", relation, rng.choice(users)))
            elif roll < 0.3:
                tuples.add(Tuple(f"folder:{f}", relation, f"team:{rng.randrange(teams)}#member"))
            elif roll < 0.33:
                tuples.add(Tuple(f"folder:{f}", relation, rng.choice(users), "cond", {"x": 1}))
        if rng.random() < 0.03:
            tuples.add(Tuple(f"folder:{f}", "viewer", "user:*"))
    for d in range(6):
        tuples.add(Tuple(f"document:{d}", "parent", f"folder:{rng.randrange(folders)}"))
        if rng.random() < 0.3:
            tuples.add(Tuple(f"document:{d}", "parent", f"document:{rng.randrange(6)}"))
        tuples.add(Tuple(f"document:{d}", "owner", rng.choice(users)))
        tuples.add(Tuple(f"document:{d}", "blocked", rng.choice(users)))
        if rng.random() < 0.5:
            tuples.add(Tuple(f"document:{d}", "viewer", f"team:{rng.randrange(teams)}#member"))
    return tuples


@pytest.mark.parametrize("seed", range(60))
def test_random_folder_trees_answer_as_the_downward_walk(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    index = MemoryTupleIndex(_random_tuples(rng))
    engine = _engine()
    objects = sorted({t.object for t in index if t.object.startswith(("folder:", "document:"))})
    users = [*(f"user:{u}" for u in range(7)), "user:*", "team:1#member", "folder:1#viewer"]
    for obj in objects:
        relations = ("viewer", "editor", "open") if obj.startswith("document:") else ("viewer",)
        for relation in relations:
            for user in users:
                assert _answer(engine, index, obj, relation, user) == _answer(
                    engine, _downward(index), obj, relation, user
                ), (obj, relation, user)


def _random_write(rng: random.Random, index: MemoryTupleIndex) -> None:
    """Add or remove one tuple, or empty the index (now and then)."""
    roll = rng.random()
    if roll < 0.02:
        index.clear()
    elif roll < 0.5 and len(index):
        index.discard(rng.choice(index.tuples()))
    else:
        index.add(rng.choice(sorted(_random_tuples(rng), key=str)))


@pytest.mark.parametrize("seed", range(24))
def test_kept_search_shapes_answer_as_the_downward_walk_across_writes(seed: int) -> None:
    """The shapes and closures the search keeps in the index answer as the walk, checked
    twice (the second from what the first kept), then again after each write."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    index = MemoryTupleIndex(_random_tuples(rng))
    engine = _engine()
    users = [*(f"user:{u}" for u in range(7)), "user:*", "team:1#member"]
    checks = [
        (obj, relation)
        for obj in (*(f"document:{d}" for d in range(6)), *(f"folder:{f}" for f in range(8)))
        for relation in ("viewer", "editor")
    ]
    for _ in range(8):
        # The walk's answers, once per state of the index (the walk keeps nothing: three times
        # would answer the same three times, and it is nearly all of this test's time).
        walk = {
            (obj, relation, user): _answer(engine, _downward(index), obj, relation, user)
            for obj, relation in checks
            for user in users
        }
        for _ in range(3):  # seen, kept flat, answered from the shape
            for (obj, relation, user), expected in walk.items():
                assert _answer(engine, index, obj, relation, user) == expected, (
                    obj,
                    relation,
                    user,
                )
        _random_write(rng, index)


def _allowed_thrice(engine: Engine, index: MemoryTupleIndex, obj: str, user: str) -> bool:
    """The check answered when the graph is first seen, kept flat, then read from its shape
    (the same answer each time)."""
    answers = {engine.check(index, obj, "viewer", user).allowed for _ in range(3)}
    assert len(answers) == 1
    return answers.pop()


def test_a_write_drops_what_the_search_kept() -> None:
    engine = _engine()
    key = (engine._plans["document"]["viewer"], "document:1", "user")
    index = MemoryTupleIndex(
        [
            *_chain(3),
            Tuple("document:1", "parent", "folder:0"),
            Tuple("folder:2", "viewer", "team:t#member"),
            Tuple("team:t", "member", "user:anne"),
        ]
    )
    assert _allowed_thrice(engine, index, "document:1", "user:bob") is False
    assert isinstance(index._derived[key], tuple)  # the flat shape
    assert index._derived[("team", "member", "user:bob")] == set()  # bob's closure
    index.add(Tuple("team:t", "member", "user:bob"))
    assert not index._derived
    assert _allowed_thrice(engine, index, "document:1", "user:bob") is True
    index.add(Tuple("team:t", "member", "user:bob"))  # already there: nothing changes
    assert isinstance(index._derived[key], tuple)
    index.remove("folder:1", "parent", "folder:2")
    assert not index._derived
    assert _allowed_thrice(engine, index, "document:1", "user:bob") is False
    assert _allowed_thrice(engine, index, "document:1", "user:anne") is False
    index.add(Tuple("folder:1", "viewer", "user:*"))
    assert _allowed_thrice(engine, index, "document:1", "user:anne") is True
    index.add(Tuple("folder:1", "viewer", "user:*", "cond", {"x": 1}))  # a new condition
    assert not index._derived
    assert _allowed_thrice(engine, index, "document:1", "user:anne") is False
    index.clear()
    assert not index._derived


def test_a_graph_with_a_cycle_or_past_the_limit_is_not_kept_flat() -> None:
    engine = _engine()
    plan = engine._plans["document"]["viewer"]
    cyclic = MemoryTupleIndex(
        [
            *_chain(3),
            Tuple("folder:3", "parent", "folder:0"),
            Tuple("document:1", "parent", "folder:0"),
        ]
    )
    deep = MemoryTupleIndex([*_chain(30), Tuple("document:1", "parent", "folder:0")])
    for index in (cyclic, deep):
        for _ in range(3):
            assert _answer(engine, index, "document:1", "viewer", "user:anne") == _answer(
                engine, _downward(index), "document:1", "viewer", "user:anne"
            )
        assert index._derived[(plan, "document:1", "user")] is None
    assert _answer(engine, deep, "document:1", "viewer", "user:anne") is ResolutionTooComplex


def test_what_the_search_keeps_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_search, "_SHAPE_LIMIT", 4)
    engine = _engine()
    index = MemoryTupleIndex([*_chain(2), Tuple("folder:2", "viewer", "user:anne")])
    for user in range(10):
        for f in range(3):
            assert engine.check(index, f"folder:{f}", "viewer", f"user:{user}").allowed is False
            assert len(index._derived) <= 4
    assert engine.check(index, "folder:0", "viewer", "user:anne").allowed is True


def test_kept_shapes_leave_contextual_tuples_and_bad_requests_to_the_general_path() -> None:
    engine = _engine()
    index = MemoryTupleIndex([*_chain(3), Tuple("document:1", "parent", "folder:0")])
    assert _allowed_thrice(engine, index, "document:1", "user:anne") is False
    granting = [Tuple("folder:3", "viewer", "user:anne")]
    cycle = [Tuple("folder:3", "parent", "folder:0")]
    deep = [Tuple(f"folder:{3 + i}", "parent", f"folder:{4 + i}") for i in range(30)]
    for _ in range(3):
        assert engine.check(
            index, "document:1", "viewer", "user:anne", contextual_tuples=granting
        ).allowed
        assert engine.check(index, "document:1", "viewer", "user:anne").allowed is False
        assert _answer_with(engine, index, cycle) == _answer_with(engine, _downward(index), cycle)
        with pytest.raises(ResolutionTooComplex):
            engine.check(index, "document:1", "viewer", "user:anne", contextual_tuples=deep)
        for obj, relation, user in (
            ("document:1", "nope", "user:anne"),
            ("nope:1", "viewer", "user:anne"),
            ("document:1", "viewer", "nope:anne"),
        ):
            with pytest.raises(AuthzError) as caught:
                engine.check(index, obj, relation, user)
            assert caught.value.code == "validation_error"
    assert not set(index) & {*granting, *cycle, *deep}


def _answer_with(engine: Engine, source: object, contextual: list[Tuple]) -> object:
    try:
        result = engine.check(
            source,  # type: ignore[arg-type]
            "document:1",
            "viewer",
            "user:anne",
            contextual_tuples=contextual,
        )
    except AuthzError as error:
        return type(error)
    return (result.allowed, result.cycle_detected)
