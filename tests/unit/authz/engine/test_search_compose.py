"""Search shapes composed from the shapes kept for the nodes below (``engine._search._shape``):
the same answers, cycles and depth-limit errors as the downward walk whatever was kept before
(upper folders first, documents first, random orders, writes in between), and the same shape
as one built from nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bastion.authz.engine import Engine, _search
from bastion.authz.engine._search import Plan, search
from bastion.authz.errors import AuthzError, ResolutionTooComplex
from bastion.authz.tuples import MemoryTupleIndex, Tuple

from .test_search import (
    _answer,
    _chain,
    _downward,
    _engine,
    _random_tuples,
    _random_write,
)


def _same_as_walk(
    engine: Engine, index: MemoryTupleIndex, obj: str, relation: str, user: str
) -> None:
    assert _answer(engine, index, obj, relation, user) == _answer(
        engine, _downward(index), obj, relation, user
    ), (obj, relation, user)


def _fresh_shape(plan: Plan, obj: str, index: MemoryTupleIndex) -> object:
    """The shape of ``obj#plan`` for users built with nothing kept (what was kept restored)."""
    kept = dict(index._derived)
    index._derived.clear()
    try:
        return _canonical(_search._shape(plan, obj, "user", index))
    finally:
        index._derived.clear()
        index._derived.update(kept)


def _kept_nodes(index: MemoryTupleIndex) -> dict[object, object]:
    return index._derived[_search._NODES]  # type: ignore[return-value]


def _canonical(shape: Any) -> object:
    if shape is None:
        return None
    directs, wilds, leaves, longest = shape
    assert len({id(d) for d in directs}) == len(directs)  # each tuple dict once
    return ({id(d) for d in directs}, {id(d) for d in wilds}, set(leaves), longest)


def _kept_shapes_match_fresh_ones(engine: Engine, index: MemoryTupleIndex) -> None:
    """Every shape kept for a user type ``user`` equals the one built from nothing."""
    nodes = index._derived.get(_search._NODES, {})
    for key, value in [*index._derived.items(), *nodes.items()]:  # type: ignore[union-attr]
        if isinstance(key, tuple) and len(key) == 3 and isinstance(key[0], Plan):
            plan, obj, user_type = key
            if user_type == "user" and value is not _search._SEEN:
                assert _canonical(value) == _fresh_shape(plan, obj, index), key


@pytest.mark.parametrize("seed", range(30))
def test_composed_shapes_answer_as_the_downward_walk_in_any_order_across_writes(
    seed: int,
) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    index = MemoryTupleIndex(_random_tuples(rng))
    engine = _engine()
    users = [*(f"user:{u}" for u in range(7)), "user:*", "team:1#member"]
    for _ in range(6):
        objects = sorted({t.object for t in index if t.object.startswith(("folder:", "document:"))})
        if rng.random() < 0.5:  # upper folders (low numbers are parents) first, or any order
            objects.sort(key=lambda o: (o.startswith("document:"), int(o.partition(":")[2])))
        else:
            rng.shuffle(objects)
        for obj in objects:
            for relation in ("viewer", "editor"):
                for user in users:
                    _same_as_walk(engine, index, obj, relation, user)
        _kept_shapes_match_fresh_ones(engine, index)
        _random_write(rng, index)


def _folder_tree() -> list[Tuple]:
    """folder:0 the root, folder:1..3 below it, folder:1x below folder:x, a document on each
    lower folder; a team grant at the root."""
    tuples = [Tuple("folder:0", "viewer", "team:top#member"), Tuple("team:top", "member", "user:t")]
    for f in range(1, 4):
        tuples.append(Tuple(f"folder:{f}", "parent", "folder:0"))
        for g in range(3):
            lower = f"folder:{f}{g}"
            tuples.append(Tuple(lower, "parent", f"folder:{f}"))
            tuples.append(Tuple(f"document:{f}{g}", "parent", lower))
    return tuples


