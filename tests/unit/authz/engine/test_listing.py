"""ListObjects, ListUsers (pagination, never silent truncation), Expand and Explain."""

from __future__ import annotations

import pytest

from bastion.authz.errors import (
    InvalidContinuationToken,
    RelationNotFound,
    TypeNotFound,
    ValidationError,
)

from .helpers import build, tup

MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define viewer: [user, group#member]
type document
  relations
    define parent: [folder]
    define blocked: [user]
    define viewer: ([user, user:*, group#member] or viewer from parent) but not blocked
"""

TUPLES = (
    "group:eng#member@user:anne",
    "group:all#member@group:eng#member",
    "folder:a#viewer@group:all#member",
    "document:1#parent@folder:a",
    "document:2#viewer@user:anne",
    "document:3#viewer@user:*",
    "document:4#viewer@user:anne",
    "document:4#blocked@user:anne",
)


def test_list_objects_follows_every_path_and_respects_exclusion() -> None:
    engine, index = build(MODEL, *TUPLES)
    page = engine.list_objects(index, "document", "viewer", "user:anne")
    assert page.items == ("document:1", "document:2", "document:3")
    assert page.continuation_token is None
    assert not page.incomplete
    bob = engine.list_objects(index, "document", "viewer", "user:bob")
    assert bob.items == ("document:3",)
    assert engine.list_objects(index, "group", "member", "group:eng#member").items == (
        "group:all",
        "group:eng",
    )


def test_list_objects_paginates_instead_of_truncating() -> None:
    engine, index = build(MODEL, *(f"document:{i:03}#viewer@user:anne" for i in range(25)))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = engine.list_objects(
            index, "document", "viewer", "user:anne", max_results=10, continuation_token=token
        )
        pages += 1
        seen.extend(page.items)
        token = page.continuation_token
        if token is None:
            break
    assert pages == 3
    assert seen == [f"document:{i:03}" for i in range(25)]


def test_a_forged_continuation_token_is_refused() -> None:
    engine, index = build(MODEL, *TUPLES)
    with pytest.raises(InvalidContinuationToken):
        engine.list_objects(index, "document", "viewer", "user:anne", continuation_token="%%%")
    with pytest.raises(ValidationError):
        engine.list_objects(index, "document", "viewer", "user:anne", max_results=0)


def test_list_objects_request_errors() -> None:
    engine, index = build(MODEL)
    with pytest.raises(TypeNotFound):
        engine.list_objects(index, "nope", "viewer", "user:anne")
    with pytest.raises(RelationNotFound):
        engine.list_objects(index, "document", "nope", "user:anne")
    with pytest.raises(ValidationError):
        engine.list_objects(index, "document", "viewer", "robot:1")


def test_list_users_returns_objects_wildcards_and_usersets() -> None:
    engine, index = build(MODEL, *TUPLES, "document:1#viewer@user:*", "document:1#blocked@user:bob")
    users = engine.list_users(index, "document:1", "viewer", ["user"])
    assert users.items == ("user:*", "user:anne")
    groups = engine.list_users(index, "document:1", "viewer", ["group#member"])
    assert groups.items == ("group:all#member", "group:eng#member")
    folders = engine.list_users(index, "document:1", "viewer", ["folder#viewer"])
    assert folders.items == ("folder:a#viewer",)
    for user in users.items + groups.items:
        assert engine.check(index, "document:1", "viewer", user).allowed


def test_list_users_request_errors() -> None:
    engine, index = build(MODEL)
    with pytest.raises(TypeNotFound):
        engine.list_users(index, "document:1", "viewer", ["robot"])
    with pytest.raises(RelationNotFound):
        engine.list_users(index, "document:1", "viewer", ["group#nope"])
    with pytest.raises(TypeNotFound):
        engine.list_users(index, "nope:1", "viewer", ["user"])
    with pytest.raises(RelationNotFound):
        engine.list_users(index, "document:1", "nope", ["user"])
    with pytest.raises(ValidationError):
        engine.list_users(index, "document:1", "viewer", [])


def test_lists_see_contextual_tuples() -> None:
    engine, index = build(MODEL)
    extra = [tup("document:7#viewer@user:anne")]
    assert engine.list_objects(
        index, "document", "viewer", "user:anne", contextual_tuples=extra
    ).items == ("document:7",)
    assert engine.list_users(
        index, "document:7", "viewer", ["user"], contextual_tuples=extra
    ).items == ("user:anne",)


def test_expand_returns_openfga_tree_shape() -> None:
    engine, index = build(MODEL, *TUPLES)
    tree = engine.expand(index, "document:1", "viewer")
    root = tree["root"]
    assert root["name"] == "document:1#viewer"
    base = root["difference"]["base"]["union"]["nodes"]
    assert base[0] == {"name": "document:1#viewer", "leaf": {"users": {"users": []}}}
    assert base[1]["leaf"]["tupleToUserset"] == {
        "tupleset": "document:1#parent",
        "computed": [{"userset": "folder:a#viewer"}],
    }
    assert root["difference"]["subtract"] == {
        "name": "document:1#viewer",
        "leaf": {"computed": {"userset": "document:1#blocked"}},
    }
    users = engine.expand(index, "group:all", "member")["root"]["leaf"]["users"]["users"]
    assert users == ["group:eng#member"]
    with pytest.raises(ValidationError):
        engine.expand(index, "document:1", "nope")


def test_explain_gives_the_path_of_tuples_when_allowed() -> None:
    engine, index = build(MODEL, *TUPLES)
    explanation = engine.explain(index, "document:1", "viewer", "user:anne")
    assert explanation.allowed
    assert explanation.path() == [
        "document:1#parent@folder:a",
        "folder:a#viewer@group:all#member",
        "group:all#member@group:eng#member",
        "group:eng#member@user:anne",
    ]
    assert explanation.as_dict()["tree"]["outcome"] == "allowed"


def test_explain_says_why_it_is_denied() -> None:
    engine, index = build(MODEL, *TUPLES)
    blocked = engine.explain(index, "document:4", "viewer", "user:anne")
    assert not blocked.allowed
    assert blocked.path() == []
    difference = blocked.root.children[0]
    assert difference.rule == "difference"
    assert difference.reason == "excluded by the subtracted relation"
    nothing = engine.explain(index, "document:9", "viewer", "user:anne")
    assert not nothing.allowed
    assert "no" in nothing.as_dict()["tree"]["children"][0]["children"][0]["children"][0]["reason"]


def test_explain_agrees_with_check_on_every_pair() -> None:
    engine, index = build(MODEL, *TUPLES)
    for obj in ("document:1", "document:2", "document:3", "document:4", "folder:a"):
        for user in ("user:anne", "user:bob", "user:*", "group:eng#member"):
            expected = engine.check(index, obj, "viewer", user).allowed
            assert engine.explain(index, obj, "viewer", user).allowed == expected, (obj, user)


def test_lists_terminate_on_cyclic_group_nesting() -> None:
    engine, index = build(
        MODEL,
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",
        "group:b#member@user:anne",
        "folder:a#viewer@group:a#member",
    )
    groups = ("group:a", "group:b")
    assert engine.list_objects(index, "group", "member", "user:anne").items == groups
    assert engine.list_objects(index, "folder", "viewer", "user:anne").items == ("folder:a",)
    assert engine.list_users(index, "group:a", "member", ["user"]).items == ("user:anne",)
    assert engine.list_users(index, "group:a", "member", ["group#member"]).items == (
        "group:a#member",
        "group:b#member",
    )
    assert engine.list_objects(index, "group", "member", "group:a#member").items == (
        "group:a",
        "group:b",
    )
