"""Nesting relations (``define member: [user, team#member]``) answered from the user's side:
the same answers, cycles, depth-limit errors and conditions as the downward walk."""

from __future__ import annotations

import random

import pytest

from bastion.authz.engine import Engine
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
    define blocked: [user]
    define allowed: member but not blocked
type document
  relations
    define viewer: [team#member] or viewer_2
    define viewer_2: viewer_3
    define viewer_3: viewer_4
    define viewer_4: [team#member]
    define open: viewer but not closed
    define closed: [team#member]
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
    """The same tuples through another source type: the downward walk answers."""
    return OverlayTupleSource(index, MemoryTupleIndex())


def _chain(length: int) -> list[Tuple]:
    return [Tuple(f"team:{i}", "member", f"team:{i + 1}#member") for i in range(length)]


def test_a_denied_check_reads_the_users_side_not_every_nested_team(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tuples = [Tuple("team:root", "member", f"team:{i}#member") for i in range(200)]
    tuples += [Tuple(f"team:{i}", "member", f"user:{i}") for i in range(200)]
    index = MemoryTupleIndex(tuples)
    engine = _engine()
    assert engine.check(index, "team:root", "member", "user:7").allowed
    reads: list[str] = []
    original = MemoryTupleIndex.usersets

    def counted(self: MemoryTupleIndex, obj: str, relation: str) -> tuple[Tuple, ...]:
        reads.append(obj)
        return original(self, obj, relation)

    monkeypatch.setattr(MemoryTupleIndex, "usersets", counted)
    assert not engine.check(index, "team:root", "member", "user:outsider").allowed
    assert reads == []  # the downward walk reads the userset tuples of all 201 teams
    assert engine.check(index, "team:root", "member", "user:150").allowed
    index.add(Tuple("team:199", "member", "team:new#member"))
    index.add(Tuple("team:new", "member", "user:late"))
    assert engine.check(index, "team:root", "member", "user:late").allowed  # graph re-derived


def test_a_chain_past_the_depth_limit_is_still_an_error() -> None:
    index = MemoryTupleIndex(_chain(30))
    engine = _engine()
    with pytest.raises(ResolutionTooComplex):
        engine.check(index, "team:0", "member", "user:nobody")
    index.add(Tuple("team:30", "member", "user:deep"))
    with pytest.raises(ResolutionTooComplex):
        engine.check(index, "team:0", "member", "user:deep")
    assert engine.check(index, "team:20", "member", "user:deep").allowed  # within the limit
    assert not engine.check(index, "team:20", "member", "user:nobody").allowed


def test_a_cycle_is_still_reported_and_still_denies_through_but_not() -> None:
    index = MemoryTupleIndex(
        [
            Tuple("team:a", "member", "team:b#member"),
            Tuple("team:b", "member", "team:a#member"),
            Tuple("team:c", "member", "user:anne"),
            Tuple("document:1", "viewer", "team:c#member"),
            Tuple("document:1", "closed", "team:a#member"),
        ]
    )
    engine = _engine()
    result = engine.check(index, "team:a", "member", "user:anne")
    assert (result.allowed, result.cycle_detected) == (False, True)
    # "closed" meets the cycle: OpenFGA's but-not then denies rather than allowing.
    assert _answer(engine, index, "document:1", "open", "user:anne") == _answer(
        engine, _downward(index), "document:1", "open", "user:anne"
    )


def test_conditioned_tuples_the_model_does_not_allow_never_grant() -> None:
    index = MemoryTupleIndex(
        [
            Tuple("team:a", "member", "user:anne", "cond", {"x": 1}),
            Tuple("team:b", "member", "team:a#member", "cond", {"x": 1}),
            Tuple("team:c", "member", "user:bob"),
        ]
    )
    engine = _engine()
    assert not engine.check(index, "team:a", "member", "user:anne").allowed
    assert not engine.check(index, "team:b", "member", "user:bob").allowed
    assert engine.check(index, "team:c", "member", "user:bob").allowed


@pytest.mark.parametrize("seed", range(40))
def test_random_team_graphs_answer_as_the_downward_walk(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    teams = rng.randrange(3, 40)
    users = [f"user:{u}" for u in range(8)]
    tuples: set[Tuple] = set()
    for _ in range(rng.randrange(teams * 2)):
        a, b = rng.randrange(teams), rng.randrange(teams)
        if rng.random() < 0.8 and a >= b:
            a, b = b, a + 1  # mostly downward edges, sometimes a cycle
        if a != b:
            tuples.add(Tuple(f"team:{a}", "member", f"team:{b}#member"))
    if rng.random() < 0.5:
        tuples.update(_chain(rng.randrange(20, 30)))
    for user in users:
        for _ in range(rng.randrange(3)):
            tuples.add(Tuple(f"team:{rng.randrange(teams)}", "member", user))
    for d in range(5):
        for relation in ("viewer", "viewer_4", "closed"):
            tuples.add(Tuple(f"document:{d}", relation, f"team:{rng.randrange(teams)}#member"))
        tuples.add(Tuple(f"team:{d}", "blocked", rng.choice(users)))
    index = MemoryTupleIndex(tuples)
    engine = _engine()
    checks = [(f"team:{t}", r) for t in range(teams) for r in ("member", "allowed")]
    checks += [(f"document:{d}", r) for d in range(5) for r in ("viewer", "open", "closed")]
    for obj, relation in checks:
        for user in [*users, "team:1#member"]:
            assert _answer(engine, index, obj, relation, user) == _answer(
                engine, _downward(index), obj, relation, user
            ), (obj, relation, user)