def test_a_write_to_an_upper_folder_drops_every_document_composed_below_it() -> None:
    engine = _engine()
    index = MemoryTupleIndex(_folder_tree())
    documents = [f"document:{f}{g}" for f in range(1, 4) for g in range(3)]
    plan = engine._plans["document"]["viewer"]
    folder_viewer = engine._plans["folder"]["viewer"]
    for doc in documents:
        assert engine.check(index, doc, "viewer", "user:anne").allowed is False
        assert engine.check(index, doc, "viewer", "user:t").allowed is True
    assert isinstance(_kept_nodes(index)[(folder_viewer, "folder:0", "user")], tuple)
    assert all(isinstance(index._derived[(plan, d, "user")], tuple) for d in documents)
    index.add(Tuple("folder:0", "editor", "user:anne"))  # the root: every document below
    assert not index._derived
    for doc in documents:
        assert engine.check(index, doc, "viewer", "user:anne").allowed is True
    index.remove("folder:0", "viewer", "team:top#member")
    for doc in documents:
        assert engine.check(index, doc, "viewer", "user:t").allowed is False
        _same_as_walk(engine, index, doc, "viewer", "user:t")
    index.add(Tuple("team:top", "member", "team:inner#member"))  # a nesting write
    index.add(Tuple("folder:2", "viewer", "team:top#member"))
    index.add(Tuple("team:inner", "member", "user:i"))
    for doc in documents:
        assert engine.check(index, doc, "viewer", "user:i").allowed is doc.startswith("document:2")
    _kept_shapes_match_fresh_ones(engine, index)


def test_a_cycle_introduced_by_a_write_above_kept_shapes_is_answered_by_the_walk() -> None:
    engine = _engine()
    index = MemoryTupleIndex(_folder_tree())
    for doc in ("document:10", "document:21"):
        assert _answer(engine, index, doc, "viewer", "user:anne") == (False, False)
    index.add(Tuple("folder:0", "parent", "folder:10"))  # folder:10 -> 1 -> 0 -> 10
    for _ in range(2):
        for doc in ("document:10", "document:11", "document:21"):
            for user in ("user:anne", "user:t"):
                _same_as_walk(engine, index, doc, "viewer", user)
    assert _answer(engine, index, "document:10", "viewer", "user:anne") == (False, True)
    plan = engine._plans["document"]["viewer"]
    assert index._derived[(plan, "document:10", "user")] is None
    index.remove("folder:0", "parent", "folder:10")
    assert _answer(engine, index, "document:10", "viewer", "user:anne") == (False, False)


def test_a_kept_graph_below_a_cycle_stays_exact() -> None:
    """A cycle among upper folders reached from below a folder whose shape is kept: the
    shapes below the cycle are kept, the ones that reach it are not."""
    engine = _engine()
    index = MemoryTupleIndex(
        [
            *_chain(4),  # folder:0 -> 1 -> 2 -> 3 -> 4
            Tuple("folder:4", "parent", "folder:2"),  # 2 -> 3 -> 4 -> 2
            Tuple("folder:9", "parent", "folder:8"),
            Tuple("document:1", "parent", "folder:9"),
            Tuple("document:2", "parent", "folder:0"),
            Tuple("folder:8", "viewer", "user:anne"),
        ]
    )
    for _ in range(2):
        for obj in ("folder:9", "document:1", "folder:1", "document:2", "folder:3"):
            for user in ("user:anne", "user:bob"):
                _same_as_walk(engine, index, obj, "viewer", user)
    index.add(Tuple("folder:8", "parent", "folder:1"))  # folder:9 now reaches the cycle
    for _ in range(2):
        for obj in ("document:1", "folder:9", "document:2"):
            for user in ("user:anne", "user:bob"):
                _same_as_walk(engine, index, obj, "viewer", user)
    assert _answer(engine, index, "document:1", "viewer", "user:bob") == (False, True)


