"""Semantic validation: OpenFGA's rules on JSON models, located DSL issues, hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.authz.errors import ModelIssue, ModelValidationError, ValidationError
from bastion.authz.model import model_issues, parse_dsl, validate_dsl, validate_model
from bastion.authz.model._entrypoints import MAX_ENTRY_SEARCH_STEPS
from bastion.authz.model._shape import MAX_REWRITE_DEPTH

HEADER = "model\n  schema 1.1\ntype user\n"


def kinds(model: Any) -> list[str]:
    return sorted(issue.kind for issue in model_issues(model))


def doc(relations: dict[str, Any], metadata: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "doc",
                "relations": relations,
                "metadata": {
                    "relations": {
                        name: {"directly_related_user_types": direct}
                        for name, direct in metadata.items()
                    }
                },
            },
        ],
    }


def test_a_valid_model_passes() -> None:
    model = parse_dsl(
        HEADER + "type doc\n  relations\n    define owner: [user]\n"
        "    define viewer: [user, user:* with fresh] or owner or viewer from parent\n"
        "    define parent: [doc]\n"
        "condition fresh(now: timestamp, until: timestamp) {\n  now < until\n}\n"
    )
    validate_model(model)
    assert validate_dsl(render_ok(model)) == model


def render_ok(model: dict[str, Any]) -> str:
    from bastion.authz.model import render_dsl  # noqa: PLC0415 - keeps the import list short

    return render_dsl(model)


def test_the_error_is_a_validation_error_with_every_issue() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate_dsl(HEADER + "type doc\n  relations\n    define a: b\n    define c: [nobody]\n")
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.openfga_code == 2000
    assert [(i.kind, i.line, i.column) for i in error.issues] == [
        ("missing-definition", 5, 14),
        ("invalid-type", 6, 15),
    ]


def test_metadata_must_agree_with_this() -> None:
    assert kinds(doc({"a": {"this": {}}}, {"a": []})) == ["assignable-relation-must-have-type"]
    assert kinds(
        doc(
            {"a": {"this": {}}, "b": {"computedUserset": {"relation": "a"}}},
            {"a": [{"type": "user"}], "b": [{"type": "user"}]},
        )
    ) == ["non-assignable-relation-must-not-have-types"]


def test_conditions_are_compiled() -> None:
    model = parse_dsl(
        HEADER + "type doc\n  relations\n    define a: [user with c]\n"
        "condition c(x: int) {\n  x + 1\n}\n"
    )
    issues = model_issues(model)
    assert [i.kind for i in issues] == ["invalid-condition"]
    assert "must return bool" in issues[0].message


def test_condition_key_and_name_must_agree() -> None:
    model = doc({"a": {"this": {}}}, {"a": [{"type": "user", "condition": "k"}]})
    model["conditions"] = {"k": {"name": "other", "expression": "true", "parameters": {}}}
    assert kinds(model) == ["different-nested-condition-name"]


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ({}, "schema-version-required"),
        ({"schema_version": "1.0"}, "invalid-schema"),
        ([], "invalid-json"),
        ({"schema_version": "1.1", "type_definitions": "x"}, "invalid-json"),
        ({"schema_version": "1.1", "type_definitions": [{"relations": {}}]}, "invalid-json"),
        ({"schema_version": 1.1}, "invalid-json"),
        (doc({"a": {"this": {}, "union": {"child": []}}}, {}), "invalid-json"),
        (doc({"a": {"difference": {"base": {"this": {}}}}}, {}), "invalid-json"),
        (
            doc({"a": {"this": {}}}, {"a": [{"type": "user", "wildcard": {}, "relation": "x"}]}),
            "invalid-json",
        ),
        (doc({"a": {"this": {}}}, {"a": [{"relation": "x"}]}), "invalid-json"),
    ],
)
def test_malformed_models(model: Any, kind: str) -> None:
    assert kinds(model) == [kind]


def test_deep_rewrites_are_refused_without_recursion_errors() -> None:
    node: dict[str, Any] = {"computedUserset": {"relation": "a"}}
    for _ in range(MAX_REWRITE_DEPTH + 5):
        node = {"union": {"child": [node]}}
    assert kinds(doc({"a": node}, {})) == ["invalid-json"]


def test_an_exponential_path_count_is_validated_quickly() -> None:
    # Each relation needs the next two: a path-by-path search explores exponentially many
    # paths (a model write would pin a worker); the fixpoint accepts it in linear passes.
    size = 40
    relations: dict[str, Any] = {
        f"r{i}": {
            "intersection": {
                "child": [
                    {"computedUserset": {"relation": f"r{i + 1}"}},
                    {"computedUserset": {"relation": f"r{i + 2}"}},
                ]
            }
        }
        for i in range(size)
    }
    relations[f"r{size}"] = {"this": {}}
    relations[f"r{size + 1}"] = {"this": {}}
    direct = {f"r{size}": [{"type": "user"}], f"r{size + 1}": [{"type": "user"}]}
    assert model_issues(doc(relations, direct)) == []
    # Without its entry points, every relation is a dead end, found within the step bound.
    del relations[f"r{size + 1}"], direct[f"r{size + 1}"]
    relations[f"r{size + 1}"] = {"computedUserset": {"relation": "r0"}}
    issues = model_issues(doc(relations, direct), language=True)
    assert 2**size > MAX_ENTRY_SEARCH_STEPS
    assert {i.kind for i in issues} == {"relation-no-entry-point"}
    assert len(issues) == size + 1
    assert {i.kind for i in model_issues(doc(relations, direct))} == {"relation-no-entry-point"}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "schema_version",
                    "type_definitions",
                    "type",
                    "relations",
                    "metadata",
                    "this",
                    "union",
                    "child",
                    "computedUserset",
                    "relation",
                    "tupleToUserset",
                    "tupleset",
                    "difference",
                    "base",
                    "subtract",
                    "directly_related_user_types",
                    "conditions",
                    "expression",
                    "parameters",
                    "wildcard",
                    "condition",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(_JSON)
def test_arbitrary_json_never_crashes_validation(model: Any) -> None:
    try:
        validate_model(model)
    except ModelValidationError as error:
        issues = error.issues
    else:
        issues = ()
    assert all(isinstance(issue, ModelIssue) for issue in issues)
    json.dumps([issue.message for issue in issues])


@pytest.mark.parametrize(
    ("body", "server", "language"),
    [
        # OpenFGA's server and its language tooling disagree on these (checked against
        # `fga model validate`, the server's rules, and openfga/language's cases).
        ("define a: [user]\n    define b: a or a\n", [], ["duplicated-error"]),
        ("define a: [user, user]\n", [], ["duplicated-error"]),
        (
            "define admin: [user]\n    define a: admin or b\n    define b: admin or a\n",
            ["cycle", "cycle"],
            [],
        ),
        (
            "define a: [user] or b\n    define b: [user] or a\n",
            ["cycle", "cycle"],
            ["relation-no-entry-point", "relation-no-entry-point"],
        ),
        (
            "define a: b\n    define b: a\n",
            ["relation-no-entry-point", "relation-no-entry-point"],
            ["relation-no-entry-point", "relation-no-entry-point"],
        ),
    ],
)
def test_server_and_language_rules(body: str, server: list[str], language: list[str]) -> None:
    model = parse_dsl(f"{HEADER}type doc\n  relations\n    {body}")
    assert [i.kind for i in model_issues(model)] == server
    assert [i.kind for i in model_issues(model, language=True)] == language


def test_an_unused_condition_is_only_a_language_issue() -> None:
    model = parse_dsl(HEADER + "condition c(x: int) {\n  x < 1\n}\n")
    validate_model(model)
    with pytest.raises(ModelValidationError) as caught:
        validate_dsl(render_ok(model))
    assert [i.kind for i in caught.value.issues] == ["condition-not-used"]
    validate_dsl(render_ok(model), language=False)
