"""OpenFGA's language test data (``openfga/language`` ``tests/data``) run on Bastion's DSL tools.

- transformer pairs: DSL -> JSON equals the JSON file; JSON -> DSL equals the ``.fga`` file
  byte for byte; and the printed DSL parses back to the same JSON;
- JSON -> DSL cases a DSL cannot express (``json-syntax-transformer-validation-cases``);
- DSL syntax and semantic validation cases: the text is refused exactly when errors are
  expected. Semantic errors: the same set of kinds (``errorType``), messages, lines and
  columns. Syntax errors: ANTLR reports every error it recovers from, in its own words
  (``mismatched input ' ' expecting ...``); Bastion's parser stops at the first, at the same
  line and column, in its own words.

JSON is compared as OpenFGA's protobuf does: an absent field equals an empty or null one.
Module cases (``module``, ``extend``, ``fga.mod``) are out of scope and skipped by name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.conformance.authz.openfga_suite import load_yaml
from tests.unit.crypto.conformance import CONFORMANCE_DIR, conformance_path

from bastion.authz.errors import DslSyntaxError, ModelValidationError, ValidationError
from bastion.authz.model import model_issues, parse_dsl, render_dsl, validate_dsl

LANGUAGE = CONFORMANCE_DIR / "openfga-language"
#: Fields whose empty object is meaningful (``{"this": {}}``, ``{"wildcard": {}}``).
_MEANINGFUL_EMPTY = frozenset({"this", "wildcard"})


def normalise(value: Any) -> Any:
    """Drop null and empty fields (protobuf's JSON equivalence), keep meaningful ``{}``."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            normalised = normalise(item)
            if (
                normalised is None
                or normalised == []
                or (normalised == {} and key not in _MEANINGFUL_EMPTY)
            ):
                continue
            result[key] = normalised
        return result
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def _is_module_case(case: dict[str, Any]) -> bool:
    """A modular file (its first line is ``module``) or a model compiled from modules (schema
    1.2). Cases where a plain model wrongly uses ``module`` or ``extend`` still run."""
    text = case.get("dsl") or ""
    if "schema 1.2" in text or '"schema_version": "1.2"' in (case.get("json") or ""):
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and (lines[0] == "module" or lines[0].startswith("module "))


def _cases(name: str) -> list[Any]:
    path = LANGUAGE / name
    if not path.exists():
        return []
    cases = load_yaml(path) or []
    return [
        pytest.param(
            case,
            id=case["name"][:60],
            marks=[
                pytest.mark.skip(
                    reason="modular models (module/extend, fga.mod) are out of scope (issue 6)"
                )
            ]
            if _is_module_case(case)
            else [],
        )
        for case in cases
    ]


def _pairs() -> list[str]:
    folder = LANGUAGE / "transformer"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- transformer pairs


@pytest.mark.parametrize("name", _pairs())
def test_dsl_to_json(name: str) -> None:
    folder = conformance_path("openfga-language", "transformer", name)
    dsl = (folder / "authorization-model.fga").read_text(encoding="utf-8")
    expected = json.loads((folder / "authorization-model.json").read_text(encoding="utf-8"))
    assert normalise(parse_dsl(dsl)) == normalise(expected)


@pytest.mark.parametrize("name", _pairs())
def test_json_to_dsl(name: str) -> None:
    folder = conformance_path("openfga-language", "transformer", name)
    dsl = (folder / "authorization-model.fga").read_text(encoding="utf-8")
    model = json.loads((folder / "authorization-model.json").read_text(encoding="utf-8"))
    printed = render_dsl(model)
    assert printed == dsl
    assert normalise(parse_dsl(printed)) == normalise(model)


@pytest.mark.parametrize("case", _cases("json-syntax-transformer-validation-cases.yaml"))
def test_json_the_dsl_cannot_express(case: dict[str, Any]) -> None:
    model = json.loads(case["json"])
    if case.get("valid") is False:
        with pytest.raises(ValidationError) as caught:
            render_dsl(model)
        assert caught.value.detail == case["error_message"]
        return
    printed = render_dsl(model)
    if case.get("dsl"):
        assert printed == case["dsl"]
    # Union and intersection children may be reordered (``this`` first): compare as sets.
    assert _unordered(normalise(parse_dsl(printed))) == _unordered(normalise(model))


def _unordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unordered(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_unordered(item) for item in value), key=json.dumps)
    return value


# ---------------------------------------------------------------- validation cases


def _expected(case: dict[str, Any]) -> list[dict[str, Any]]:
    return list(case.get("expected_errors") or [])


@pytest.mark.parametrize("case", _cases("dsl-semantic-validation-cases.yaml"))
def test_dsl_semantic_validation(case: dict[str, Any]) -> None:
    """Same issues: kind, message (whitespace-normalised), line and column of each."""
    conformance_path("openfga-language", "dsl-semantic-validation-cases.yaml")
    expected = _expected(case)
    if not expected:
        validate_dsl(case["dsl"])
        return
    with pytest.raises(ModelValidationError) as caught:
        validate_dsl(case["dsl"])
    got = sorted(
        (issue.kind, issue.line, issue.column, issue.message) for issue in caught.value.issues
    )
    want = sorted(
        (
            e.get("metadata", {}).get("errorType"),
            e["line"]["start"],
            e["column"]["start"],
            " ".join(e["msg"].split()),
        )
        for e in expected
    )
    assert got == want


@pytest.mark.parametrize("case", _cases("dsl-syntax-validation-cases.yaml"))
def test_dsl_syntax_validation(case: dict[str, Any]) -> None:
    conformance_path("openfga-language", "dsl-syntax-validation-cases.yaml")
    # These cases run OpenFGA's parser only (its grammar and the listener's duplicate checks);
    # models they call valid may still fail semantic validation.
    expected = _expected(case)
    if not expected:
        parse_dsl(case["dsl"])
        return
    with pytest.raises(DslSyntaxError) as caught:
        parse_dsl(case["dsl"])
    error = caught.value
    where = (expected[0]["line"]["start"], expected[0]["column"]["start"])
    assert (error.line, error.column) == where, error.detail


@pytest.mark.parametrize("case", _cases("json-validation-cases.yaml"))
def test_json_validation(case: dict[str, Any]) -> None:
    """The language's JSON checks (its rules: ``language=True``), kinds and messages."""
    model = json.loads(case["json"])
    got = sorted((issue.kind, issue.message) for issue in model_issues(model, language=True))
    want = sorted((e["metadata"]["errorType"], e["msg"]) for e in _expected(case))
    assert got == want


def test_the_data_is_there() -> None:
    """Guard: an empty parametrisation must not pass silently."""
    conformance_path("openfga-language", "transformer")
    assert len(_pairs()) >= 29


# ---------------------------------------------------------------- OpenFGA's engine suite models


def _suite_models() -> list[str]:
    path = CONFORMANCE_DIR / "openfga" / "consolidated_1_1_tests.yaml"
    if not path.exists():
        return []
    data = load_yaml(path)
    tests = data["tests"] if isinstance(data, dict) else data
    return list(dict.fromkeys(stage["model"] for test in tests for stage in test["stages"]))


def test_every_engine_suite_model_is_valid_and_round_trips() -> None:
    """The 132 distinct models OpenFGA's engine suite writes (``fga model transform`` parses
    each to the same JSON: checked when this test was written) are valid and print back."""
    conformance_path("openfga", "consolidated_1_1_tests.yaml")
    models = _suite_models()
    assert len(models) >= 100
    for dsl in models:
        model = validate_dsl(dsl)
        assert parse_dsl(render_dsl(model)) == model
