"""The DSL parser: the JSON it produces, and the errors it locates."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.authz.errors import DslSyntaxError, ValidationError
from bastion.authz.model import parse_dsl
from bastion.authz.model._parse import MAX_NESTING

HEADER = "model\n  schema 1.1\ntype user\n"


def relations(body: str, type_name: str = "doc") -> dict[str, Any]:
    model = parse_dsl(f"{HEADER}type {type_name}\n  relations\n{body}")
    return next(t for t in model["type_definitions"] if t["type"] == type_name)


def test_a_minimal_model() -> None:
    assert parse_dsl("model\n  schema 1.1\n") == {"schema_version": "1.1", "type_definitions": []}


def test_a_type_without_relations_has_null_metadata() -> None:
    assert parse_dsl(HEADER)["type_definitions"] == [
        {"type": "user", "relations": {}, "metadata": None}
    ]


def test_direct_types_of_every_kind() -> None:
    definition = relations(
        "    define viewer: [user, user:*, doc#viewer, user with c, user:* with c,\n"
        "      doc#owner with c]\n"
        "    define owner: [user]\n"
    )
    assert definition["relations"]["viewer"] == {"this": {}}
    assert definition["metadata"]["relations"]["viewer"]["directly_related_user_types"] == [
        {"type": "user"},
        {"type": "user", "wildcard": {}},
        {"type": "doc", "relation": "viewer"},
        {"type": "user", "condition": "c"},
        {"type": "user", "wildcard": {}, "condition": "c"},
        {"type": "doc", "relation": "owner", "condition": "c"},
    ]


@pytest.mark.parametrize(
    ("expression", "rewrite"),
    [
        ("owner", {"computedUserset": {"relation": "owner"}}),
        (
            "owner from parent",
            {
                "tupleToUserset": {
                    "tupleset": {"relation": "parent"},
                    "computedUserset": {"relation": "owner"},
                }
            },
        ),
        (
            "[user] or owner or editor",
            {
                "union": {
                    "child": [
                        {"this": {}},
                        {"computedUserset": {"relation": "owner"}},
                        {"computedUserset": {"relation": "editor"}},
                    ]
                }
            },
        ),
        (
            "owner and editor",
            {
                "intersection": {
                    "child": [
                        {"computedUserset": {"relation": "owner"}},
                        {"computedUserset": {"relation": "editor"}},
                    ]
                }
            },
        ),
        (
            "(owner or editor) but not blocked",
            {
                "difference": {
                    "base": {
                        "union": {
                            "child": [
                                {"computedUserset": {"relation": "owner"}},
                                {"computedUserset": {"relation": "editor"}},
                            ]
                        }
                    },
                    "subtract": {"computedUserset": {"relation": "blocked"}},
                }
            },
        ),
        ("((owner))", {"computedUserset": {"relation": "owner"}}),
    ],
)
def test_rewrites(expression: str, rewrite: dict[str, Any]) -> None:
    assert relations(f"    define viewer: {expression}\n")["relations"]["viewer"] == rewrite


def test_conditions_and_parameter_types() -> None:
    model = parse_dsl(
        HEADER + "condition c(a: int, b: map<string>, c: list<ipaddress>) {\n"
        '  a < 10 && "x" in b && c.size() > 0 && "}" != "{"\n'
        "}\n"
    )
    assert model["conditions"] == {
        "c": {
            "name": "c",
            "expression": 'a < 10 && "x" in b && c.size() > 0 && "}" != "{"',
            "parameters": {
                "a": {"type_name": "TYPE_NAME_INT"},
                "b": {
                    "type_name": "TYPE_NAME_MAP",
                    "generic_types": [{"type_name": "TYPE_NAME_STRING"}],
                },
                "c": {
                    "type_name": "TYPE_NAME_LIST",
                    "generic_types": [{"type_name": "TYPE_NAME_IPADDRESS"}],
                },
            },
        }
    }


def test_comments_and_free_indentation() -> None:
    text = (
        "# header\nmodel # m\n  schema 1.1 # s\n\n type user # u\n# between\n"
        "type doc\n  relations\n  # inside\n    define v: [user,\n      doc#v] or w # trailing\n"
        "    define w: [user]\n"
    )
    model = parse_dsl(text)
    assert [t["type"] for t in model["type_definitions"]] == ["user", "doc"]
    assert model["type_definitions"][1]["metadata"]["relations"]["v"][
        "directly_related_user_types"
    ] == [{"type": "user"}, {"type": "doc", "relation": "v"}]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("type user\n", 0),
        ("model\ntype user\n", 1),
        ("model\n  schema1.1\n", 1),
        ("model\n  schema 11\n", 1),
        (HEADER + "type doc\n  define v: [user]\n", 4),
        (HEADER + "type doc\n  relations\n    define v: [user] and w or x\n", 5),
        (HEADER + "type doc\n  relations\n    define v: w but not x but not y\n", 5),
        (HEADER + "type doc\n  relations\n    define v: w or [user]\n", 5),
        (HEADER + "type doc\n  relations\n    define v: []\n", 5),
        (HEADER + "type doc\n  relations\n    define v: [user:*:*]\n", 5),
        (HEADER + "type doc\n  relations\n    define v: [user]\n    define v: [user]\n", 6),
        (HEADER + "type doc\n  relations\n    define v: (w or x\n", 5),
        (HEADER + "condition c(p: map<list>) {\n  true\n}\n", 3),
        (HEADER + "condition c(p: list) {\n  true\n}\n", 3),
        (HEADER + "condition c(p: int, p: int) {\n  true\n}\n", 3),
        (HEADER + "condition c(p: int) {\n  true\n}\ncondition c(p: int) {\n  true\n}\n", 6),
        (HEADER + "condition c(p: int) {\n  p > 1\n", 5),
        (HEADER + 'condition c(p: int) {\n  "unterminated }\n}\n', 4),
        (HEADER + "condition c(p: int) {\n  p < 1 # comment }\n", 5),
        (HEADER + "condition c(p: int) {\n  true\n}\ntype later\n", 6),
        ("model\n  schema 1.1\nextend type user\n", 2),
        ("module foo\ntype user\n", 0),
    ],
)
def test_syntax_errors_are_located(text: str, line: int) -> None:
    with pytest.raises(DslSyntaxError) as caught:
        parse_dsl(text)
    assert caught.value.line == line
    assert isinstance(caught.value, ValidationError)
    assert caught.value.openfga_code == 2000


def test_windows_line_endings() -> None:
    assert parse_dsl(HEADER.replace("\n", "\r\n")) == parse_dsl(HEADER)


def test_hostile_nesting_is_a_syntax_error() -> None:
    deep = "(" * 10_000 + "b" + ")" * 10_000
    with pytest.raises(DslSyntaxError, match="nest deeper"):
        parse_dsl(f"{HEADER}type doc\n  relations\n    define a: {deep}\n    define b: [user]\n")
    fine = "(" * MAX_NESTING + "b" + ")" * MAX_NESTING
    parse_dsl(f"{HEADER}type doc\n  relations\n    define a: {fine}\n    define b: [user]\n")


def test_cel_comments_and_one_line_conditions() -> None:
    model = parse_dsl(
        HEADER + "condition c(x: int) {\n  x < 10 // don't count the } here\n}\n"
        "condition d(x: int) { x > 1 }\n"
        "condition e(x: int) {\n  # why\n  x > 2 # a DSL comment\n}\n"
    )
    assert model["conditions"]["e"]["expression"] == "x > 2"
    assert model["conditions"]["c"]["expression"] == "x < 10 // don't count the } here"
    assert model["conditions"]["d"]["expression"] == "x > 1"
