"""The in-memory tuple index: writes, the engine's read patterns, contextual overlays."""

from __future__ import annotations

import pytest

from bastion.authz.tuples import (
    MemoryTupleIndex,
    OverlayTupleSource,
    Tuple,
    TupleSource,
    object_type,
    split_userset,
)

ANNE = Tuple("document:1", "viewer", "user:anne")
ENG = Tuple("document:1", "viewer", "group:eng#member")
ALL = Tuple("document:1", "viewer", "user:*")
PARENT = Tuple("document:1", "parent", "folder:a")


def test_helpers_split_types_and_usersets() -> None:
    assert object_type("document:1") == "document"
    assert object_type("group:eng#member") == "group"
    assert split_userset("group:eng#member") == ("group:eng", "member")
    assert split_userset("user:anne") == ("user:anne", "")
    assert ENG.is_userset
    assert not ANNE.is_userset
    assert ALL.is_wildcard
    assert ENG.user_type == "group"
    assert ENG.object_type == "document"
    assert ENG.key == ("document:1", "viewer", "group:eng#member")
    assert str(ENG) == "document:1#viewer@group:eng#member"


def test_context_is_copied_read_only_and_tuple_hashable() -> None:
    ctx = {"ip": "10.0.0.1"}
    t = Tuple("document:1", "viewer", "user:anne", "in_network", ctx)
    ctx["ip"] = "evil"
    assert t.context is not None
    assert t.context["ip"] == "10.0.0.1"
    with pytest.raises(TypeError):
        t.context["ip"] = "x"  # type: ignore[index]
    assert t == Tuple("document:1", "viewer", "user:anne", "in_network", {"ip": "10.0.0.1"})
    assert len({t, t}) == 1


def test_reads_follow_the_engine_access_patterns() -> None:
    index = MemoryTupleIndex([ANNE, ENG, ALL, PARENT])
    assert isinstance(index, TupleSource)
    assert len(index) == 4
    assert index.get("document:1", "viewer", "user:anne") == ANNE
    assert index.get("document:1", "viewer", "user:bob") is None
    assert index.get("document:2", "viewer", "user:anne") is None
    assert index.get("document:1", "editor", "user:anne") is None
    assert set(index.by_object("document:1", "viewer")) == {ANNE, ENG, ALL}
    assert index.usersets("document:1", "viewer") == (ENG,)
    assert index.usersets("document:1", "parent") == ()
    assert index.by_user("document", "viewer", "user:anne") == (ANNE,)
    assert index.by_user("document", "viewer", "group:eng#member") == (ENG,)
    assert index.by_user("folder", "viewer", "user:anne") == ()
    assert index.objects_of_type("document") == ("document:1",)
    assert index.objects_of_type("folder") == ()
    assert set(index.relations_of("document:1")) == {"viewer", "parent"}
    assert set(index.tuples_of_object("document:1")) == {ANNE, ENG, ALL, PARENT}
    assert index.tuples_of_user("user:anne") == (ANNE,)
    assert set(index) == {ANNE, ENG, ALL, PARENT}
    assert ANNE in index


def test_add_is_idempotent_and_replaces_same_key() -> None:
    index = MemoryTupleIndex()
    assert not index
    assert index.add(ANNE)
    assert not index.add(ANNE)
    conditional = Tuple("document:1", "viewer", "user:anne", "cond", {"x": 1})
    assert index.add(conditional)
    assert len(index) == 1
    assert index.get("document:1", "viewer", "user:anne") == conditional
    assert ANNE not in index


def test_remove_prunes_every_index() -> None:
    index = MemoryTupleIndex([ANNE, ENG])
    assert index.remove("document:1", "viewer", "group:eng#member") == ENG
    assert index.remove("document:1", "viewer", "group:eng#member") is None
    assert index.remove("document:9", "viewer", "user:anne") is None
    assert index.usersets("document:1", "viewer") == ()
    assert index.by_user("document", "viewer", "group:eng#member") == ()
    assert index.discard(ANNE)
    assert not index.discard(ANNE)
    assert len(index) == 0
    assert index.objects_of_type("document") == ()
    assert index.by_object("document:1", "viewer") == ()
    assert index._by_object == {}
    assert index._usersets == {}
    assert index._by_user == {}
    assert index._objects == {}


def test_object_counts_survive_partial_removal() -> None:
    index = MemoryTupleIndex([ANNE, PARENT])
    index.discard(ANNE)
    assert index.objects_of_type("document") == ("document:1",)
    index.clear()
    assert len(index) == 0
    assert index.get("document:1", "parent", "folder:a") is None


def test_snapshots_are_immune_to_later_writes() -> None:
    index = MemoryTupleIndex([ANNE])
    snapshot = index.by_object("document:1", "viewer")
    for t in snapshot:
        index.discard(t)
        index.add(Tuple("document:1", "viewer", "user:new"))
    assert snapshot == (ANNE,)


def test_overlay_adds_contextual_tuples_without_copying_the_base() -> None:
    base = MemoryTupleIndex([ANNE, PARENT])
    assert base.overlay([]) is base
    extra_eng = Tuple("document:2", "viewer", "group:eng#member")
    view = base.overlay([ENG, extra_eng])
    assert isinstance(view, OverlayTupleSource)
    assert view.base is base
    assert len(base) == 2
    assert view.get("document:1", "viewer", "user:anne") == ANNE
    assert view.get("document:1", "viewer", "group:eng#member") == ENG
    assert set(view.by_object("document:1", "viewer")) == {ANNE, ENG}
    assert view.usersets("document:1", "viewer") == (ENG,)
    assert set(view.by_user("document", "viewer", "group:eng#member")) == {ENG, extra_eng}
    assert set(view.objects_of_type("document")) == {"document:1", "document:2"}
    # The base is unchanged.
    assert base.get("document:1", "viewer", "group:eng#member") is None


def test_overlay_contextual_tuple_wins_on_same_key() -> None:
    base = MemoryTupleIndex([Tuple("document:1", "viewer", "user:anne", "cond", {"x": 1})])
    view = base.overlay([ANNE])
    assert view.get("document:1", "viewer", "user:anne") == ANNE
    assert len(tuple(view.by_object("document:1", "viewer"))) == 2