@pytest.mark.parametrize("length", range(19, 27))
@pytest.mark.parametrize("upper_first", [True, False])
def test_depth_exactly_at_the_limit_with_composed_shapes(length: int, upper_first: bool) -> None:
    """Chains around the depth limit, with a nested team at the top: the shapes of the upper
    folders kept first (or the document's built whole) give the walk's answers and errors."""
    engine = _engine()
    tuples = [
        *_chain(length),
        Tuple("document:1", "parent", "folder:0"),
        Tuple(f"folder:{length}", "viewer", "team:a#member"),
        Tuple("team:a", "member", "team:b#member"),
        Tuple("team:b", "member", "user:deep"),
        Tuple(f"folder:{length // 2}", "editor", "user:mid"),
    ]
    index = MemoryTupleIndex(tuples)
    order = [f"folder:{f}" for f in range(length, -1, -3)]
    if not upper_first:
        order.reverse()
    for _ in range(2):
        for obj in [*order, "document:1"]:
            for user in ("user:deep", "user:mid", "user:nobody"):
                _same_as_walk(engine, index, obj, "viewer", user)
    _kept_shapes_match_fresh_ones(engine, index)
    plan = engine._plans["document"]["viewer"]
    kept = index._derived.get((plan, "document:1", "user"))
    fresh = _fresh_shape(plan, "document:1", index)
    assert _canonical(kept) == fresh
    # The walk from the document: editor (1) then viewer up ``length + 1`` folders, then two
    # teams; the graph's longest path is what decides whether a flat shape is kept.
    if fresh is not None:
        assert fresh[3] < _search._LIMIT
        result = search(plan, "document:1", "user:nobody", "user", "user:*", index, {})
        assert result == 0


def test_a_chain_too_deep_below_a_kept_folder_is_an_error_from_every_document() -> None:
    engine = _engine()
    index = MemoryTupleIndex(
        [
            *_chain(30),
            Tuple("document:1", "parent", "folder:0"),
            Tuple("document:2", "parent", "folder:20"),
        ]
    )
    for _ in range(2):  # met twice: the folders' shapes kept
        assert _answer(engine, index, "document:2", "viewer", "user:x") == (False, False)
    folder_viewer = engine._plans["folder"]["viewer"]
    assert isinstance(_kept_nodes(index)[(folder_viewer, "folder:20", "user")], tuple)
    for _ in range(2):
        assert _answer(engine, index, "document:1", "viewer", "user:x") is ResolutionTooComplex
        _same_as_walk(engine, index, "document:2", "viewer", "user:x")
    assert index._derived[(engine._plans["document"]["viewer"], "document:1", "user")] is None


def test_composed_shapes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_search, "_SHAPE_LIMIT", 5)
    monkeypatch.setattr(_search, "_NODE_LIMIT", 3)
    engine = _engine()
    index = MemoryTupleIndex(_folder_tree())
    for _ in range(3):
        for f in range(1, 4):
            for g in range(3):
                for user in ("user:t", "user:nobody"):
                    _same_as_walk(engine, index, f"document:{f}{g}", "viewer", user)
                    assert len(index._derived) <= 5
                    assert len(index._derived.get(_search._NODES, ())) <= 3  # type: ignore[arg-type]


def test_contextual_tuples_never_use_or_keep_composed_shapes() -> None:
    engine = _engine()
    index = MemoryTupleIndex(_folder_tree())
    assert engine.check(index, "document:10", "viewer", "user:anne").allowed is False
    kept = dict(index._derived)
    granting = [Tuple("folder:1", "viewer", "user:anne")]
    result = engine.check(index, "document:10", "viewer", "user:anne", contextual_tuples=granting)
    assert result.allowed is True
    assert index._derived == kept
    assert engine.check(index, "document:10", "viewer", "user:anne").allowed is False
    with pytest.raises(AuthzError):
        engine.check(index, "document:10", "viewer", "nope:anne")
